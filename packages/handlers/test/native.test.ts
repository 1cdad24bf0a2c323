import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { findBuilt } from '@bpftime/common';
import { describe, expect, it } from 'vitest';

const run = promisify(execFile);
const packageDir = new URL('..', import.meta.url).pathname;

describe('native core tests', () => {
	it('pass: helper prototypes, written arguments, helper names, argument-check messages', async () => {
		const exe = findBuilt(packageDir, 'bpftime-handlers-native-test');
		expect(exe, 'bpftime-handlers-native-test is built with the package').toBeDefined();
		const { stdout } = await run(exe as string, []);
		expect(stdout.trim().split('\n').at(-1)).toMatch(/^\d+ passed, 0 failed$/);
	});
});
