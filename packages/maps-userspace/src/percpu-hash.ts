// PercpuHash: a typed view of a BPF_MAP_TYPE_PERCPU_HASH map (and, through
// LruPercpuHash, of BPF_MAP_TYPE_LRU_PERCPU_HASH).
import { type BpfMap, type Codec, MapType, UpdateFlags } from '@bpftime/handlers';
import { decodePercpu, encodePercpu, expectSize, expectType, percpuCount } from './view-checks.js';

/**
 * BPF_MAP_TYPE_PERCPU_HASH: a hash map whose entries hold one value per possible CPU. A program sees
 * its CPU's value; this view reads and writes every CPU's at once, as the kernel's bpf() does.
 *
 *   const bytes = new PercpuHash(map, u32, u64);
 *   bytes.set(80, 0n); bytes.get(80); // [0n, 0n] on 2 CPUs
 */
export class PercpuHash<K, V> {
	readonly map: BpfMap;
	readonly #key: Codec<K>;
	readonly #value: Codec<V>;
	readonly #kbuf: Buffer;

	constructor(map: BpfMap, key: Codec<K>, value: Codec<V>, type: number = MapType.PercpuHash) {
		expectType(
			map,
			type,
			type === MapType.PercpuHash ? 'PercpuHash' : 'LruPercpuHash',
			type === MapType.PercpuHash ? 'BPF_MAP_TYPE_PERCPU_HASH' : 'BPF_MAP_TYPE_LRU_PERCPU_HASH',
		);
		expectSize(map, 'key', key, map.keySize, 'keySize');
		expectSize(map, 'value', value, map.valueSize, 'valueSize');
		this.map = map;
		this.#key = key;
		this.#value = value;
		this.#kbuf = Buffer.alloc(key.size);
	}

	/** The possible CPUs: the length of every `get()`. */
	get cpus(): number {
		return percpuCount(this.map);
	}

	#k(key: K): Buffer {
		this.#key.encode(key, this.#kbuf, 0);
		return this.#kbuf;
	}

	/** Every CPU's value of key, or undefined. */
	get(key: K): V[] | undefined {
		const v = this.map.lookup(this.#k(key));
		return v === undefined ? undefined : decodePercpu(this.map, this.#value, v);
	}

	has(key: K): boolean {
		return this.map.lookup(this.#k(key)) !== undefined;
	}

	/** Writes every CPU's value (an array of `cpus` values, or one value for all). */
	set(key: K, values: readonly V[] | V, flags: number = UpdateFlags.Any): this {
		this.map.update(this.#k(key), encodePercpu(this.map, this.#value, values), flags);
		return this;
	}

	delete(key: K): boolean {
		return this.map.delete(this.#k(key));
	}

	/** Every entry with every CPU's value. */
	*entries(): IterableIterator<[K, V[]]> {
		for (const [k, v] of this.map.entries()) yield [this.#key.decode(k, 0), decodePercpu(this.map, this.#value, v)];
	}

	[Symbol.iterator](): IterableIterator<[K, V[]]> {
		return this.entries();
	}
}
