// The view ArrayOfMaps (array-of-maps.ts) and HashOfMaps (hash-of-maps.ts)
// share: maps of BPF_MAP_TYPE_ARRAY_OF_MAPS and BPF_MAP_TYPE_HASH_OF_MAPS, whose values are maps matching the inner map
// they were created with (type, key and value size, flags; max_entries for
// arrays without BPF_F_INNER_MAP).
//
//   const outer = new HashOfMaps(reg.createMap({ type: MapType.HashOfMaps, name: 'per_pid',
//     keySize: 4, valueSize: 4, maxEntries: 64, innerMapId: template.id }), u32);
//   outer.set(pid, reg.createMap(innerSpec));
//   const inner = outer.get(pid);   // the inner map's id
import type { BpfMap, Codec, MapType } from '@bpftime/handlers';
import { checkMap, idOf, u32Buffer } from './view.js';

export class MapOfMaps<K> {
	readonly map: BpfMap;
	readonly #key: Codec<K>;

	constructor(view: string, type: MapType, map: BpfMap, key: Codec<K>) {
		checkMap(view, map, type, key.size, 4);
		this.map = map;
		this.#key = key;
	}

	#k(key: K): Buffer {
		const b = Buffer.alloc(this.#key.size);
		this.#key.encode(key, b, 0);
		return b;
	}

	/** Stores an inner map; EINVAL when it does not match the template. */
	set(key: K, inner: number | { id: number }, flags?: number): void {
		this.map.update(this.#k(key), u32Buffer(idOf(inner), 'map id'), flags);
	}

	/** The id of the inner map under key, or undefined. */
	get(key: K): number | undefined {
		return this.map.lookup(this.#k(key))?.readUInt32LE(0);
	}

	delete(key: K): boolean {
		return this.map.delete(this.#k(key));
	}

	*entries(): IterableIterator<[K, number]> {
		for (const [k, v] of this.map.entries()) yield [this.#key.decode(k, 0), v.readUInt32LE(0)];
	}
}
