#!/usr/bin/env node
// Longer fuzzing runs of the loader's parser: runs test/fuzz.test.ts (the
// same mutator and checks as the bounded run in the test suite) with a time
// budget and a seed, and says where failing inputs were written.
//
//   pnpm --filter @bpftime/loader fuzz                    # 10 minutes, random seed
//   pnpm --filter @bpftime/loader fuzz -- --seconds 3600 --seed 42 --out /tmp/crashes
import { spawnSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

// `pnpm run fuzz -- --seconds N` passes the `--` on.
const argv = process.argv.slice(2);
const { values } = parseArgs({
	args: argv[0] === '--' ? argv.slice(1) : argv,
	options: {
		seconds: { type: 'string', default: '600' },
		seed: { type: 'string' },
		out: { type: 'string', default: join(tmpdir(), 'bpftime-loader-fuzz') },
	},
});
const seconds = Number(values.seconds);
if (!Number.isFinite(seconds) || seconds <= 0) {
	console.error(`fuzz-loader: Expected a positive number for --seconds but received ${values.seconds}`);
	process.exit(2);
}
const seed = values.seed ?? String(Math.floor(Math.random() * 2 ** 31));
const pkg = fileURLToPath(new URL('..', import.meta.url));

console.log(`fuzz-loader: ${seconds}s, seed ${seed}, failing inputs go to ${values.out}`);
const r = spawnSync('pnpm', ['exec', 'vitest', 'run', 'test/fuzz.test.ts', '--reporter=default'], {
	cwd: pkg,
	stdio: 'inherit',
	env: {
		...process.env,
		BPFTIME_LOADER_FUZZ_SECONDS: String(seconds),
		BPFTIME_LOADER_FUZZ_SEED: seed,
		BPFTIME_LOADER_FUZZ_OUT: values.out,
	},
});
if (r.error) {
	console.error(`fuzz-loader: cannot run vitest through pnpm: ${r.error.message}`);
	process.exit(2);
}
process.exit(r.status ?? 1);
