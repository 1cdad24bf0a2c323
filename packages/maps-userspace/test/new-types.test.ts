import { rmSync } from 'node:fs';
import {
	type Backend,
	type BpfMap,
	MapFlags,
	MapType,
	ProgType,
	type Registry,
	UpdateFlags,
	u32,
	u64,
} from '@bpftime/handlers';
import { beforeAll, describe, expect, it } from 'vitest';
import { BloomFilter, LpmTrie, LruHash, LruPercpuHash, PercpuArray, PercpuHash, Queue, Stack } from '../src/index.js';
import { compileBpf, findClang, linkProgram, readBpfObject } from './bpf-object.js';
import { errorOf, freshRegistry, runChild } from './helpers.js';

const NO_KEY = Buffer.alloc(0);

function queueSpec(type: number, maxEntries = 4) {
	return { type, name: 'q', keySize: 0, valueSize: 8, maxEntries };
}

describe.each([
	['BPF_MAP_TYPE_QUEUE', MapType.Queue, [1n, 2n, 3n]],
	['BPF_MAP_TYPE_STACK', MapType.Stack, [3n, 2n, 1n]],
] as const)('%s from Node', (_, type, order) => {
	const view = (m: BpfMap) => (type === MapType.Queue ? new Queue(m, u64) : new Stack(m, u64));

	it('pops values in its order, peeks without removing, and is empty after', () => {
		const { reg } = freshRegistry('qs_order');
		const q = view(reg.createMap(queueSpec(type)));
		q.push(1n).push(2n).push(3n);
		expect(q.peek()).toBe(order[0]);
		expect([...q.drain()]).toEqual(order);
		expect(q.pop()).toBeUndefined();
		expect(q.peek()).toBeUndefined();
	});

	it('answers E2BIG when full, and with BPF_EXIST drops the oldest value instead', () => {
		const { reg } = freshRegistry('qs_full');
		const q = view(reg.createMap(queueSpec(type, 2)));
		q.push(1n).push(2n);
		const e = errorOf(() => q.push(3n));
		expect([e.code, e.errno]).toEqual(['E2BIG', 7]);
		q.push(3n, UpdateFlags.Exist);
		// The oldest (1) went: a queue gives 2 then 3, a stack 3 then 2.
		expect([...q.drain()]).toEqual(type === MapType.Queue ? [2n, 3n] : [3n, 2n]);
	});

	it('refuses BPF_NOEXIST, deletes and get_next_key with EINVAL, as the kernel', () => {
		const { reg } = freshRegistry('qs_refuse');
		const m = reg.createMap(queueSpec(type));
		expect(errorOf(() => m.update(NO_KEY, Buffer.alloc(8), UpdateFlags.NoExist)).code).toBe('EINVAL');
		expect(errorOf(() => m.delete(NO_KEY)).code).toBe('EINVAL');
		expect(errorOf(() => m.nextKey()).code).toBe('EINVAL');
	});
});

describe('BPF_MAP_TYPE_BLOOM_FILTER from Node', () => {
	it('finds every value added and few of the others', () => {
		const { reg } = freshRegistry('bloom');
		const b = new BloomFilter(
			reg.createMap({ type: MapType.BloomFilter, name: 'b', keySize: 0, valueSize: 8, maxEntries: 500, mapExtra: 4n }),
			u64,
		);
		for (let i = 0n; i < 500n; i++) b.add(i * 7919n);
		for (let i = 0n; i < 500n; i++) expect(b.has(i * 7919n)).toBe(true);
		let falsePositives = 0;
		for (let i = 0n; i < 500n; i++) falsePositives += b.has(i * 7919n + 1n) ? 1 : 0;
		expect(falsePositives).toBeLessThan(50);
	});

	it('refuses map_extra above 15 hash functions with EINVAL naming map_extra', () => {
		const { reg } = freshRegistry('bloom_extra');
		const e = errorOf(() =>
			reg.createMap({ type: MapType.BloomFilter, name: 'b', keySize: 0, valueSize: 8, maxEntries: 5, mapExtra: 16n }),
		);
		expect(e.code).toBe('EINVAL');
		expect(e.message).toMatch(/map_extra/);
	});
});

describe('BPF_MAP_TYPE_LPM_TRIE from Node', () => {
	const spec = {
		type: MapType.LpmTrie,
		name: 'routes',
		keySize: 8,
		valueSize: 4,
		maxEntries: 8,
		flags: MapFlags.NoPrealloc,
	};
	const p = (prefixLen: number, ...data: number[]) => ({ prefixLen, data: Buffer.from(data) });

	it('answers the longest matching prefix and walks in the kernel order', () => {
		const { reg } = freshRegistry('lpm');
		const t = new LpmTrie(reg.createMap(spec), u32);
		t.set(p(8, 10, 0, 0, 0), 8)
			.set(p(16, 10, 1, 0, 0), 16)
			.set(p(24, 10, 1, 2, 0), 24)
			.set(p(16, 10, 2, 0, 0), 2);
		expect(t.get(Buffer.from([10, 1, 2, 3]))).toBe(24);
		expect(t.get(Buffer.from([10, 1, 3, 3]))).toBe(16);
		expect(t.get(Buffer.from([10, 9, 9, 9]))).toBe(8);
		expect(t.get(Buffer.from([11, 0, 0, 0]))).toBeUndefined();
		// Post-order of the trie (the kernel's trie_get_next_key): deepest first, left before right.
		expect([...t.entries()].map(([k, v]) => [k.prefixLen, [...k.data], v])).toEqual([
			[24, [10, 1, 2, 0], 24],
			[16, [10, 1, 0, 0], 16],
			[16, [10, 2, 0, 0], 2],
			[8, [10, 0, 0, 0], 8],
		]);
		expect(t.delete(p(16, 10, 1, 0, 0))).toBe(true);
		expect(t.get(Buffer.from([10, 1, 3, 3]))).toBe(8);
		expect(t.delete(p(16, 10, 1, 0, 0))).toBe(false);
	});

	it('answers ENOSPC when full and EINVAL for a prefix longer than the data', () => {
		const { reg } = freshRegistry('lpm_full');
		const t = new LpmTrie(reg.createMap({ ...spec, maxEntries: 2 }), u32);
		t.set(p(8, 1, 0, 0, 0), 1).set(p(8, 2, 0, 0, 0), 2);
		expect(errorOf(() => t.set(p(8, 3, 0, 0, 0), 3)).code).toBe('ENOSPC');
		t.set(p(8, 2, 0, 0, 0), 22); // replacing takes no room
		expect(errorOf(() => t.set(p(33, 3, 0, 0, 0), 3)).code).toBe('EINVAL');
	});

	it('answers ENOMEM when the segment is full, keeping its entries and the other maps', () => {
		const { reg } = freshRegistry('lpm_nomem', { sizeMb: 4 });
		const kept = reg
			.createMap({ type: MapType.Hash, name: 'kept', keySize: 4, valueSize: 8, maxEntries: 4 })
			.typed(u32, u64);
		kept.set(1, 11n);
		const t = { map: reg.createMap({ ...spec, valueSize: 65536, maxEntries: 1000 }) };
		const value = Buffer.alloc(65536, 7);
		let added = 0;
		let error: ReturnType<typeof errorOf> | undefined;
		for (let i = 0; i < 1000 && !error; i++) {
			try {
				t.map.update(Buffer.from([32, 0, 0, 0, 10, 0, i >> 8, i & 255]), value);
				added++;
			} catch (e) {
				error = e as ReturnType<typeof errorOf>;
			}
		}
		expect(error?.code).toBe('ENOMEM');
		expect(added).toBeGreaterThan(10);
		for (let i = 0; i < added; i++)
			expect(t.map.lookup(Buffer.from([32, 0, 0, 0, 10, 0, i >> 8, i & 255]))?.equals(value)).toBe(true);
		expect(kept.get(1)).toBe(11n);
	});

	it('is refused without BPF_F_NO_PREALLOC, naming it', () => {
		const { reg } = freshRegistry('lpm_prealloc');
		const e = errorOf(() => reg.createMap({ ...spec, flags: 0 }));
		expect(e.code).toBe('EINVAL');
		expect(e.message).toMatch(/BPF_F_NO_PREALLOC/);
	});
});

describe('per-CPU maps from Node', () => {
	it('reads and writes every CPU value of a per-CPU array, each in 8 bytes', () => {
		const { reg } = freshRegistry('pcpu');
		const m = reg.createMap({ type: MapType.PercpuArray, name: 'pc', keySize: 4, valueSize: 4, maxEntries: 2 });
		const a = new PercpuArray(m, u32);
		expect(m.userValueSize).toBe(8 * a.cpus);
		a.set(
			1,
			Array.from({ length: a.cpus }, (_, i) => i + 1),
		);
		expect(a.get(1)).toEqual(Array.from({ length: a.cpus }, (_, i) => i + 1));
		expect(a.sum(1)).toBe((a.cpus * (a.cpus + 1)) / 2);
		expect(a.get(2)).toBeUndefined();
		expect(errorOf(() => a.set(0, [1])).message).toMatch(/per-CPU values/);
	});

	it.each([
		['PercpuHash', MapType.PercpuHash],
		['LruPercpuHash', MapType.LruPercpuHash],
	] as const)('%s stores every CPU value of each key', (_, type) => {
		const { reg } = freshRegistry('pcpu_hash');
		const m = reg.createMap({ type, name: 'ph', keySize: 4, valueSize: 8, maxEntries: 8 });
		const h = type === MapType.PercpuHash ? new PercpuHash(m, u32, u64) : new LruPercpuHash(m, u32, u64);
		h.set(5, 7n);
		expect(h.get(5)).toEqual(new Array(h.cpus).fill(7n));
		expect([...h.entries()]).toEqual([[5, new Array(h.cpus).fill(7n)]]);
		expect(h.delete(5)).toBe(true);
		expect(h.get(5)).toBeUndefined();
	});

	it('refuses a view of another map type, naming both', () => {
		const { reg } = freshRegistry('view_type');
		const m = reg.createMap({ type: MapType.Hash, name: 'h', keySize: 4, valueSize: 8, maxEntries: 8 });
		expect(errorOf(() => new PercpuHash(m, u32, u64)).message).toMatch(
			/map 'h' \(id 0\): PercpuHash views a BPF_MAP_TYPE_PERCPU_HASH map, not a BPF_MAP_TYPE_HASH map/,
		);
		expect(errorOf(() => new Queue(m, u64)).code).toBe('EINVAL');
	});
});

describe('BPF_MAP_TYPE_LRU_HASH from Node', () => {
	it('takes new keys when full by evicting, never growing past max_entries', () => {
		const { reg } = freshRegistry('lru');
		const l = new LruHash(
			reg.createMap({ type: MapType.LruHash, name: 'l', keySize: 4, valueSize: 8, maxEntries: 32 }),
			u32,
			u64,
		);
		for (let i = 0; i < 100; i++) l.set(i, BigInt(i));
		const keys = [...l.keys()];
		expect(keys.length).toBe(32);
		// The last insert is always there; every value belongs to its key.
		expect(l.get(99)).toBe(99n);
		for (const [k, v] of l.entries()) expect(v).toBe(BigInt(k));
		expect(l.take(99)).toBe(99n);
		expect(l.get(99)).toBeUndefined();
	});

	it('is refused with BPF_F_NO_PREALLOC with ENOTSUPP, as the kernel', () => {
		const { reg } = freshRegistry('lru_np');
		const e = errorOf(() =>
			reg.createMap({
				type: MapType.LruHash,
				name: 'l',
				keySize: 4,
				valueSize: 8,
				maxEntries: 4,
				flags: MapFlags.NoPrealloc,
			}),
		);
		expect([e.code, e.errno]).toEqual(['ENOTSUPP', 524]);
	});
});

describe('JSON export and import of the new types', () => {
	it('round-trips queues, stacks, per-CPU, LRU and LPM maps; bloom filters come back empty', () => {
		const { reg } = freshRegistry('json_new');
		const q = new Queue(reg.createMap(queueSpec(MapType.Queue)), u64);
		const s = new Stack(reg.createMap({ ...queueSpec(MapType.Stack), name: 's' }), u64);
		q.push(1n).push(2n).push(3n);
		s.push(1n).push(2n).push(3n);
		const pa = new PercpuArray(
			reg.createMap({ type: MapType.PercpuArray, name: 'pa', keySize: 4, valueSize: 8, maxEntries: 2 }),
			u64,
		);
		pa.set(1, 9n);
		const t = new LpmTrie(
			reg.createMap({
				type: MapType.LpmTrie,
				name: 't',
				keySize: 8,
				valueSize: 4,
				maxEntries: 4,
				flags: MapFlags.NoPrealloc,
			}),
			u32,
		);
		t.set({ prefixLen: 8, data: Buffer.from([10, 0, 0, 0]) }, 10);
		reg.createMap({ type: MapType.BloomFilter, name: 'b', keySize: 0, valueSize: 8, maxEntries: 8 });
		const json = reg.exportJson();
		const { reg: back } = freshRegistry('json_new_back');
		back.importJson(json);
		const get = (r: Registry, name: string) => r.mapByName(name);
		expect([...new Queue(get(back, 'q'), u64).drain()]).toEqual([1n, 2n, 3n]);
		expect([...new Stack(get(back, 's'), u64).drain()]).toEqual([3n, 2n, 1n]);
		expect(new PercpuArray(get(back, 'pa'), u64).get(1)).toEqual(new Array(pa.cpus).fill(9n));
		expect(new LpmTrie(get(back, 't'), u32).get(Buffer.from([10, 1, 1, 1]))).toBe(10);
	});
});

describe('maps of the new types across processes', () => {
	it('sees what another process pushed into a queue, set in an LPM trie, per-CPU and LRU hash, and added to a bloom filter', async () => {
		const { reg, name } = freshRegistry('xproc_new');
		const q = new Queue(reg.createMap(queueSpec(MapType.Queue, 8)), u64);
		const t = new LpmTrie(
			reg.createMap({
				type: MapType.LpmTrie,
				name: 't',
				keySize: 8,
				valueSize: 4,
				maxEntries: 4,
				flags: MapFlags.NoPrealloc,
			}),
			u32,
		);
		const ph = new PercpuHash(
			reg.createMap({ type: MapType.PercpuHash, name: 'ph', keySize: 4, valueSize: 8, maxEntries: 4 }),
			u32,
			u64,
		);
		const lru = new LruHash(
			reg.createMap({ type: MapType.LruHash, name: 'lru', keySize: 4, valueSize: 8, maxEntries: 4 }),
			u32,
			u64,
		);
		const bloom = new BloomFilter(
			reg.createMap({ type: MapType.BloomFilter, name: 'b', keySize: 0, valueSize: 8, maxEntries: 16 }),
			u64,
		);
		const ids = [q, t, ph, lru, bloom].map((v) => String(v.map.id));
		const child = await runChild('child.mjs', ['new-types', name, ...ids]);
		expect(child.stdout.trim()).toBe('done');
		expect([...q.drain()]).toEqual([100n, 101n, 102n]);
		expect(t.get(Buffer.from([192, 168, 5, 5]))).toBe(16);
		expect(ph.get(7)).toEqual(new Array(ph.cpus).fill(70n));
		expect(lru.get(7)).toBe(70n);
		expect(bloom.has(4242n)).toBe(true);
	});
});

// --- from a program compiled by clang ----------------------------------------

const source = new URL('./fixtures/new_maps.bpf.c', import.meta.url).pathname;
let object: string | undefined;
let skipReason = '';

beforeAll(async () => {
	const clang = await findClang();
	if (!clang) {
		skipReason = 'no clang on PATH (clang, clang-19, clang-14) to build test/fixtures/new_maps.bpf.c';
		return;
	}
	object = await compileBpf(clang, source);
	return () => {
		if (object) rmSync(object, { force: true });
	};
});

const MISS = 0xdeadn;

function input(op: number, key = 0, value = 0n, prefixLen = 0, addr: number[] = [0, 0, 0, 0]): Buffer {
	const b = Buffer.alloc(24);
	b.writeUInt32LE(op, 0);
	b.writeUInt32LE(key, 4);
	b.writeBigUInt64LE(value, 8);
	b.writeUInt32LE(prefixLen, 16);
	b.set(addr, 20);
	return b;
}

describe.each(['interpreter', 'jit'] as Backend[])(
	'a clang-built program using the new map types, on the %s',
	(backend) => {
		it('gets the kernel semantics from the helpers of every type', (ctx) => {
			if (!object) {
				console.log(`skipped: ${skipReason}`);
				ctx.skip();
				return;
			}
			const { reg } = freshRegistry(`newprog_${backend}`);
			const obj = readBpfObject(object);
			const ids: Record<string, number> = {};
			for (const [name, spec] of Object.entries({
				pcpu: { type: MapType.PercpuArray, keySize: 4, valueSize: 8, maxEntries: 4 },
				pcpu_hash: { type: MapType.PercpuHash, keySize: 4, valueSize: 8, maxEntries: 16 },
				lru: { type: MapType.LruHash, keySize: 4, valueSize: 8, maxEntries: 64 },
				lru_pcpu: { type: MapType.LruPercpuHash, keySize: 4, valueSize: 8, maxEntries: 16 },
				queue: { type: MapType.Queue, keySize: 0, valueSize: 8, maxEntries: 8 },
				stack: { type: MapType.Stack, keySize: 0, valueSize: 8, maxEntries: 8 },
				bloom: { type: MapType.BloomFilter, keySize: 0, valueSize: 8, maxEntries: 128, mapExtra: 3n },
				lpm: { type: MapType.LpmTrie, keySize: 8, valueSize: 8, maxEntries: 16, flags: MapFlags.NoPrealloc },
			}))
				ids[name] = reg.createMap({ name, ...spec }).id;
			const code = obj.programs.get('uprobe');
			expect(code).toBeDefined();
			if (!code) return;
			const insns = linkProgram(code, (r) => {
				const id = ids[r.symbol];
				if (id === undefined) throw new Error(`unexpected relocation to ${r.symbol}`);
				return id;
			});
			const prog = reg.loadProg({ type: ProgType.Kprobe, name: 'new_maps', license: 'GPL', insns });
			const run = (b: Buffer) => prog.run(b, { backend });
			const map = (name: string) => reg.map(ids[name] as number);

			// Per-CPU array: the program adds to its CPU's value; user space sees the sum over CPUs.
			for (let i = 0; i < 10; i++) run(input(0, 0, 5n));
			expect(new PercpuArray(map('pcpu'), u64).sum(0)).toBe(50n);
			expect(run(input(0, 9, 1n))).toBe(MISS); // past max_entries
			const pa = new PercpuArray(map('pcpu'), u64);
			pa.set(
				0,
				Array.from({ length: pa.cpus }, (_, i) => BigInt(100 + i)),
			);
			for (let cpu = 0; cpu < pa.cpus; cpu++) expect(run(input(1, cpu))).toBe(BigInt(100 + cpu));
			expect(run(input(1, pa.cpus))).toBe(MISS); // no such CPU

			// Per-CPU hash: a program's update writes one CPU's value; the others stay 0.
			expect(run(input(2, 3, 42n))).toBe(0n);
			const vals = new PercpuHash(map('pcpu_hash'), u32, u64).get(3) ?? [];
			expect(vals.filter((v) => v === 42n).length).toBe(1);
			expect(vals.filter((v) => v === 0n).length).toBe(vals.length - 1);

			// LRU hash: 100 inserts into 64 entries; the newest are there.
			for (let k = 0; k < 100; k++) expect(run(input(3, k, BigInt(k) * 2n))).toBe(0n);
			expect(run(input(4, 99))).toBe(198n);
			expect([...new LruHash(map('lru'), u32, u64).keys()].length).toBe(64);

			// LRU per-CPU hash: the program's CPU value, zero on the others; 40 keys into 16 entries.
			for (let k = 0; k < 40; k++) expect(run(input(13, k, BigInt(k) + 1n))).toBe(0n);
			expect(run(input(14, 39))).toBe(40n);
			const lp = new LruPercpuHash(map('lru_pcpu'), u32, u64);
			expect([...lp.entries()].length).toBe(16);
			const last = lp.get(39) ?? [];
			expect(last.filter((v) => v === 40n).length).toBe(1);
			expect(last.filter((v) => v === 0n).length).toBe(last.length - 1);

			// Queue and stack through push/pop/peek.
			expect(run(input(7))).toBe(MISS);
			for (const v of [1n, 2n, 3n]) expect(run(input(5, 0, v))).toBe(0n);
			expect(run(input(7))).toBe(1n);
			expect(run(input(6))).toBe(1n);
			expect(new Queue(map('queue'), u64).pop()).toBe(2n);
			for (const v of [1n, 2n, 3n]) expect(run(input(8, 0, v))).toBe(0n);
			expect(run(input(9))).toBe(3n);
			for (let i = 0; i < 6; i++) run(input(8, 0, 10n));
			expect(run(input(8, 0, 11n))).toBe(-7n & 0xffffffffffffffffn); // -E2BIG: full
			expect(run(input(8, 2, 11n))).toBe(0n); // BPF_EXIST: drops the oldest

			// Bloom filter: push, then peek finds it.
			expect(run(input(11, 0, 77n))).toBe(-2n & 0xffffffffffffffffn);
			expect(run(input(10, 0, 77n))).toBe(0n);
			expect(run(input(11, 0, 77n))).toBe(0n);
			expect(new BloomFilter(map('bloom'), u64).has(77n)).toBe(true);

			// LPM trie set from Node, matched by the program.
			const t = new LpmTrie(map('lpm'), u64);
			t.set({ prefixLen: 8, data: Buffer.from([10, 0, 0, 0]) }, 8n);
			t.set({ prefixLen: 24, data: Buffer.from([10, 1, 2, 0]) }, 24n);
			expect(run(input(12, 0, 0n, 32, [10, 1, 2, 9]))).toBe(24n);
			expect(run(input(12, 0, 0n, 32, [10, 1, 3, 9]))).toBe(8n);
			expect(run(input(12, 0, 0n, 32, [11, 1, 3, 9]))).toBe(MISS);
		});
	},
);
