// checkBackend: what a tool learns about a backend name before it starts
// anything, the same answer `new Vm({ backend })` would give.
import { BpftimeError } from '@bpftime/common';
import { describe, expect, it } from 'vitest';
import { checkBackend } from '../src/index.js';

describe('checkBackend', () => {
	it.each(['interpreter', 'jit'])('accepts %s, which this build has', (name) => {
		expect(() => checkBackend(name)).not.toThrow();
	});

	it('refuses llvm with ENOTSUP: this build has no LLVM backend', () => {
		const e = (() => {
			try {
				checkBackend('llvm');
			} catch (err) {
				return err;
			}
		})();
		expect(e).toBeInstanceOf(BpftimeError);
		expect(e).toMatchObject({ code: 'ENOTSUP', message: "vm backend 'llvm': the LLVM backend is not built" });
	});

	it('refuses an unknown name with EINVAL, listing the names', () => {
		expect(() => checkBackend('ubpf')).toThrow(
			expect.objectContaining({
				code: 'EINVAL',
				message: "unknown vm backend 'ubpf' (expected interpreter, jit or llvm)",
			}),
		);
		expect(() => checkBackend(7 as unknown as string)).toThrow(expect.objectContaining({ code: 'EINVAL' }));
	});
});
