// LruPercpuHash: a typed view of a BPF_MAP_TYPE_LRU_PERCPU_HASH map.
import { type BpfMap, type Codec, MapType } from '@bpftime/handlers';
import { PercpuHash } from './percpu-hash.js';

/**
 * BPF_MAP_TYPE_LRU_PERCPU_HASH: a per-CPU hash map (see `PercpuHash`) that evicts its least recently
 * used entry when full, as `LruHash` does.
 */
export class LruPercpuHash<K, V> extends PercpuHash<K, V> {
	constructor(map: BpfMap, key: Codec<K>, value: Codec<V>) {
		super(map, key, value, MapType.LruPercpuHash);
	}
}
