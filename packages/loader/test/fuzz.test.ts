// Random mutations of the real fixture objects, for a bounded time: every
// mutant either opens (and then describes and loads into a recording
// target) or is refused with a BpftimeError. Anything else is a bug; the
// input is written out so that it can be replayed.
//
// BPFTIME_LOADER_FUZZ_SECONDS (default 3) and BPFTIME_LOADER_FUZZ_SEED set
// the budget and the seed. In the suite the seed is fixed, so that a run
// is a prefix of one known sequence and cannot fail on its own one day;
// scripts/fuzz-loader.mjs runs this file for longer, with a random seed.
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { BpfObject, BpftimeError, Btf } from '../src/index.js';
import { sections } from './bytes.js';
import { hasVmlinux, useFixtures, VMLINUX } from './helpers.js';
import { RecordingTarget } from './targets.js';

const SECONDS = Number(process.env.BPFTIME_LOADER_FUZZ_SECONDS ?? 3);
const SEED = Number(process.env.BPFTIME_LOADER_FUZZ_SEED ?? 0x6270667);
const OUT = process.env.BPFTIME_LOADER_FUZZ_OUT ?? join(tmpdir(), 'bpftime-loader-fuzz');

/** mulberry32: a small deterministic PRNG, so a seed replays a run. */
function prng(seed: number): () => number {
	let a = seed >>> 0;
	return () => {
		a = (a + 0x6d2b79f5) >>> 0;
		let t = a;
		t = Math.imul(t ^ (t >>> 15), t | 1);
		t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
		return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
	};
}

const INTERESTING = [
	0, 1, 2, 7, 8, 12, 16, 24, 0x7f, 0x80, 0xff, 0x100, 0xffff, 0x10000, 0x7fffffff, 0x80000000, 0xfffffffe, 0xffffffff,
];

interface Seed {
	name: string;
	buf: Buffer;
	/** [offset, size] of every section and of the header tables: where mutations hurt most. */
	regions: [number, number][];
}

function mutate(s: Seed, rnd: () => number): Buffer {
	const pick = (n: number) => Math.floor(rnd() * n);
	const b = Buffer.from(s.buf);
	const rounds = 1 + pick(4);
	for (let r = 0; r < rounds; r++) {
		// Most mutations land in a section (headers, BTF, relocations, symbols), some anywhere.
		const [start, size] = rnd() < 0.8 ? (s.regions[pick(s.regions.length)] as [number, number]) : [0, b.length];
		const at = start + pick(Math.max(1, size));
		if (at >= b.length) continue;
		switch (pick(6)) {
			case 0:
				b[at] = (b[at] as number) ^ (1 << pick(8));
				break;
			case 1:
				b[at] = pick(256);
				break;
			case 2:
				if (at + 2 <= b.length) b.writeUInt16LE((INTERESTING[pick(INTERESTING.length)] as number) & 0xffff, at);
				break;
			case 3: {
				const aligned = at - (at % 4);
				if (aligned + 4 <= b.length) b.writeUInt32LE((INTERESTING[pick(INTERESTING.length)] as number) >>> 0, aligned);
				break;
			}
			case 4: {
				const aligned = at - (at % 8);
				if (aligned + 8 <= b.length)
					b.writeBigUInt64LE(rnd() < 0.5 ? BigInt(pick(1 << 20)) : 0xffffffffffffff00n + BigInt(pick(256)), aligned);
				break;
			}
			case 5: {
				const from = pick(b.length);
				const len = Math.min(1 + pick(64), b.length - from, b.length - at);
				b.copy(b, at, from, from + len);
				break;
			}
		}
	}
	return rnd() < 0.1 ? b.subarray(0, pick(b.length)) : b;
}

describe('fuzzing the parser', () => {
	const fx = useFixtures();
	const seeds: Seed[] = [];
	let target: Btf | Buffer;

	beforeAll(async () => {
		const victim = await fx.victim();
		const names = [
			'maps',
			'globals',
			'subprogs',
			'legacy',
			'core',
			'user-types',
			'pinned',
			'attach',
			'count',
			'strings',
		];
		for (const name of names) {
			const buf = readFileSync(
				await fx.bpf(name, name === 'attach' || name === 'count' ? [`-DTARGET="${victim}"`] : []),
			);
			const regions: [number, number][] = [[0, 64]];
			const secs = sections(buf);
			const shoff = Number(buf.readBigUInt64LE(40));
			regions.push([shoff, secs.length * 64]);
			for (const s of secs) if (s.size > 0 && s.type !== 8) regions.push([s.offset, s.size]);
			seeds.push({ name, buf, regions });
		}
		target = hasVmlinux ? Btf.parse(readFileSync(VMLINUX), 'vmlinux BTF') : (seeds[4]?.buf as Buffer);
	});

	it(`opens or refuses with a BpftimeError every mutant of the fixtures for ${SECONDS}s (seed ${SEED})`, {
		timeout: SECONDS * 1000 + 60_000,
	}, async () => {
		console.log(`fuzz: seed ${SEED}, ${SECONDS}s; replay with BPFTIME_LOADER_FUZZ_SEED=${SEED}`);
		const rnd = prng(SEED);
		const deadline = Date.now() + SECONDS * 1000;
		let runs = 0;
		let opened = 0;
		const failures: string[] = [];
		const codes = new Map<string, number>();
		while (Date.now() < deadline && failures.length < 5) {
			const s = seeds[Math.floor(rnd() * seeds.length)] as Seed;
			const input = mutate(s, rnd);
			runs++;
			try {
				const o = BpfObject.open(input, { name: s.name, targetBtf: target });
				opened++;
				o.describe();
				const t = new RecordingTarget();
				await o.load(t);
				o.close();
				expect(t.live.size).toBe(0);
			} catch (e) {
				if (
					e instanceof BpftimeError &&
					typeof e.message === 'string' &&
					e.message.length > 0 &&
					/^E[A-Z0-9]+$/.test(e.code)
				) {
					codes.set(e.code, (codes.get(e.code) ?? 0) + 1);
					continue;
				}
				mkdirSync(OUT, { recursive: true });
				const file = join(OUT, `${s.name}-${SEED}-${runs}.bpf.o`);
				writeFileSync(file, input);
				failures.push(`${file}: ${(e as Error)?.stack ?? String(e)}`);
			}
		}
		console.log(
			`fuzz: ${runs} mutants, ${opened} opened, refused: ${[...codes].map(([c, n]) => `${c} ${n}`).join(', ')}`,
		);
		expect(failures).toEqual([]);
		expect(runs).toBeGreaterThan(0);
	});
});
