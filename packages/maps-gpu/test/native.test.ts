import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { findBuilt } from '@bpftime/common';
import { describe, expect, it } from 'vitest';
import { noAddon, packageDir } from './helpers.js';

const run = promisify(execFile);
const absent = noAddon();

describe.skipIf(absent !== '')('native core tests', () => {
	it('pass: ring record reading, and ENODEV without a device from a process without Node', async () => {
		const exe = findBuilt(packageDir, 'bpftime-maps-gpu-native-test');
		expect(exe, 'bpftime-maps-gpu-native-test is built with the package').toBeDefined();
		const { stdout } = await run(exe as string, []);
		const lines = stdout.trim().split('\n');
		const skip = lines.find((l) => l.startsWith('skip: '));
		if (skip) console.log(`skipped in part: ${skip.slice(6)}`);
		expect(lines.filter((l) => l.startsWith('not ok'))).toEqual([]);
		expect(lines.at(-1)).toBe(skip ? '7 passed, 0 failed' : '12 passed, 0 failed');
	});
});
