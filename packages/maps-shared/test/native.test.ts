import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { findBuilt } from '@bpftime/common';
import { describe, expect, it } from 'vitest';

const run = promisify(execFile);
const packageDir = new URL('..', import.meta.url).pathname;

describe('native core tests', () => {
	it('pass: no allocation on the lookup and update paths, per-thread lookup buffers', async (ctx) => {
		const exe = findBuilt(packageDir, 'bpftime-maps-shared-native-test');
		expect(exe, 'bpftime-maps-shared-native-test is built with the package').toBeDefined();
		const { stdout } = await run(exe as string, []);
		const lines = stdout.trim().split('\n');
		const skip = lines.find((l) => l.startsWith('skip: '));
		if (skip) {
			console.log(`skipped: ${skip.slice(6)}`);
			ctx.skip();
			return;
		}
		expect(lines.filter((l) => l.startsWith('not ok'))).toEqual([]);
		expect(lines.at(-1)).toBe('4 passed, 0 failed');
	});
});
