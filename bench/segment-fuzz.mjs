#!/usr/bin/env node
// The long segment-body fuzz of issue 17, item 3 (the cli's
// segment-fuzz.test.ts runs a bounded one with a fixed seed): damaged copies
// of a populated segment, each read in a child process as `bpftime map list`
// and `map dump` read one, by the native bpftime-segment-fuzz of
// @bpftime/maps-userspace. A reader must work or refuse with an error, within
// 3 s, and never write the file.
//
//   node bench/segment-fuzz.mjs [--mutants 100000] [--chunk 10000] [--seed N] [--keep DIR]
//
// Prints one line per chunk (and the worker's line per failing mutant) and a
// summary; exits 1 when a mutant crashed, hung or was written.
import { spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { parseArgs } from 'node:util';

const { values } = parseArgs({
	options: {
		mutants: { type: 'string', default: '100000' },
		chunk: { type: 'string', default: '10000' },
		seed: { type: 'string' },
		keep: { type: 'string' },
	},
});
const mutants = Number(values.mutants);
const chunk = Number(values.chunk);
const seed = values.seed === undefined ? Math.floor(Math.random() * 2 ** 31) : Number(values.seed);
const require = createRequire(import.meta.url);
const fuzz = join(
	dirname(require.resolve('@bpftime/maps-userspace/package.json')),
	'build/Release/bpftime-segment-fuzz',
);
console.log(`seed ${seed}, ${mutants} mutants in chunks of ${chunk}`);
const total = { mutants: 0, works: 0, refused: 0, crashed: 0, hung: 0, wrote: 0 };
const started = Date.now();
for (let c = 0; total.mutants < mutants; c++) {
	const n = Math.min(chunk, mutants - total.mutants);
	const args = [String(seed + c), String(n)];
	if (values.keep) args.push(values.keep);
	const r = spawnSync(fuzz, args, { encoding: 'utf8', maxBuffer: 64 << 20 });
	const lines = r.stdout.trim().split('\n');
	const summary = lines.pop() ?? '';
	const m = /^mutants (\d+) works (\d+) refused (\d+) crashed (\d+) hung (\d+) wrote (\d+)$/.exec(summary);
	if (!m) {
		console.log(`chunk ${c}: the worker failed: status ${r.status} signal ${r.signal}: ${r.stderr.trim()}`);
		process.exit(1);
	}
	for (const l of lines.slice(0, 20)) console.log(`  ${l}`);
	const [, mu, w, rf, cr, h, wr] = m.map(Number);
	total.mutants += mu;
	total.works += w;
	total.refused += rf;
	total.crashed += cr;
	total.hung += h;
	total.wrote += wr;
	console.log(`chunk ${c} (seed ${seed + c}): ${summary}`);
}
console.log(
	`mutants ${total.mutants} works ${total.works} refused ${total.refused} crashed ${total.crashed} hung ${total.hung} wrote ${total.wrote} in ${((Date.now() - started) / 1000).toFixed(0)} s`,
);
process.exit(total.crashed + total.hung + total.wrote === 0 ? 0 : 1);
