// HashOfMaps: a typed view of BPF_MAP_TYPE_HASH_OF_MAPS, inner maps by a key
// of any codec, u32 by default (maps-of-maps.ts has the operations and an
// example).
import { type BpfMap, type Codec, MapType, u32 } from '@bpftime/handlers';
import { MapOfMaps } from './maps-of-maps.js';

export class HashOfMaps<K = number> extends MapOfMaps<K> {
	constructor(map: BpfMap, key: Codec<K> = u32 as unknown as Codec<K>) {
		super('HashOfMaps', MapType.HashOfMaps, map, key);
	}
}
