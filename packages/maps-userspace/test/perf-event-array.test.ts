import { execFile, spawn } from 'node:child_process';
import { rmSync } from 'node:fs';
import { promisify } from 'node:util';
import { findBuilt } from '@bpftime/common';
import { type Backend, MapType, ProgType } from '@bpftime/handlers';
import { beforeAll, describe, expect, it } from 'vitest';
import { PerfEventArray } from '../src/index.js';
import { compileBpf, findClang, linkProgram, readBpfObject } from './bpf-object.js';
import { errorOf, freshRegistry } from './helpers.js';

const run = promisify(execFile);
const packageDir = new URL('..', import.meta.url).pathname;
const tool = findBuilt(packageDir, 'bpftime-ringbuf-tool');
const source = new URL('./fixtures/perf.bpf.c', import.meta.url).pathname;
const backends: Backend[] = ['interpreter', 'jit'];
const BPF_F_CURRENT_CPU = 0xffffffffn;
const neg = (e: number) => BigInt.asUintN(64, BigInt(-e));

let object: string | undefined;
let skipReason = '';

beforeAll(async () => {
	const clang = await findClang();
	if (!clang) {
		skipReason = 'no clang on PATH (clang, clang-19, clang-14) to build test/fixtures/perf.bpf.c';
		return;
	}
	object = await compileBpf(clang, source);
	return () => {
		if (object) rmSync(object, { force: true });
	};
});

function input(flags: bigint, data: Buffer): Buffer {
	const b = Buffer.alloc(80);
	b.writeBigUInt64LE(flags, 0);
	b.writeUInt32LE(data.length, 8);
	data.copy(b, 16);
	return b;
}

describe.each(backends)('a clang-built bpf_perf_event_output program on the %s', (backend) => {
	it('writes samples into the chosen slot with the kernel padding, and fails as the kernel does', async (ctx) => {
		if (!object) {
			console.log(`skipped: ${skipReason}`);
			ctx.skip();
			return;
		}
		const { reg } = freshRegistry(`perf_${backend}`);
		const map = reg.createMap({
			type: MapType.PerfEventArray,
			name: 'events',
			keySize: 4,
			valueSize: 4,
			maxEntries: 4,
		});
		const code = readBpfObject(object).programs.get('uprobe/emit');
		if (!code) throw new Error('the fixture has no uprobe/emit');
		const prog = reg.loadProg({
			type: ProgType.Kprobe,
			name: 'emit',
			license: 'GPL',
			insns: linkProgram(code, () => map.id),
		});
		prog.instantiate({ backend });
		const emit = (flags: bigint, data: Buffer) => prog.run(input(flags, data), { backend });

		// No perf event in the slots yet: the kernel's ENOENT.
		expect(emit(0n, Buffer.from('x'))).toBe(neg(2));
		using perf = PerfEventArray.open(reg, map, { slots: 2 });
		expect(emit(1n, Buffer.from('hello, perf'))).toBe(0n);
		expect(emit(0n, Buffer.alloc(0))).toBe(0n);
		expect(emit(3n, Buffer.from('x'))).toBe(neg(2)); // slot 3 was not opened
		expect(emit(4n, Buffer.from('x'))).toBe(neg(7)); // past max_entries: E2BIG
		expect(emit(1n << 32n, Buffer.from('x'))).toBe(neg(22)); // flags outside BPF_F_INDEX_MASK: EINVAL
		// BPF_F_CURRENT_CPU: the slot of the CPU the program runs on, here 0 or 1 of 2 opened (or E2BIG/ENOENT
		// on a CPU past them, which this 2-slot map does not have when the machine has more CPUs).
		const cur = emit(BPF_F_CURRENT_CPU, Buffer.from('cpu'));
		const recs = await perf.read({ timeoutMs: 1000 });
		const samples = recs.filter((r) => r.type === 'sample');
		const bySlot = samples.map((r) => [r.cpu, r.data.length]);
		expect(bySlot).toContainEqual([1, 12]);
		// Raw data is padded so that u32 size + data is a multiple of 8: 11 bytes -> 12, 0 -> 4.
		expect(bySlot).toContainEqual([0, 4]);
		const hello = samples.find((r) => r.cpu === 1);
		expect(hello?.data.subarray(0, 11).toString()).toBe('hello, perf');
		expect(hello?.data.subarray(11)).toEqual(Buffer.alloc(1));
		expect(samples.length).toBe(cur === 0n ? 3 : 2);
	});
});

describe('the perf event array map', () => {
	it('counts samples written to a full buffer as lost and reports them before the next sample', async () => {
		const { reg } = freshRegistry('perf_lost');
		const map = reg.createMap({
			type: MapType.PerfEventArray,
			name: 'events',
			keySize: 4,
			valueSize: 4,
			maxEntries: 1,
		});
		using perf = PerfEventArray.open(reg, map);
		const prog = reg.loadProg({
			type: ProgType.Kprobe,
			name: 'out',
			license: 'GPL',
			insns: Buffer.from(
				// r6 = r1; r4 = r1; r1 = r6; r2 = map; r3 = 0; r5 = 64; call 25; exit
				[
					[0xbf, 0x16, 0, 0, 0],
					[0xbf, 0x14, 0, 0, 0],
					[0xbf, 0x61, 0, 0, 0],
					[0x18, 0x12, 0, 0, map.id],
					[0, 0, 0, 0, 0],
					[0xb7, 0x03, 0, 0, 0],
					[0xb7, 0x05, 0, 0, 64],
					[0x85, 0x00, 0, 0, 25],
					[0x95, 0x00, 0, 0, 0],
				].flatMap(([op, regs, o1, o2, imm]) => {
					const b = Buffer.alloc(8);
					b[0] = op as number;
					b[1] = regs as number;
					b[2] = o1 as number;
					b[3] = o2 as number;
					b.writeInt32LE(imm as number, 4);
					return [...b];
				}),
			),
		});
		const ctx = Buffer.alloc(64);
		// 16 pages of 64 KiB hold 963 records of 8 + 4 + 64 (+ 4 padding) bytes.
		let written = 0;
		while (prog.run(ctx) === 0n) written++;
		expect(written).toBe(Math.floor((16 * 4096) / 80));
		expect(prog.run(ctx)).toBe(neg(28)); // ENOSPC
		expect(perf.stats().lost).toBe(2n);
		const first = await perf.read({ timeoutMs: 1000 });
		expect(first.filter((r) => r.type === 'sample').length).toBe(written);
		expect(prog.run(ctx)).toBe(0n);
		const next = await perf.read({ timeoutMs: 1000 });
		expect(next.map((r) => r.type)).toEqual(['lost', 'sample']);
		expect(next[0]).toMatchObject({ type: 'lost', cpu: 0, lost: 2n });
	});

	it('exports its slots (perf event ids) to JSON and imports them, without the unread samples', () => {
		const { reg } = freshRegistry('perf_json');
		const map = reg.createMap({
			type: MapType.PerfEventArray,
			name: 'events',
			keySize: 4,
			valueSize: 4,
			maxEntries: 2,
		});
		using _perf = PerfEventArray.open(reg, map);
		const ids = [0, 1].map((k) => map.lookup(Buffer.from([k, 0, 0, 0]))?.readUInt32LE(0));
		const { reg: copy } = freshRegistry('perf_json2');
		copy.importJson(reg.exportJson());
		const imported = copy.map(map.id);
		expect([0, 1].map((k) => imported.lookup(Buffer.from([k, 0, 0, 0]))?.readUInt32LE(0))).toEqual(ids);
		expect(ids.map((id) => copy.get(id as number)?.kind)).toEqual(['perf_event', 'perf_event']);
	});

	it('is refused with the kernel errno for attributes the kernel refuses, and keeps only perf event ids', () => {
		const { reg } = freshRegistry('perf_attrs');
		const base = { type: MapType.PerfEventArray, name: 'events', keySize: 4, valueSize: 4, maxEntries: 4 };
		expect(errorOf(() => reg.createMap({ ...base, valueSize: 8 }))).toMatchObject({ code: 'EINVAL' });
		expect(errorOf(() => reg.createMap({ ...base, keySize: 8 }))).toMatchObject({ code: 'EINVAL' });
		expect(errorOf(() => reg.createMap({ ...base, maxEntries: 0 }))).toMatchObject({ code: 'EINVAL' });
		const map = reg.createMap(base);
		const hash = reg.createMap({ type: MapType.Hash, name: 'h', keySize: 4, valueSize: 4, maxEntries: 4 });
		// Values are perf event ids: the registry refuses a map's id and an empty id.
		expect(errorOf(() => map.update(Buffer.from([0, 0, 0, 0]), Buffer.from([hash.id, 0, 0, 0])))).toMatchObject({
			code: 'EINVAL',
			message: expect.stringMatching(/is not a perf_event/),
		});
		expect(errorOf(() => map.update(Buffer.from([0, 0, 0, 0]), Buffer.from([99, 0, 0, 0])))).toMatchObject({
			code: 'EBADF',
		});
		expect(errorOf(() => PerfEventArray.open(reg, hash))).toMatchObject({ code: 'EINVAL' });
		expect(errorOf(() => PerfEventArray.open(reg, map, { slots: 5 }))).toMatchObject({ code: 'EINVAL' });
	});

	it("three producer processes writing into one slot at once: each one's samples stay in its order, and every refused sample is reported lost", async () => {
		expect(tool, 'bpftime-ringbuf-tool is built with the package').toBeDefined();
		const { reg, name } = freshRegistry('perf_multi', { sizeMb: 16 });
		const map = reg.createMap({
			type: MapType.PerfEventArray,
			name: 'events',
			keySize: 4,
			valueSize: 4,
			maxEntries: 1,
		});
		const perf = PerfEventArray.open(reg, map);
		const producers = 3;
		const each = 100_000;
		const step = 1n << 32n;
		const runs = Array.from({ length: producers }, (_, p) =>
			run(tool as string, ['perf-produce', name, String(map.id), String(each), String(BigInt(p) * step)]),
		);
		const next = new Array<bigint>(producers).fill(0n);
		let wrong = 0;
		let lost = 0n;
		let total = 0;
		for await (const r of perf.records()) {
			if (r.type === 'lost') {
				lost += r.lost;
				continue;
			}
			const v = r.data.readBigUInt64LE(0);
			const p = Number(v / step);
			if (p >= producers || v % step !== next[p]) wrong++;
			else next[p] = (next[p] as bigint) + 1n;
			if (++total === producers * each) break;
		}
		let full = 0;
		for (const r of await Promise.all(runs)) full += Number(/buffer full (\d+) times/.exec(r.stdout)?.[1]);
		for (const r of await perf.read({ timeoutMs: 20 })) if (r.type === 'lost') lost += r.lost;
		expect(wrong).toBe(0);
		expect(next).toEqual(new Array(producers).fill(BigInt(each)));
		expect(lost).toBe(BigInt(full));
		perf.close();
	});

	it('a producer process writing 1,000,000 samples reaches the async iterator in order, every sample either delivered or reported lost', async () => {
		expect(tool, 'bpftime-ringbuf-tool is built with the package').toBeDefined();
		const { reg, name } = freshRegistry('perf_million', { sizeMb: 16 });
		const map = reg.createMap({
			type: MapType.PerfEventArray,
			name: 'events',
			keySize: 4,
			valueSize: 4,
			maxEntries: 1,
		});
		const perf = PerfEventArray.open(reg, map);
		const records = 1_000_000;
		const child = spawn(tool as string, ['perf-produce', name, String(map.id), String(records)], {
			stdio: ['ignore', 'pipe', 'pipe'],
		});
		let out = '';
		child.stdout.on('data', (d) => (out += d));
		child.stderr.on('data', (d) => (out += d));
		const exited = new Promise<number | null>((resolve) => child.on('exit', resolve));
		// The producer retries a sample the full buffer refused, so the samples come without gaps and
		// each refusal is reported in a PERF_RECORD_LOST.
		let next = 0n;
		let wrong = 0;
		let lost = 0n;
		for await (const r of perf.records()) {
			if (r.type === 'lost') {
				lost += r.lost;
				continue;
			}
			if (r.data.length !== 12 || r.data.readBigUInt64LE(0) !== next) wrong++;
			next++;
			if (next === BigInt(records)) break;
		}
		expect(await exited).toBe(0);
		const full = Number(/buffer full (\d+) times/.exec(out)?.[1]);
		expect(wrong).toBe(0);
		expect(next).toBe(BigInt(records));
		// Lost reports still pending in the buffer come with the next read.
		for (const r of await perf.read({ timeoutMs: 20 })) if (r.type === 'lost') lost += r.lost;
		expect(lost).toBe(BigInt(full));
		expect(perf.stats().lost).toBe(BigInt(full));
		const { sleeps } = perf.stats();
		console.log(`1M perf samples: consumer slept ${sleeps} times, the producer found the buffer full ${full} times`);
		expect(sleeps).toBeLessThan(BigInt(records / 10));
		perf.close();
	});
});
