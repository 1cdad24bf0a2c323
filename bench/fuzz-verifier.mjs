#!/usr/bin/env node
// The verifier's differential fuzz, for long runs: mutants of real programs
// (the malloc example, opensnoop, the agent benchmark's programs, the
// loader's fixtures, the ring buffer fixture), each refused by the verifier or run on the interpreter and the
// JIT without a fault, in worker processes watched for signals. The suite
// runs the same worker for 3 s with seed 1
// (packages/loader/test/verifier-fuzz.test.ts).
//
//   node bench/fuzz-verifier.mjs [--seed N|random] [--mutants 1000000] [--batch 3000]
//
// Prints one line per batch and a total; exits 1 naming the seed, the index
// and the instructions of a mutant that faulted.
import '@bpftime/maps-userspace';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Registry } from '@bpftime/handlers';
import { BpfObject } from '@bpftime/loader';
import { Segment } from '@bpftime/shm';

const repo = new URL('../', import.meta.url).pathname;
const worker = join(repo, 'packages/loader/test/fixtures/verifier-fuzz-worker.mjs');
const CORPUS = [
	'examples/malloc/malloc.bpf.c',
	'examples/uretprobe-latency/latency.bpf.c',
	'bench/programs/agent/bench.bpf.c',
	'packages/loader/test/fixtures/count.bpf.c',
	'packages/loader/test/fixtures/globals.bpf.c',
	'packages/loader/test/fixtures/subprogs.bpf.c',
	'packages/loader/test/fixtures/strings.bpf.c',
	'packages/maps-userspace/test/fixtures/ringbuf.bpf.c',
	'examples/opensnoop/opensnoop.bpf.c',
];

const arg = (name, def) => {
	const i = process.argv.indexOf(`--${name}`);
	return i > 0 ? process.argv[i + 1] : def;
};
const seedArg = arg('seed', 'random');
let seed = seedArg === 'random' ? Math.floor(Math.random() * 2 ** 31) : Number(seedArg);
const total = Number(arg('mutants', '1000000'));
const batch = Number(arg('batch', '3000'));

const work = mkdtempSync(join(tmpdir(), 'bpftime-fuzz-verifier-'));
const name = `bpftime_fuzz_verifier_${process.pid}`;
const seg = Segment.create({ name, sizeMb: 64 });
const reg = Registry.create(seg);
const cleanup = () => {
	reg.close();
	seg.close();
	if (existsSync(`/dev/shm/${name}`)) Segment.remove({ name });
	rmSync(work, { recursive: true, force: true });
};
for (const src of CORPUS) {
	const out = join(work, `${src.replaceAll('/', '_')}.o`);
	const cc = spawnSync(
		'clang-19',
		[
			'-target',
			'bpf',
			'-O2',
			'-g',
			'-mcpu=v3',
			'-D__TARGET_ARCH_x86',
			'-DTARGET="/bin/true"',
			'-I/usr/include/x86_64-linux-gnu',
			'-c',
			join(repo, src),
			'-o',
			out,
		],
		{ encoding: 'utf8' },
	);
	if (cc.status !== 0) {
		console.error(`clang-19 failed on ${src}: ${cc.stderr}`);
		cleanup();
		process.exit(2);
	}
	await BpfObject.open(out).load(reg);
}

const sum = { done: 0, refused: 0, ran: 0, errors: 0 };
const started = Date.now();
console.log(`fuzz-verifier: first seed ${seed}, ${total} mutants of ${CORPUS.length} objects`);
while (sum.done < total) {
	const n = Math.min(batch, total - sum.done);
	const progress = join(work, 'progress');
	// A batch takes seconds; one that runs for minutes holds a mutant that
	// does not end (a hang is a failure too).
	const r = spawnSync(process.execPath, [worker, name, String(seed), String(n), '1000000', progress], {
		encoding: 'utf8',
		// opensnoop and strings print with bpf_trace_printk.
		env: { ...process.env, BPFTIME_TRACE_PRINTK_SINK: 'off' },
		timeout: 300_000,
		killSignal: 'SIGKILL',
	});
	if (r.signal !== null || r.status !== 0) {
		const last = existsSync(progress) ? readFileSync(progress, 'utf8').split('\n')[0] : '?';
		console.error(
			`${r.error?.code === 'ETIMEDOUT' ? 'HANG' : 'FAULT'}: seed ${seed}: worker ${r.signal ? `killed by ${r.signal}` : `exited ${r.status}`}; last mutant run: ${last}\n${r.stderr}`,
		);
		cleanup();
		process.exit(1);
	}
	const m = /^done (\d+) refused (\d+) ran (\d+) errors (\d+)$/m.exec(r.stdout);
	if (!m) throw new Error(`worker said: ${r.stdout}${r.stderr}`);
	sum.done += Number(m[1]);
	sum.refused += Number(m[2]);
	sum.ran += Number(m[3]);
	sum.errors += Number(m[4]);
	console.log(`seed ${seed}: ${m[0]} (total ${sum.done}, ${Math.round((Date.now() - started) / 1000)} s)`);
	seed = (seed + 1) >>> 0;
}
console.log(
	`fuzz-verifier: ${sum.done} mutants, ${sum.refused} refused, ${sum.ran} ran on both backends (${sum.errors} run errors), 0 faults`,
);
cleanup();
