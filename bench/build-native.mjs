#!/usr/bin/env node
// Builds bench/native (the vm_bench driver of suites/vm.mjs) into bench/build
// with CMake: configured once, then rebuilt incrementally, so that it always
// runs against the current sources of packages/vm. run.mjs calls this before
// the suites; `pnpm --filter @bpftime/bench build:native` runs it alone.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { cpus } from 'node:os';
import { fileURLToPath } from 'node:url';

const here = fileURLToPath(new URL('.', import.meta.url));
export const buildDir = `${here}build`;
export const vmBenchPath = `${buildDir}/vm_bench`;

function cmake(args) {
	const r = spawnSync('cmake', args, { cwd: here, encoding: 'utf8' });
	if (r.error) return `cmake: ${r.error.message}`;
	return r.status === 0 ? null : `cmake ${args.join(' ')} failed:\n${r.stdout}${r.stderr}`;
}

/** Configures (first time) and builds bench/build; returns null or the error text. */
export function buildNative() {
	if (!existsSync(`${buildDir}/CMakeCache.txt`)) {
		const err = cmake(['-S', `${here}native`, '-B', buildDir, '-DCMAKE_BUILD_TYPE=Release']);
		if (err) return err;
	}
	return cmake(['--build', buildDir, '--parallel', String(cpus().length)]);
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
	const err = buildNative();
	if (err) {
		console.error(err);
		process.exit(1);
	}
	console.log(`built ${vmBenchPath}`);
}
