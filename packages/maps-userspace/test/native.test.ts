import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { findBuilt } from '@bpftime/common';
import { describe, expect, it } from 'vitest';

const run = promisify(execFile);
const packageDir = new URL('..', import.meta.url).pathname;

describe('native core tests', () => {
	it('pass: no allocation on the helpers hot path, hash maps under threads, full and growing maps', async () => {
		const exe = findBuilt(packageDir, 'bpftime-maps-userspace-native-test');
		expect(exe, 'bpftime-maps-userspace-native-test is built with the package').toBeDefined();
		const { stdout } = await run(exe as string, [], { maxBuffer: 16 << 20 });
		const lines = stdout.trim().split('\n');
		expect(lines.filter((l) => l.startsWith('not ok'))).toEqual([]);
		expect(lines.at(-1)).toMatch(/^\d+ passed, 0 failed$/);
		expect(Number(lines.at(-1)?.split(' ')[0])).toBeGreaterThanOrEqual(8);
		// One process running every case, the kernel comparison included: seconds on a loaded machine.
	}, 60_000);
});
