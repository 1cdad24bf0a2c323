import { execFile, spawn } from 'node:child_process';
import { rmSync } from 'node:fs';
import { promisify } from 'node:util';
import { findBuilt } from '@bpftime/common';
import { type Backend, type BpfMap, MapType, ProgType, type Registry } from '@bpftime/handlers';
import { assemble } from '@bpftime/vm';
import { beforeAll, describe, expect, it } from 'vitest';
import { RingBuf } from '../src/index.js';
import { compileBpf, findClang, linkProgram, readBpfObject } from './bpf-object.js';
import { errorOf, freshRegistry } from './helpers.js';

const run = promisify(execFile);
const packageDir = new URL('..', import.meta.url).pathname;
const tool = findBuilt(packageDir, 'bpftime-ringbuf-tool');
const source = new URL('./fixtures/ringbuf.bpf.c', import.meta.url).pathname;
const backends: Backend[] = ['interpreter', 'jit'];

// The kernel's constants (include/uapi/linux/bpf.h).
const BPF_RB_NO_WAKEUP = 1n;
const BPF_RB_FORCE_WAKEUP = 2n;
const BPF_RB_AVAIL_DATA = 0n;
const BPF_RB_RING_SIZE = 1n;
const BPF_RB_CONS_POS = 2n;
const BPF_RB_PROD_POS = 3n;

let object: string | undefined;
let skipReason = '';

beforeAll(async () => {
	const clang = await findClang();
	if (!clang) {
		skipReason = 'no clang on PATH (clang, clang-19, clang-14) to build test/fixtures/ringbuf.bpf.c';
		return;
	}
	object = await compileBpf(clang, source);
	return () => {
		if (object) rmSync(object, { force: true });
	};
});

function input(seq: bigint, flags = 0n, discard = 0, size = 0): Buffer {
	const b = Buffer.alloc(24);
	b.writeBigUInt64LE(seq, 0);
	b.writeBigUInt64LE(flags, 8);
	b.writeUInt32LE(discard, 16);
	b.writeUInt32LE(size, 20);
	return b;
}

/** The fixture's programs, linked to the map `events`. */
function load(reg: Registry, events: BpfMap, backend: Backend) {
	const obj = readBpfObject(object as string);
	const progs = Object.fromEntries(
		['emit', 'output', 'query', 'big', 'dyn'].map((name) => {
			const code = obj.programs.get(`uprobe/${name}`);
			if (!code) throw new Error(`the fixture has no section uprobe/${name}`);
			const insns = linkProgram(code, () => events.id);
			const p = reg.loadProg({ type: ProgType.Kprobe, name, license: 'GPL', insns });
			p.instantiate({ backend });
			return [name, (ctx: Buffer) => p.run(ctx, { backend })];
		}),
	) as Record<'emit' | 'output' | 'query' | 'big' | 'dyn', (ctx: Buffer) => bigint>;
	return progs;
}

describe.each(backends)('clang-built ring buffer programs on the %s', (backend) => {
	it('deliver submitted records in order, skip discarded ones, and report positions', async (ctx) => {
		if (!object) {
			console.log(`skipped: ${skipReason}`);
			ctx.skip();
			return;
		}
		const { reg } = freshRegistry(`rb_${backend}`);
		const events = reg.createMap({ type: MapType.Ringbuf, name: 'events', keySize: 0, valueSize: 0, maxEntries: 4096 });
		const p = load(reg, events, backend);
		using ring = RingBuf.open(events);

		expect(p.emit(input(1n))).toBe(0n);
		expect(p.emit(input(2n, 0n, 1))).toBe(0n); // discarded
		expect(p.emit(input(3n, BPF_RB_NO_WAKEUP))).toBe(0n);
		expect(p.output(input(4n))).toBe(0n);
		// Each record: the 8-byte header, then 16 bytes of sample.
		expect(p.query(input(0n, BPF_RB_AVAIL_DATA))).toBe(4n * 24n);
		expect(p.query(input(0n, BPF_RB_RING_SIZE))).toBe(4096n);
		expect(p.query(input(0n, BPF_RB_PROD_POS))).toBe(96n);
		expect(p.query(input(0n, BPF_RB_CONS_POS))).toBe(0n);
		expect(p.query(input(0n, 99n))).toBe(0n);
		// bpf_ringbuf_output refuses flags other than the wake-up ones.
		expect(p.output(input(5n, 4n))).toBe(BigInt.asUintN(64, -22n));

		const recs = await ring.read({ timeoutMs: 1000 });
		expect(recs.map((r) => r.length)).toEqual([16, 16, 16]);
		expect(recs.map((r) => r.readBigUInt64LE(0))).toEqual([1n, 3n, 4n]);
		expect(recs[0]?.readUInt32LE(8)).toBe(process.pid);
		expect(recs[0]?.readUInt32LE(12)).toBe(0x45564e54);
		expect(p.query(input(0n, BPF_RB_CONS_POS))).toBe(96n);
		expect(p.query(input(0n, BPF_RB_AVAIL_DATA))).toBe(0n);
	});

	it('makes records through ring buffer dynptrs: reserve_dynptr, dynptr_write, submit_dynptr or discard_dynptr', async (ctx) => {
		if (!object) {
			console.log(`skipped: ${skipReason}`);
			ctx.skip();
			return;
		}
		const { reg } = freshRegistry(`rb_dyn_${backend}`);
		const events = reg.createMap({ type: MapType.Ringbuf, name: 'events', keySize: 0, valueSize: 0, maxEntries: 4096 });
		const p = load(reg, events, backend);
		using ring = RingBuf.open(events);
		expect(p.dyn(input(5n))).toBe(0n);
		expect(p.dyn(input(6n, 0n, 1))).toBe(0n); // discarded
		expect(p.dyn(input(7n))).toBe(0n);
		const recs = await ring.read({ timeoutMs: 1000 });
		expect(recs.map((r) => [r.readBigUInt64LE(0), r.readUInt32LE(12)])).toEqual([
			[5n, 0x44594e50],
			[7n, 0x44594e50],
		]);
		// No room: the kernel's EAGAIN, and the dynptr is null (its discard does nothing).
		while (p.emit(input(0n)) === 0n);
		expect(p.dyn(input(8n))).toBe(BigInt.asUintN(64, -11n));
	});

	it('does not wake a sleeping consumer for BPF_RB_NO_WAKEUP, and does for BPF_RB_FORCE_WAKEUP', async (ctx) => {
		if (!object) {
			console.log(`skipped: ${skipReason}`);
			ctx.skip();
			return;
		}
		const { reg } = freshRegistry(`rb_wake_${backend}`);
		const events = reg.createMap({ type: MapType.Ringbuf, name: 'events', keySize: 0, valueSize: 0, maxEntries: 4096 });
		const p = load(reg, events, backend);
		using ring = RingBuf.open(events);
		const started = Date.now();
		const pending = ring.read({ timeoutMs: 10_000 });
		expect(p.emit(input(1n, BPF_RB_NO_WAKEUP))).toBe(0n);
		expect(ring.stats().wakeups).toBe(0n);
		// A consumer asleep at position 0 is not woken by record 2 without the flag (it has not caught up
		// to it); with BPF_RB_FORCE_WAKEUP the pending read returns long before its 10 s timeout. (A
		// consumer that had not gone to sleep yet finds the records itself.)
		expect(p.emit(input(2n, BPF_RB_FORCE_WAKEUP))).toBe(0n);
		const got = await pending;
		expect(Date.now() - started).toBeLessThan(5000);
		if (got.length === 1) got.push(...(await ring.read({ timeoutMs: 1000 })));
		expect(got.map((r) => r.readBigUInt64LE(0))).toEqual([1n, 2n]);
	});

	it('refuses a reservation that does not fit and accepts records that wrap around the end', async (ctx) => {
		if (!object) {
			console.log(`skipped: ${skipReason}`);
			ctx.skip();
			return;
		}
		const { reg } = freshRegistry(`rb_full_${backend}`);
		const events = reg.createMap({ type: MapType.Ringbuf, name: 'events', keySize: 0, valueSize: 0, maxEntries: 4096 });
		const p = load(reg, events, backend);
		using ring = RingBuf.open(events);
		// The kernel's limit: the record with its header must fit in the ring.
		expect(p.big(input(0n, 0n, 0, 4096 - 8))).toBe(0n);
		// A discarded record keeps its space until the consumer passes it (handing out nothing).
		expect(p.big(input(0n, 0n, 0, 8))).toBe(1n);
		expect(await ring.read({ timeoutMs: 1 })).toEqual([]);
		expect(p.big(input(0n, 0n, 0, 4096 - 7))).toBe(1n);
		expect(p.big(input(0n, 0n, 0, 4097))).toBe(1n);
		// 4096 / 24 = 170 records fit; the 171st does not until the consumer reads.
		let seq = 0n;
		for (let i = 0; i < 170; i++) expect(p.emit(input(seq++))).toBe(0n);
		expect(p.emit(input(seq))).toBe(1n);
		let next = 0n;
		// Reading makes room; the positions wrap past the end of the data many times.
		for (let round = 0; round < 20; round++) {
			for (const r of await ring.read({ timeoutMs: 1000 })) expect(r.readBigUInt64LE(0)).toBe(next++);
			for (let i = 0; i < 100; i++) expect(p.emit(input(seq++))).toBe(0n);
		}
		for (const r of await ring.read({ timeoutMs: 1000 })) expect(r.readBigUInt64LE(0)).toBe(next++);
		expect(next).toBe(seq);
	});
});

describe('the ring buffer map', () => {
	it('is refused with the kernel errno for attributes the kernel refuses', () => {
		const { reg } = freshRegistry('rb_attrs');
		const base = { type: MapType.Ringbuf, name: 'rb', keySize: 0, valueSize: 0, maxEntries: 4096 };
		expect(errorOf(() => reg.createMap({ ...base, maxEntries: 4095 }))).toMatchObject({
			code: 'EINVAL',
			message: expect.stringMatching(/max_entries 4095: a ring buffer's size must be a power of two/),
		});
		expect(errorOf(() => reg.createMap({ ...base, maxEntries: 3 * 4096 }))).toMatchObject({ code: 'EINVAL' });
		expect(errorOf(() => reg.createMap({ ...base, keySize: 4 }))).toMatchObject({
			code: 'EINVAL',
			message: expect.stringMatching(/key size 4: ring buffer maps take no key/),
		});
		expect(errorOf(() => reg.createMap({ ...base, valueSize: 8 }))).toMatchObject({ code: 'EINVAL' });
		expect(reg.list()).toEqual([]);
		const rb = reg.createMap(base);
		// User space reads records through a consumer, not by key: the kernel answers ENOTSUPP.
		expect(errorOf(() => rb.lookup(Buffer.alloc(0)))).toMatchObject({ code: 'ENOTSUPP' });
		expect(errorOf(() => rb.update(Buffer.alloc(0), Buffer.alloc(0)))).toMatchObject({ code: 'ENOTSUPP' });
		expect(rb.nextKey()).toBeUndefined();
		const hash = reg.createMap({ type: MapType.Hash, name: 'h', keySize: 4, valueSize: 4, maxEntries: 4 });
		expect(errorOf(() => RingBuf.open(hash))).toMatchObject({
			code: 'EINVAL',
			message: "map 'h' (id 1): ring buffer: expected BPF_MAP_TYPE_RINGBUF but the map is BPF_MAP_TYPE_HASH",
		});
	});

	it('exports the map without its unread records, and imports it empty', () => {
		const { reg } = freshRegistry('rb_json');
		const rb = reg.createMap({ type: MapType.Ringbuf, name: 'rb', keySize: 0, valueSize: 0, maxEntries: 8192 });
		const prog = reg.loadProg({
			type: ProgType.Kprobe,
			name: 'one',
			insns: assemble(`
				r1 = map_by_fd(${rb.id}) ll
				r2 = r10
				r2 += -8
				*(u64 *)(r10 - 8) = r2
				r3 = 8
				r4 = 0
				call 130
				exit`),
		});
		expect(prog.run(Buffer.alloc(8))).toBe(0n);
		const json = reg.exportJson();
		const { reg: other } = freshRegistry('rb_json2');
		other.importJson(json);
		const copy = other.map(rb.id);
		expect(copy.typeName).toBe('BPF_MAP_TYPE_RINGBUF');
		expect(copy.maxEntries).toBe(8192);
	});

	it('close() ends a pending read, which returns no records', async () => {
		const { reg } = freshRegistry('rb_close');
		const rb = reg.createMap({ type: MapType.Ringbuf, name: 'rb', keySize: 0, valueSize: 0, maxEntries: 4096 });
		const ring = RingBuf.open(rb);
		const pending = ring.read();
		setTimeout(() => ring.close(), 50);
		expect(await pending).toEqual([]);
		await expect(ring.read()).rejects.toMatchObject({ code: 'EBADF' });
	});

	it('a producer process writing 1,000,000 records reaches the async iterator once each, in order, with the consumer sleeping instead of polling', async () => {
		expect(tool, 'bpftime-ringbuf-tool is built with the package').toBeDefined();
		const { reg, name } = freshRegistry('rb_million', { sizeMb: 16 });
		const rb = reg.createMap({ type: MapType.Ringbuf, name: 'rb', keySize: 0, valueSize: 0, maxEntries: 1 << 16 });
		const ring = RingBuf.open(rb);
		const records = 1_000_000;
		const child = spawn(tool as string, ['produce', name, String(rb.id), String(records)], {
			stdio: ['ignore', 'pipe', 'pipe'],
		});
		let out = '';
		child.stdout.on('data', (d) => (out += d));
		child.stderr.on('data', (d) => (out += d));
		const exited = new Promise<number | null>((resolve) => child.on('exit', resolve));
		let next = 0n;
		let wrong = 0;
		for await (const rec of ring.records()) {
			if (rec.length !== 8 || rec.readBigUInt64LE(0) !== next) wrong++;
			next++;
			if (next === BigInt(records)) break;
		}
		expect(await exited).toBe(0);
		expect(out).toMatch(/^produced 1000000/);
		expect(wrong).toBe(0);
		expect(next).toBe(BigInt(records));
		// Nothing more arrives: every record came exactly once.
		expect(await ring.read({ timeoutMs: 20 })).toEqual([]);
		const stats = ring.stats();
		console.log(`1M records: consumer slept ${stats.sleeps} times, producers woke it ${stats.wakeups} times`);
		// A busy consumer would make millions of empty reads; this one sleeps, and only after it
		// has caught up with the producer, which then wakes it.
		expect(stats.sleeps).toBeGreaterThan(0n);
		expect(stats.sleeps).toBeLessThan(BigInt(records / 10));
		expect(stats.wakeups).toBeLessThan(BigInt(records / 10));
		ring.close();
	});

	it("four producer processes writing into one ring at once lose nothing, and each one's records stay in its order", async () => {
		expect(tool, 'bpftime-ringbuf-tool is built with the package').toBeDefined();
		const { reg, name } = freshRegistry('rb_multi', { sizeMb: 16 });
		const rb = reg.createMap({ type: MapType.Ringbuf, name: 'rb', keySize: 0, valueSize: 0, maxEntries: 1 << 14 });
		const ring = RingBuf.open(rb);
		const producers = 4;
		const each = 100_000;
		const step = 1n << 32n;
		const runs = Array.from({ length: producers }, (_, p) =>
			run(tool as string, ['produce', name, String(rb.id), String(each), String(BigInt(p) * step)]),
		);
		const next = new Array<bigint>(producers).fill(0n);
		let wrong = 0;
		let total = 0;
		for await (const rec of ring.records()) {
			const v = rec.readBigUInt64LE(0);
			const p = Number(v / step);
			if (p >= producers || v % step !== next[p]) wrong++;
			else next[p] = (next[p] as bigint) + 1n;
			if (++total === producers * each) break;
		}
		for (const r of await Promise.all(runs)) expect(r.stdout).toMatch(/^produced 100000/);
		expect(wrong).toBe(0);
		expect(next).toEqual(new Array(producers).fill(BigInt(each)));
		expect(await ring.read({ timeoutMs: 20 })).toEqual([]);
		ring.close();
	});

	it("keeps the kernel's mmap layout: a consumer mapping the segment file as libbpf maps a ring (consumer page, producer page, data twice) reads every record in order", async () => {
		expect(tool, 'bpftime-ringbuf-tool is built with the package').toBeDefined();
		const { stdout } = await run(tool as string, ['xproc', 'mmap', '200000', String(1 << 16)]);
		expect(JSON.parse(stdout)).toMatchObject({ records: 200000, received: 200000, lost: 0, in_order: true });
	});

	it('a consumer process and a producer process on one ring see every record once, in order', async () => {
		expect(tool, 'bpftime-ringbuf-tool is built with the package').toBeDefined();
		const { stdout } = await run(tool as string, ['xproc', 'bpftime', '1000000', String(1 << 16)]);
		const r = JSON.parse(stdout);
		expect(r).toMatchObject({ records: 1000000, received: 1000000, lost: 0, in_order: true });
		expect(r.sleeps).toBeLessThan(1000000 / 10);
	});
});
