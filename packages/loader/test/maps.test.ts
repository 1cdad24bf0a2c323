import { beforeAll, describe, expect, it } from 'vitest';
import { BpfObject, MapFlags, MapType, mapCreateRequest, possibleCpus } from '../src/index.js';
import { useFixtures } from './helpers.js';
import { RecordingTarget } from './targets.js';

const fx = useFixtures();
let maps: BpfObject;

beforeAll(async () => {
	maps = BpfObject.open(await fx.bpf('maps'));
});

describe('BTF-defined maps', () => {
	// Expected attributes written from maps.bpf.c and include/uapi/linux/bpf.h.
	it.each([
		['hash', MapType.Hash, 4, 8, 128, 0],
		['array', MapType.Array, 4, 24, 16, 0],
		['percpu_hash', MapType.PercpuHash, 8, 4, 32, MapFlags.NoPrealloc],
		['percpu_array', MapType.PercpuArray, 4, 8, 8, 0],
		['events', MapType.PerfEventArray, 4, 4, 0, 0],
		['stacks', MapType.StackTrace, 4, 127 * 8, 64, 0],
		['lru', MapType.LruHash, 4, 4, 256, 0],
		['lru_percpu', MapType.LruPercpuHash, 4, 4, 256, 0],
		['lpm', MapType.LpmTrie, 8, 4, 64, MapFlags.NoPrealloc],
		['outer_array', MapType.ArrayOfMaps, 4, 4, 4, 0],
		['outer_hash', MapType.HashOfMaps, 4, 4, 8, 0],
		['queue', MapType.Queue, 0, 8, 32, 0],
		['stack', MapType.Stack, 0, 4, 32, 0],
		['ringbuf', MapType.Ringbuf, 0, 0, 8192, 0],
		['bloom', MapType.BloomFilter, 0, 4, 100, 0],
		['jump_table', MapType.ProgArray, 4, 4, 4, 0],
		['inner_a', MapType.Array, 4, 8, 4, 0],
	])('reads map %s as type %i, key %i, value %i, max_entries %i, flags %i', (name, type, key, value, max, flags) => {
		const m = maps.map(name);
		expect(m).toMatchObject({
			name,
			kind: 'btf',
			section: '.maps',
			type,
			keySize: key,
			valueSize: value,
			maxEntries: max,
			flags,
		});
	});

	it('keeps the BTF ids of key and value from __type()', () => {
		const hash = maps.map('hash');
		expect(maps.btf?.format(hash.keyTypeId)).toBe('__u32');
		expect(maps.btf?.format(hash.valueTypeId)).toBe('__u64');
		const lpm = maps.map('lpm');
		expect(maps.btf?.format(lpm.keyTypeId)).toBe('struct lpm_key');
		// key_size/value_size spellings carry no type.
		expect(maps.map('array').keyTypeId).toBe(0);
	});

	it('reads map_extra as a bigint', () => {
		expect(maps.map('bloom').mapExtra).toBe(3n);
	});

	it('rounds a ring buffer up to a power-of-2 number of pages, as libbpf does', () => {
		expect(maps.map('ringbuf').maxEntries).toBe(8192);
	});

	it('gives a perf event array of 0 entries one per possible CPU when creating it', () => {
		expect(mapCreateRequest(maps.map('events')).maxEntries).toBe(possibleCpus());
		expect(possibleCpus()).toBeGreaterThan(0);
	});

	it('parses the inner map of a map-in-map from __array(values, …)', () => {
		for (const name of ['outer_array', 'outer_hash']) {
			const inner = maps.map(name).innerMap;
			expect(inner).toMatchObject({
				name: `${name}.inner`,
				type: MapType.Array,
				keySize: 4,
				valueSize: 8,
				maxEntries: 4,
			});
		}
	});

	it('reads the initial slots of a map-in-map and of a prog array from .rel.maps', () => {
		expect(maps.map('outer_array').initialSlots).toEqual(['inner_a', undefined, 'inner_b']);
		expect(maps.map('jump_table').initialSlots).toEqual([undefined, 'tail_a', undefined, 'tail_b']);
		expect(maps.map('outer_hash').initialSlots).toEqual([]);
	});

	it('lists maps in the order of the .maps DATASEC, as libbpf does', () => {
		expect(maps.maps.map((m) => m.name).slice(0, 4)).toEqual(['inner_a', 'inner_b', 'outer_array', 'jump_table']);
		expect(maps.maps).toHaveLength(18);
	});

	it('describes map-in-map inner maps and initial slots', () => {
		const text = maps.describe({ instructions: false });
		expect(text).toMatch(
			/#2 outer_array: BPF_MAP_TYPE_ARRAY_OF_MAPS key 4 value 4 max_entries 4 flags 0x0 \(btf, section '\.maps'\)\n {6}inner: BPF_MAP_TYPE_ARRAY key 4 value 8 max_entries 4\b/,
		);
		expect(text).toMatch(/ {6}\[0\] = inner_a\n {6}\[2\] = inner_b/);
		expect(text).toMatch(/ {6}\[1\] = tail_a\n {6}\[3\] = tail_b/);
	});

	it('throws ENOENT naming the known maps for an unknown one', () => {
		expect(() => maps.map('nope')).toThrow(
			expect.objectContaining({ code: 'ENOENT', message: expect.stringMatching(/map 'nope'.*hash/) }),
		);
	});
});

describe('pinning and numa', () => {
	it('reads LIBBPF_PIN_BY_NAME and numa_node', async () => {
		const o = BpfObject.open(await fx.bpf('pinned'));
		const m = o.map('shared_counts');
		expect(m).toMatchObject({ pinning: 'by-name', numaNode: 0, flags: MapFlags.NumaNode, type: MapType.Hash });
		expect(mapCreateRequest(m)).toMatchObject({ pinning: 'by-name', name: 'shared_counts' });
	});
});

describe('legacy maps section', () => {
	it('reads struct bpf_map_def records, which libbpf 1.x refuses', async () => {
		const o = BpfObject.open(await fx.bpf('legacy'));
		expect(o.maps.map((m) => [m.name, m.kind, m.type, m.keySize, m.valueSize, m.maxEntries])).toEqual([
			['legacy_hash', 'legacy', MapType.Hash, 4, 8, 1024],
			['legacy_array', 'legacy', MapType.Array, 4, 4, 8],
		]);
		const p = o.program('count');
		expect(p.mapReferences.map((r) => r.map)).toEqual(['legacy_hash', 'legacy_array']);
	});
});

describe('objects built without -g', () => {
	it('opens legacy maps and global data from the ELF symbols alone', async () => {
		const o = BpfObject.open(await fx.bpf('legacy', ['-g0']));
		expect(o.btf).toBeUndefined();
		expect(o.maps.map((m) => m.name)).toEqual(['legacy_hash', 'legacy_array']);
		expect(o.program('count').funcInfo).toEqual([]);
	});

	it('refuses BTF-defined maps, which need BTF, saying to compile with -g', async () => {
		const path = await fx.bpf('pinned', ['-g0']);
		expect(() => BpfObject.open(path)).toThrow(
			expect.objectContaining({ code: 'EINVAL', message: expect.stringContaining('compile with -g') }),
		);
	});
});

describe('creating maps at load', () => {
	it('creates the inner template before a map-in-map, passes its id, releases it, then fills the slots', async () => {
		const o = BpfObject.open(await fx.bpf('maps'));
		const t = new RecordingTarget();
		const loaded = await o.load(t);
		const creates = t.log.filter((r) => r.op === 'createMap');
		const outer = creates.find((r) => r.req.name === 'outer_array');
		const template = creates[creates.indexOf(outer as never) - 1];
		expect(template?.req).toMatchObject({ name: 'outer_array.inn', type: MapType.Array, valueSize: 8 });
		expect(outer?.req.innerMapId).toBe(template?.id);
		expect(t.log).toContainEqual({ op: 'release', id: template?.id });
		const outerId = loaded.maps.get('outer_array')?.id;
		const slots = t.log.filter((r) => r.op === 'updateMap' && r.map === outerId);
		expect(slots.map((r) => r.op === 'updateMap' && [r.key.readUInt32LE(0), r.value.readUInt32LE(0)])).toEqual([
			[0, loaded.maps.get('inner_a')?.id],
			[2, loaded.maps.get('inner_b')?.id],
		]);
		// The prog array is filled after its programs are loaded, with their ids.
		const jt = loaded.maps.get('jump_table')?.id;
		const progSlots = t.log.filter((r) => r.op === 'updateMap' && r.map === jt);
		expect(progSlots.map((r) => r.op === 'updateMap' && [r.key.readUInt32LE(0), r.value.readUInt32LE(0)])).toEqual([
			[1, loaded.programs.get('tail_a')?.id],
			[3, loaded.programs.get('tail_b')?.id],
		]);
		const lastLoad = t.log.map((r) => r.op).lastIndexOf('loadProgram');
		expect(t.log.indexOf(progSlots[0] as never)).toBeGreaterThan(lastLoad);
		o.close();
		expect(t.live.size).toBe(0);
	});
});
