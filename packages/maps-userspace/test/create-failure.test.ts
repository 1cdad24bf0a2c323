import { MapType, type Registry } from '@bpftime/handlers';
import { describe, expect, it } from 'vitest';
import { errorOf, freshRegistry } from './helpers.js';

type Segment = ReturnType<typeof freshRegistry>['seg'];

/** What a failed create must leave as it was. */
function state(reg: Registry, seg: Segment) {
	return { size: reg.size, changeCounter: reg.changeCounter, free: seg.stats().free, ids: reg.list().map((d) => d.id) };
}

// The registry builds the map's handler in the segment before the map type's create makes its state;
// when that create fails, the handler is freed again.
describe('a map whose state cannot be made leaves the registry as it was', () => {
	it.each([
		['an array with 8-byte keys', 'EINVAL', { type: MapType.Array, keySize: 8, valueSize: 8, maxEntries: 4 }],
		['a hash map with max_entries 0', 'EINVAL', { type: MapType.Hash, keySize: 4, valueSize: 8, maxEntries: 0 }],
		[
			'an array larger than the segment',
			'ENOMEM',
			{ type: MapType.Array, keySize: 4, valueSize: 4096, maxEntries: 4096 },
		],
		[
			'a per-CPU array larger than the segment',
			'ENOMEM',
			{ type: MapType.PercpuArray, keySize: 4, valueSize: 4096, maxEntries: 4096 },
		],
		[
			'a per-CPU hash larger than the segment',
			'ENOMEM',
			{ type: MapType.PercpuHash, keySize: 4, valueSize: 4096, maxEntries: 4096 },
		],
		[
			'an LRU hash larger than the segment',
			'ENOMEM',
			{ type: MapType.LruHash, keySize: 4, valueSize: 4096, maxEntries: 4096 },
		],
		[
			'a queue larger than the segment',
			'ENOMEM',
			{ type: MapType.Queue, keySize: 0, valueSize: 4096, maxEntries: 4096 },
		],
		[
			'a bloom filter larger than the segment',
			'ENOMEM',
			{ type: MapType.BloomFilter, keySize: 0, valueSize: 8, maxEntries: 1 << 24 },
		],
		['a queue with a key', 'EINVAL', { type: MapType.Queue, keySize: 4, valueSize: 8, maxEntries: 4 }],
		['an LPM trie with preallocation', 'EINVAL', { type: MapType.LpmTrie, keySize: 8, valueSize: 8, maxEntries: 4 }],
	])('refuses %s (%s), keeping count, change counter and free memory', (_what, code, spec) => {
		const { reg, seg } = freshRegistry('map_create_fail', { sizeMb: 4 });
		reg.createMap({ type: MapType.Hash, name: 'kept', keySize: 4, valueSize: 8, maxEntries: 16 });
		const before = state(reg, seg);
		const e = errorOf(() => reg.createMap({ ...spec, name: 'refused' }));
		expect(e.code).toBe(code);
		expect(e.message).toMatch(/^map 'refused': create: /);
		expect(state(reg, seg)).toEqual(before);
		// The id it would have taken is still the lowest free one.
		expect(reg.createMap({ type: MapType.Array, name: 'next', keySize: 4, valueSize: 8, maxEntries: 1 }).id).toBe(1);
	});
});
