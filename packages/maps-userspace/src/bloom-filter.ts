// BloomFilter: a typed view of a BPF_MAP_TYPE_BLOOM_FILTER map.
import { type BpfMap, type Codec, MapType } from '@bpftime/handlers';
import { expectSize, expectType } from './view-checks.js';

const NO_KEY = Buffer.alloc(0);

/**
 * BPF_MAP_TYPE_BLOOM_FILTER: `add` a value, then `has` answers true for it always and for an absent
 * value rarely (`mapExtra` hash functions, 5 when 0). Values cannot be listed or removed.
 *
 *   const seen = new BloomFilter(reg.createMap({ type: MapType.BloomFilter, name: 'seen', keySize: 0,
 *     valueSize: 8, maxEntries: 10000, mapExtra: 3n }), u64);
 *   seen.add(42n).has(42n); // true
 */
export class BloomFilter<V> {
	readonly map: BpfMap;
	readonly #value: Codec<V>;
	readonly #vbuf: Buffer;

	constructor(map: BpfMap, value: Codec<V>) {
		expectType(map, MapType.BloomFilter, 'BloomFilter', 'BPF_MAP_TYPE_BLOOM_FILTER');
		expectSize(map, 'value', value, map.valueSize, 'valueSize');
		this.map = map;
		this.#value = value;
		this.#vbuf = Buffer.alloc(value.size);
	}

	/** BPF_MAP_UPDATE_ELEM: sets the value's bits. */
	add(value: V): this {
		this.#value.encode(value, this.#vbuf, 0);
		this.map.update(NO_KEY, this.#vbuf);
		return this;
	}

	/** BPF_MAP_LOOKUP_ELEM: false when the value was never added; true when it was (or, rarely, not). */
	has(value: V): boolean {
		this.#value.encode(value, this.#vbuf, 0);
		return this.map.lookupWithValue(NO_KEY, this.#vbuf) !== undefined;
	}
}
