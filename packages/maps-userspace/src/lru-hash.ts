// LruHash: a typed view of a BPF_MAP_TYPE_LRU_HASH map.
import { type BpfMap, type Codec, MapType, TypedMap } from '@bpftime/handlers';
import { expectType } from './view-checks.js';

/**
 * BPF_MAP_TYPE_LRU_HASH: a hash map that, when full, takes a new key by evicting the entry programs
 * used least recently (a lookup from this view is not a use, as in the kernel). The operations of a
 * `TypedMap`, plus `take()`.
 *
 *   const conns = new LruHash(reg.createMap({ type: MapType.LruHash, name: 'conns', keySize: 8,
 *     valueSize: 8, maxEntries: 1024 }), u64, u64);
 */
export class LruHash<K, V> extends TypedMap<K, V> {
	readonly #keyCodec: Codec<K>;
	readonly #valueCodec: Codec<V>;

	constructor(map: BpfMap, key: Codec<K>, value: Codec<V>) {
		expectType(map, MapType.LruHash, 'LruHash', 'BPF_MAP_TYPE_LRU_HASH');
		// typed() checks the sizes, naming the map.
		map.typed(key, value);
		super(map, key, value);
		this.#keyCodec = key;
		this.#valueCodec = value;
	}

	/** BPF_MAP_LOOKUP_AND_DELETE_ELEM: the value of key, removed; undefined when absent. */
	take(key: K): V | undefined {
		const k = Buffer.alloc(this.#keyCodec.size);
		this.#keyCodec.encode(key, k, 0);
		const v = this.map.lookupAndDelete(k);
		return v === undefined ? undefined : this.#valueCodec.decode(v, 0);
	}
}
