// ArrayOfMaps: a typed view of BPF_MAP_TYPE_ARRAY_OF_MAPS, inner maps by u32
// index (maps-of-maps.ts has the operations and an example).
import { type BpfMap, MapType, u32 } from '@bpftime/handlers';
import { MapOfMaps } from './maps-of-maps.js';

export class ArrayOfMaps extends MapOfMaps<number> {
	constructor(map: BpfMap) {
		super('ArrayOfMaps', MapType.ArrayOfMaps, map, u32);
	}
}
