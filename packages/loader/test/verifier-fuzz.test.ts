// The verifier's differential fuzz, bounded and seeded for the suite: mutants
// of real programs (the malloc example, the agent benchmark's programs, the
// loader's fixtures) with their maps in a registry; each is refused by the
// verifier or runs on both backends without a fault, in a child process
// watched for signals (fixtures/verifier-fuzz-worker.mjs). The long,
// random-seed run is `node bench/fuzz-verifier.mjs`.
import '@bpftime/maps-userspace';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Registry } from '@bpftime/handlers';
import { Segment } from '@bpftime/shm';
import { compileBpf } from '@bpftime/test-support';
import { describe, expect, it, onTestFinished } from 'vitest';
import { BpfObject } from '../src/index.js';
import { clang, useFixtures } from './helpers.js';

const fx = useFixtures();
const repo = new URL('../../../', import.meta.url).pathname;
const worker = new URL('./fixtures/verifier-fuzz-worker.mjs', import.meta.url).pathname;

/** Sources of the programs the fuzz mutates, relative to the repository. */
export const FUZZ_CORPUS = [
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

describe('the verifier under mutation', () => {
	it('refuses, or runs without a fault on both backends, every mutant of real programs (seed 1, 3 s)', async () => {
		const name = `bpftime_vfuzz_${process.pid}`;
		const seg = Segment.create({ name, sizeMb: 64 });
		const reg = Registry.create(seg);
		const work = mkdtempSync(join(tmpdir(), 'bpftime-vfuzz-'));
		onTestFinished(() => {
			reg.close();
			seg.close();
			if (existsSync(`/dev/shm/${name}`)) Segment.remove({ name });
			rmSync(work, { recursive: true, force: true });
		});
		for (const src of FUZZ_CORPUS) {
			const out = join(fx.dir, `fuzz-${src.replaceAll('/', '_')}.o`);
			await compileBpf(clang, `${repo}${src}`, out, ['-D__TARGET_ARCH_x86', '-DTARGET="/bin/true"']);
			await BpfObject.open(out).load(reg);
		}
		const progress = join(work, 'progress');
		const { spawnSync } = await import('node:child_process');
		const run = spawnSync(process.execPath, [worker, name, '1', '1000000', '3', progress], {
			encoding: 'utf8',
			// opensnoop and strings print with bpf_trace_printk.
			env: { ...process.env, BPFTIME_TRACE_PRINTK_SINK: 'off' },
			timeout: 120_000,
		});
		const last = existsSync(progress) ? readFileSync(progress, 'utf8').split('\n')[0] : '';
		expect(run.signal, `a mutant faulted: ${last}\n${run.stderr}`).toBeNull();
		expect(run.status, run.stderr).toBe(0);
		const m = /^done (\d+) refused (\d+) ran (\d+) errors (\d+)$/m.exec(run.stdout);
		expect(m, run.stdout + run.stderr).not.toBeNull();
		console.log(`verifier fuzz: ${run.stdout.trim()}`);
		// Enough mutants were tried, and some of them ran.
		expect(Number(m?.[1])).toBeGreaterThan(200);
		expect(Number(m?.[3])).toBeGreaterThan(0);
	}, 180_000);
});
