// checkBackend: what a tool learns about a backend name before it starts
// anything, the same answer `new Vm({ backend })` would give.
import { BpftimeError } from '@bpftime/common';
import { describe, expect, it } from 'vitest';
import { checkBackend } from '../src/index.js';

describe('checkBackend', () => {
	it.each(['interpreter', 'jit'])('accepts %s, which this build has', (name) => {
		expect(() => checkBackend(name)).not.toThrow();
	});

	// Whether this build has the LLVM backend decides which of the next two runs.
	const llvmError = (() => {
		try {
			checkBackend('llvm');
			return undefined;
		} catch (err) {
			return err;
		}
	})();

	it.skipIf(llvmError === undefined)('refuses llvm with ENOTSUP naming it (skips: llvm is built here)', () => {
		expect(llvmError).toBeInstanceOf(BpftimeError);
		expect(llvmError).toMatchObject({ code: 'ENOTSUP', message: expect.stringMatching(/'llvm'/) });
	});

	it.skipIf(llvmError !== undefined)('accepts llvm where it is built (skips: llvm is not built here)', () => {
		expect(() => checkBackend('llvm')).not.toThrow();
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
