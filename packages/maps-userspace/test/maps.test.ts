import { readFileSync } from 'node:fs';
import { MapFlags, MapType, registeredMapTypes, UpdateFlags, u32, u64 } from '@bpftime/handlers';
import { assemble } from '@bpftime/vm';
import { describe, expect, it } from 'vitest';
import { MAP_TYPES } from '../src/index.js';
import { errorOf, freshRegistry, runChild, u32le, u64le } from './helpers.js';

const hashSpec = { type: MapType.Hash, name: 'h', keySize: 4, valueSize: 8, maxEntries: 4 };
const arraySpec = { type: MapType.Array, name: 'a', keySize: 4, valueSize: 8, maxEntries: 4 };

describe('registration', () => {
	it('registers its map types when imported', () => {
		expect(MAP_TYPES.map((t) => t.typeName)).toEqual(
			expect.arrayContaining([
				'BPF_MAP_TYPE_ARRAY',
				'BPF_MAP_TYPE_HASH',
				'BPF_MAP_TYPE_PERCPU_ARRAY',
				'BPF_MAP_TYPE_PERCPU_HASH',
				'BPF_MAP_TYPE_LRU_HASH',
				'BPF_MAP_TYPE_LRU_PERCPU_HASH',
				'BPF_MAP_TYPE_QUEUE',
				'BPF_MAP_TYPE_STACK',
				'BPF_MAP_TYPE_BLOOM_FILTER',
				'BPF_MAP_TYPE_LPM_TRIE',
				'BPF_MAP_TYPE_PROG_ARRAY',
				'BPF_MAP_TYPE_CGROUP_ARRAY',
				'BPF_MAP_TYPE_ARRAY_OF_MAPS',
				'BPF_MAP_TYPE_HASH_OF_MAPS',
				'BPF_MAP_TYPE_STACK_TRACE',
				'BPF_MAP_TYPE_RINGBUF',
				'BPF_MAP_TYPE_USER_RINGBUF',
				'BPF_MAP_TYPE_PERF_EVENT_ARRAY',
			]),
		);
		const provided = registeredMapTypes().filter((t) => t.provider === '@bpftime/maps-userspace');
		const byNumber = (a: number, b: number) => a - b;
		expect(provided.map((t) => t.type).sort(byNumber)).toEqual(MAP_TYPES.map((t) => t.type).sort(byNumber));
		expect(provided.map((t) => t.type)).toContain(MapType.Array);
	});

	it('declares in package.json exactly the map types it registers', () => {
		const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8'));
		expect(pkg.bpftime.mapTypes).toEqual(MAP_TYPES.map((t) => t.typeName));
	});

	it.each([
		['BPF_MAP_TYPE_HASH', hashSpec],
		['BPF_MAP_TYPE_ARRAY', arraySpec],
	])('gives %s values of valueSize bytes to user space (userValueSize, no per-CPU values)', (_, spec) => {
		const { reg } = freshRegistry('uvs');
		const m = reg.createMap({ ...spec, valueSize: 12 });
		expect(m.userValueSize).toBe(12);
		expect(reg.get(m.id)).toMatchObject({ valueSize: 12, userValueSize: 12 });
		m.update(u32le(1), Buffer.alloc(12, 7));
		expect(m.lookup(u32le(1))?.length).toBe(12);
	});
});

describe('BPF_MAP_TYPE_HASH', () => {
	it('stores, replaces, iterates and deletes entries', () => {
		const { reg } = freshRegistry('hash_basic');
		const m = reg.createMap({ ...hashSpec, maxEntries: 64 }).typed(u32, u64);
		for (let i = 0; i < 50; i++) m.set(i, BigInt(i) * 3n);
		m.set(7, 700n);
		expect(m.get(7)).toBe(700n);
		expect(m.get(8)).toBe(24n);
		expect(m.get(99)).toBeUndefined();
		const all = new Map(m.entries(7));
		expect(all.size).toBe(50);
		expect(all.get(49)).toBe(147n);
		expect(m.delete(7)).toBe(true);
		expect(m.delete(7)).toBe(false);
		expect(m.readAll().length).toBe(49);
	});

	it('walks every key with get_next_key, starting from the first for an absent key', () => {
		const { reg } = freshRegistry('hash_next');
		const m = reg.createMap({ ...hashSpec, maxEntries: 16 });
		for (const k of [5, 9, 11]) m.update(u32le(k), u64le(1n));
		const seen: number[] = [];
		for (let k = m.nextKey(); k; k = m.nextKey(k)) seen.push(k.readUInt32LE(0));
		expect(seen.sort((a, b) => a - b)).toEqual([5, 9, 11]);
		// The kernel's htab_map_get_next_key: an absent key restarts at the first element.
		expect(m.nextKey(u32le(1234))?.readUInt32LE(0)).toBe(m.nextKey()?.readUInt32LE(0));
	});

	it('answers ENOENT for BPF_EXIST on an absent key and EEXIST for BPF_NOEXIST on a present one', () => {
		const { reg } = freshRegistry('hash_flags');
		const m = reg.createMap(hashSpec);
		const exist = errorOf(() => m.update(u32le(1), u64le(1n), UpdateFlags.Exist));
		expect([exist.code, exist.errno]).toEqual(['ENOENT', 2]);
		expect(exist.message).toMatch(/map 'h' \(id 0\): update: ENOENT/);
		m.update(u32le(1), u64le(1n), UpdateFlags.NoExist);
		const noexist = errorOf(() => m.update(u32le(1), u64le(2n), UpdateFlags.NoExist));
		expect([noexist.code, noexist.errno]).toEqual(['EEXIST', 17]);
		m.update(u32le(1), u64le(3n), UpdateFlags.Exist);
		expect(m.lookup(u32le(1))?.readBigUInt64LE(0)).toBe(3n);
	});

	it('answers E2BIG when full, still replaces existing keys, and takes a new key after a delete', () => {
		const { reg } = freshRegistry('hash_full');
		const m = reg.createMap(hashSpec).typed(u32, u64);
		for (let i = 0; i < 4; i++) m.set(i, 1n);
		const e = errorOf(() => m.set(4, 1n));
		expect([e.code, e.errno]).toEqual(['E2BIG', 7]);
		m.set(2, 22n);
		expect(m.get(2)).toBe(22n);
		expect(m.get(4)).toBeUndefined();
		m.delete(0);
		m.set(4, 44n);
		expect(m.get(4)).toBe(44n);
		expect(m.readAll().length).toBe(4);
	});

	it('grows with BPF_F_NO_PREALLOC up to max_entries, then answers E2BIG', () => {
		const { reg } = freshRegistry('hash_grow', { sizeMb: 16 });
		const m = reg.createMap({ ...hashSpec, maxEntries: 3000, flags: MapFlags.NoPrealloc }).typed(u32, u64);
		expect(m.setMany(Array.from({ length: 3000 }, (_, i) => [i, BigInt(i)] as [number, bigint]))).toBe(3000);
		expect(errorOf(() => m.set(3000, 0n)).code).toBe('E2BIG');
		expect(m.get(2999)).toBe(2999n);
	});

	it('answers ENOENT to a delete of an absent key, and EINVAL to unknown update flags', () => {
		const { reg } = freshRegistry('hash_errs');
		const m = reg.createMap(hashSpec);
		expect(m.delete(u32le(3))).toBe(false);
		expect(errorOf(() => m.deleteBatch(u32le(3))).code).toBe('ENOENT');
		expect(errorOf(() => m.update(u32le(1), u64le(1n), 3)).code).toBe('EINVAL');
		// BPF_F_LOCK needs a bpf_spin_lock in the value.
		expect(errorOf(() => m.update(u32le(1), u64le(1n), 4)).code).toBe('EINVAL');
		expect(m.lookup(u32le(1))).toBeUndefined();
	});

	it('moves many entries per call with the batch operations', () => {
		const { reg } = freshRegistry('hash_batch');
		const m = reg.createMap({ ...hashSpec, maxEntries: 100 });
		const keys = Buffer.concat(Array.from({ length: 10 }, (_, i) => u32le(i)));
		const values = Buffer.concat(Array.from({ length: 10 }, (_, i) => u64le(BigInt(i * i))));
		expect(m.updateBatch(keys, values)).toBe(10);
		const first = m.lookupBatch(undefined, 6);
		expect(first.count).toBe(6);
		const rest = m.lookupBatch(first.keys.subarray(20, 24), 100);
		expect(rest.count).toBe(4);
		const got = new Map<number, bigint>();
		for (const b of [first, rest])
			for (let i = 0; i < b.count; i++) got.set(b.keys.readUInt32LE(i * 4), b.values.readBigUInt64LE(i * 8));
		expect(got.get(9)).toBe(81n);
		expect(got.size).toBe(10);
		const half = errorOf(() => m.deleteBatch(Buffer.concat([u32le(1), u32le(2), u32le(50), u32le(3)])));
		expect(half.code).toBe('ENOENT');
		expect(half.message).toMatch(/2 deleted/);
		expect(m.lookup(u32le(3))?.readBigUInt64LE(0)).toBe(9n);
	});
});

describe('BPF_MAP_TYPE_ARRAY', () => {
	it('holds max_entries zeroed values and updates them in place', () => {
		const { reg } = freshRegistry('array_basic');
		const m = reg.createMap(arraySpec).typed(u32, u64);
		expect(m.readAll()).toEqual([
			[0, 0n],
			[1, 0n],
			[2, 0n],
			[3, 0n],
		]);
		m.set(2, 5n);
		expect(m.get(2)).toBe(5n);
		m.set(2, 6n, UpdateFlags.Exist);
		expect(m.get(2)).toBe(6n);
	});

	it('answers ENOENT to a lookup past the end, E2BIG to an update past it, EINVAL to a delete', () => {
		const { reg } = freshRegistry('array_errs');
		const m = reg.createMap(arraySpec);
		expect(m.lookup(u32le(4))).toBeUndefined();
		const big = errorOf(() => m.update(u32le(4), u64le(1n)));
		expect([big.code, big.errno]).toEqual(['E2BIG', 7]);
		const del = errorOf(() => m.delete(u32le(0)));
		expect([del.code, del.errno]).toEqual(['EINVAL', 22]);
		// Elements always exist: BPF_NOEXIST is EEXIST (the kernel's array_map_update_elem).
		expect(errorOf(() => m.update(u32le(0), u64le(1n), UpdateFlags.NoExist)).code).toBe('EEXIST');
		expect(errorOf(() => m.update(u32le(0), u64le(1n), 7)).code).toBe('EINVAL');
	});

	it('ends get_next_key after the last index and restarts at 0 past the end', () => {
		const { reg } = freshRegistry('array_next');
		const m = reg.createMap(arraySpec);
		expect(m.nextKey()?.readUInt32LE(0)).toBe(0);
		expect(m.nextKey(u32le(2))?.readUInt32LE(0)).toBe(3);
		expect(m.nextKey(u32le(3))).toBeUndefined();
		expect(m.nextKey(u32le(99))?.readUInt32LE(0)).toBe(0);
	});

	it('exposes the values of a BPF_F_MMAPABLE array in place, and refuses mmap otherwise', () => {
		const { reg } = freshRegistry('array_mmap');
		const m = reg.createMap({ ...arraySpec, flags: MapFlags.Mmapable });
		const mem = m.mmap();
		expect(mem.length).toBe(4096);
		mem.writeBigUInt64LE(0x1234n, 8);
		expect(m.lookup(u32le(1))?.readBigUInt64LE(0)).toBe(0x1234n);
		const plain = reg.createMap({ ...arraySpec, name: 'plain' });
		expect(errorOf(() => plain.mmap()).code).toBe('EINVAL');
	});
});

describe('map errors', () => {
	it.each([
		['an array with 8-byte keys', { ...arraySpec, keySize: 8 }, 'EINVAL', /array keys are 4-byte/],
		['a zero value size', { ...hashSpec, valueSize: 0 }, 'EINVAL', /value size is 0/],
		['zero max_entries', { ...hashSpec, maxEntries: 0 }, 'EINVAL', /max_entries is 0/],
		['a zero key size', { ...hashSpec, keySize: 0 }, 'EINVAL', /key size is 0/],
		['a hash key and value of 4 MiB', { ...hashSpec, keySize: 8, valueSize: (1 << 22) - 8 }, 'E2BIG', /too large/],
		['flags a hash map does not take', { ...hashSpec, flags: MapFlags.Mmapable }, 'EINVAL', /map_flags/],
		[
			'BPF_F_RDONLY with BPF_F_WRONLY',
			{ ...hashSpec, flags: MapFlags.Rdonly | MapFlags.Wronly },
			'EINVAL',
			/exclude each other/,
		],
		['a name with a space', { ...hashSpec, name: 'my map' }, 'EINVAL', /only letters/],
	])('refuses to create a map with %s, and creates nothing', (_what, spec, code, message) => {
		const { reg } = freshRegistry('create_errs');
		const e = errorOf(() => reg.createMap(spec));
		expect(e.code).toBe(code);
		expect(e.message).toMatch(message);
		expect(reg.size).toBe(0);
	});

	// Sizes whose arithmetic overflows 32 bits. The expected codes are the kernel's (BPF_MAP_CREATE of
	// the same attributes: htab_map_alloc's max_entries > 1 << 31, array_map_alloc_check's value_size
	// > INT_MAX). Run in a child with a deadline: a wrapped computation once spun forever here while
	// holding the registry's mutex.
	it.each([
		['a hash map of 2^31 + 1 entries', { ...hashSpec, maxEntries: 2 ** 31 + 1, flags: MapFlags.NoPrealloc }, 'E2BIG'],
		['a hash map of 2^32 - 1 entries', { ...hashSpec, maxEntries: 2 ** 32 - 1 }, 'E2BIG'],
		[
			'an array of 2^32 - 1 values of 2^32 - 1 bytes',
			{ ...arraySpec, valueSize: 2 ** 32 - 1, maxEntries: 2 ** 32 - 1 },
			'E2BIG',
		],
		['an array value of 2^31 bytes', { ...arraySpec, valueSize: 2 ** 31, maxEntries: 1 }, 'E2BIG'],
		['an array of 2^32 - 1 values of 64 KiB', { ...arraySpec, valueSize: 65536, maxEntries: 2 ** 32 - 1 }, 'ENOMEM'],
	])(
		'refuses %s at once, as the kernel does, and the registry stays usable',
		async (_what, spec, code) => {
			const { reg, name } = freshRegistry('overflow');
			const child = await runChild('child.mjs', ['create-map', name, JSON.stringify(spec)]);
			expect(child.stdout.trim()).toBe(`error ${code}`);
			expect(reg.size).toBe(0);
			expect(reg.createMap(hashSpec).id).toBe(0);
		},
		10_000,
	);

	it('answers EMFILE when the table is full, and keeps the maps it has', () => {
		const { reg } = freshRegistry('table_full', { capacity: 2 });
		reg.createMap(hashSpec).update(u32le(1), u64le(11n));
		reg.createMap(arraySpec);
		expect(errorOf(() => reg.createMap(hashSpec)).code).toBe('EMFILE');
		expect(reg.map(0).lookup(u32le(1))?.readBigUInt64LE(0)).toBe(11n);
	});

	it('answers EINVAL for a key or value of the wrong size, naming the map', () => {
		const { reg } = freshRegistry('sizes');
		const m = reg.createMap(hashSpec);
		const e = errorOf(() => m.update(Buffer.alloc(3), u64le(1n)));
		expect(e.code).toBe('EINVAL');
		expect(e.message).toMatch(/map 'h'/);
		expect(errorOf(() => m.lookup(Buffer.alloc(8))).code).toBe('EINVAL');
		expect(errorOf(() => m.update(u32le(1), Buffer.alloc(4))).code).toBe('EINVAL');
		expect(errorOf(() => m.typed(u64, u64)).message).toMatch(/key: expected 4 bytes \(keySize\) but u64 is 8/);
	});

	it('answers EINVAL for an id that holds something else, and EBADF for a stale map after release', () => {
		const { reg } = freshRegistry('stale');
		const old = reg.createMap(hashSpec);
		old.update(u32le(1), u64le(1n));
		reg.release(old.id);
		expect(errorOf(() => old.lookup(u32le(1))).code).toBe('EBADF');
		// The id is reused by a map of another shape: the old handle stays stale.
		const fresh = reg.createMap(arraySpec);
		expect(fresh.id).toBe(old.id);
		const e = errorOf(() => old.update(u32le(1), u64le(2n)));
		expect(e.code).toBe('EBADF');
		expect(e.message).toMatch(/released|stale/);
		expect(fresh.lookup(u32le(1))?.readBigUInt64LE(0)).toBe(0n);
		const prog = reg.loadProg({
			type: 2,
			name: 'p',
			insns: Buffer.from('b700000000000000' + '9500000000000000', 'hex'),
		});
		expect(errorOf(() => reg.map(prog.id)).code).toBe('EINVAL');
	});

	it('answers EPERM to updates of a BPF_F_RDONLY map and lookups of a BPF_F_WRONLY one', () => {
		const { reg } = freshRegistry('access');
		const ro = reg.createMap({ ...hashSpec, name: 'ro', flags: MapFlags.Rdonly });
		expect(errorOf(() => ro.update(u32le(1), u64le(1n))).code).toBe('EPERM');
		const wo = reg.createMap({ ...hashSpec, name: 'wo', flags: MapFlags.Wronly });
		wo.update(u32le(1), u64le(1n));
		expect(errorOf(() => wo.lookup(u32le(1))).code).toBe('EPERM');
	});
});

describe('map errors seen by programs', () => {
	const neg = (e: number) => (1n << 64n) - BigInt(e);
	// ctx: { u32 key; u32 flags; u64 value }
	const ctx = (key: number, flags: number, value: bigint) => {
		const b = Buffer.alloc(16);
		b.writeUInt32LE(key, 0);
		b.writeUInt32LE(flags, 4);
		b.writeBigUInt64LE(value, 8);
		return b;
	};

	it.each(['interpreter', 'jit'] as const)('helpers return the kernel errno on the %s', (backend) => {
		const { reg } = freshRegistry('prog_errs');
		const hash = reg.createMap({ ...hashSpec, maxEntries: 2 });
		const array = reg.createMap(arraySpec);
		const load = (name: string, text: string) => reg.loadProg({ type: 2, name, license: 'GPL', insns: assemble(text) });
		const update = (id: number) =>
			load(
				`update${id}`,
				`r6 = r1\nr2 = r6\nr3 = r6\nr3 += 8\nr4 = *(u32 *)(r6 + 4)\nr1 = map_by_fd(${id}) ll\ncall 2\nexit`,
			);
		const remove = (id: number) => load(`delete${id}`, `r2 = r1\nr1 = map_by_fd(${id}) ll\ncall 3\nexit`);
		const lookup = (id: number) => load(`lookup${id}`, `r2 = r1\nr1 = map_by_fd(${id}) ll\ncall 1\nexit`);
		const run = (p: ReturnType<typeof load>, c: Buffer) => p.run(c, { backend });

		const hu = update(hash.id);
		expect(run(hu, ctx(1, UpdateFlags.NoExist, 10n))).toBe(0n);
		expect(run(hu, ctx(1, UpdateFlags.NoExist, 11n))).toBe(neg(17)); // EEXIST
		expect(run(hu, ctx(2, UpdateFlags.Exist, 11n))).toBe(neg(2)); // ENOENT
		expect(run(hu, ctx(2, UpdateFlags.Any, 12n))).toBe(0n);
		expect(run(hu, ctx(3, UpdateFlags.Any, 13n))).toBe(neg(7)); // E2BIG: full
		expect(run(hu, ctx(3, 9, 13n))).toBe(neg(22)); // EINVAL: flags
		expect(run(remove(hash.id), ctx(5, 0, 0n))).toBe(neg(2)); // ENOENT
		expect(run(lookup(hash.id), ctx(5, 0, 0n))).toBe(0n); // NULL
		expect(hash.typed(u32, u64).get(1)).toBe(10n);

		const au = update(array.id);
		expect(run(au, ctx(4, UpdateFlags.Any, 1n))).toBe(neg(7)); // E2BIG: past the end
		expect(run(au, ctx(0, UpdateFlags.NoExist, 1n))).toBe(neg(17)); // EEXIST
		expect(run(remove(array.id), ctx(0, 0, 0n))).toBe(neg(22)); // EINVAL
		expect(run(au, ctx(3, UpdateFlags.Exist, 33n))).toBe(0n);
		expect(array.typed(u32, u64).get(3)).toBe(33n);
	});
});

describe('map arguments of helpers, checked at load', () => {
	it('accepts a map kept in a callee-saved register, spilled to the stack, or chosen on a branch', () => {
		const { reg } = freshRegistry('args_ok');
		const a = reg.createMap({ ...hashSpec, name: 'a' });
		const b = reg.createMap({ ...hashSpec, name: 'b' });
		a.update(u32le(1), u64le(10n));
		b.update(u32le(1), u64le(20n));
		// r6 = ctx[0] ? a : b, spilled and reloaded, then looked up with key 1 twice.
		const p = reg.loadProg({
			type: 2,
			name: 'spill',
			insns: assemble(`
				r2 = *(u32 *)(r1 + 0)
				r6 = map_by_fd(${a.id}) ll
				if r2 != 0 goto keep
				r6 = map_by_fd(${b.id}) ll
			keep:
				*(u64 *)(r10 - 16) = r6
				r1 = 1
				*(u32 *)(r10 - 4) = r1
				r1 = r6
				r2 = r10
				r2 += -4
				call 1
				r1 = *(u64 *)(r10 - 16)
				r2 = r10
				r2 += -4
				call 1
				if r0 == 0 goto out
				r0 = *(u64 *)(r0 + 0)
			out:
				exit`),
		});
		expect(reg.get(p.id)).toMatchObject({ mapIds: [a.id, b.id] });
		expect(p.run(u32le(1))).toBe(10n);
		expect(p.run(u32le(0))).toBe(20n);
	});

	it('refuses a constant or a loaded number as the key or value pointer, and a map overwritten in its stack slot', () => {
		const { reg } = freshRegistry('args_bad');
		const m = reg.createMap(hashSpec);
		const load = (text: string) => () => reg.loadProg({ type: 2, name: 'bad', insns: assemble(text) });
		const key = errorOf(load(`r1 = map_by_fd(${m.id}) ll\nr2 = 0\ncall 1\nexit`));
		expect(key.code).toBe('EINVAL');
		expect(key.message).toMatch(/insn 3: R2 type=scalar expected=fp/);
		const value = errorOf(load(`r1 = map_by_fd(${m.id}) ll\nr2 = r10\nr2 += -8\nr3 = 4096\nr4 = 0\ncall 2\nexit`));
		expect(value.message).toMatch(/insn 6: R3 type=scalar expected=fp/);
		// A number read from memory (here the context's first word) is no pointer either.
		const loaded = errorOf(load(`r2 = *(u64 *)(r1 + 0)\nr1 = map_by_fd(${m.id}) ll\ncall 1\nexit`));
		expect(loaded.message).toMatch(/insn 3: R2 type=scalar expected=fp/);
		const clobbered = errorOf(
			load(
				`r6 = map_by_fd(${m.id}) ll\n*(u64 *)(r10 - 16) = r6\n*(u32 *)(r10 - 12) = 0\n` +
					'r1 = *(u64 *)(r10 - 16)\nr2 = r10\nr2 += -4\ncall 1\nexit',
			),
		);
		expect(clobbered.message).toMatch(/insn 7: R1 type=scalar expected=map_ptr/);
		// A key or value in the stack holds the map's key_size and value_size bytes inside the frame.
		const key2 = errorOf(load(`r1 = map_by_fd(${m.id}) ll\nr2 = r10\nr2 += -2\ncall 1\nexit`));
		expect(key2.message).toMatch(/invalid indirect access to stack R2 off=-2 size=4/);
		const value4 = errorOf(
			load(`r1 = map_by_fd(${m.id}) ll\nr2 = r10\nr2 += -16\nr3 = r10\nr3 += -4\nr4 = 0\ncall 2\nexit`),
		);
		expect(value4.message).toMatch(/invalid indirect access to stack R3 off=-4 size=8/);
		expect(reg.size).toBe(1);
	});
});
