// LpmTrie: a typed view of a BPF_MAP_TYPE_LPM_TRIE map.
import { type BpfMap, BpftimeError, type Codec, MapType, UpdateFlags } from '@bpftime/handlers';
import { expectSize, expectType } from './view-checks.js';

/** A key of an LPM trie: the kernel's struct bpf_lpm_trie_key { u32 prefixlen; u8 data[]; }. */
export interface LpmPrefix {
	/** Leading bits of `data` that count, 0 to data.length * 8. */
	prefixLen: number;
	/** keySize - 4 bytes, most significant first (network order for addresses). */
	data: Uint8Array;
}

/**
 * BPF_MAP_TYPE_LPM_TRIE: prefixes to values; `get` answers the value of the longest prefix that
 * matches an address. Iteration is in the kernel's get_next_key order (post-order of its trie).
 *
 *   const routes = new LpmTrie(reg.createMap({ type: MapType.LpmTrie, name: 'routes', keySize: 8,
 *     valueSize: 4, maxEntries: 256, flags: MapFlags.NoPrealloc }), u32);
 *   routes.set({ prefixLen: 8, data: Buffer.from([10, 0, 0, 0]) }, 1);
 *   routes.get(Buffer.from([10, 1, 2, 3])); // 1
 */
export class LpmTrie<V> {
	readonly map: BpfMap;
	readonly #value: Codec<V>;
	readonly #vbuf: Buffer;
	/** Bytes of a prefix's data: keySize - 4. */
	readonly dataSize: number;

	constructor(map: BpfMap, value: Codec<V>) {
		expectType(map, MapType.LpmTrie, 'LpmTrie', 'BPF_MAP_TYPE_LPM_TRIE');
		expectSize(map, 'value', value, map.valueSize, 'valueSize');
		this.map = map;
		this.#value = value;
		this.#vbuf = Buffer.alloc(value.size);
		this.dataSize = map.keySize - 4;
	}

	#key(p: LpmPrefix): Buffer {
		if (p.data.length !== this.dataSize)
			throw new BpftimeError(
				'EINVAL',
				`${this.map.describe()}: key: expected ${this.dataSize} bytes of data (keySize - 4) but received ${p.data.length}`,
			);
		const k = Buffer.alloc(this.map.keySize);
		k.writeUInt32LE(p.prefixLen >>> 0, 0);
		k.set(p.data, 4);
		return k;
	}

	/** The value of the longest prefix matching `data`'s first `prefixLen` bits (default: all of them). */
	get(data: Uint8Array, prefixLen = this.dataSize * 8): V | undefined {
		const v = this.map.lookup(this.#key({ prefixLen, data }));
		return v === undefined ? undefined : this.#value.decode(v, 0);
	}

	set(prefix: LpmPrefix, value: V, flags: number = UpdateFlags.Any): this {
		this.#value.encode(value, this.#vbuf, 0);
		this.map.update(this.#key(prefix), this.#vbuf, flags);
		return this;
	}

	/** Removes exactly this prefix; false when there is none. */
	delete(prefix: LpmPrefix): boolean {
		return this.map.delete(this.#key(prefix));
	}

	/** Every prefix and its value, in the kernel's order. */
	*entries(): IterableIterator<[LpmPrefix, V]> {
		for (let k = this.map.nextKey(); k; k = this.map.nextKey(k)) {
			const value = this.map.lookup(k);
			// Deleted meanwhile: go on from it, as get_next_key does.
			if (value === undefined) continue;
			yield [{ prefixLen: k.readUInt32LE(0), data: Buffer.from(k.subarray(4)) }, this.#value.decode(value, 0)];
		}
	}

	[Symbol.iterator](): IterableIterator<[LpmPrefix, V]> {
		return this.entries();
	}
}
