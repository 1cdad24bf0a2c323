// PercpuArray: a typed view of a BPF_MAP_TYPE_PERCPU_ARRAY map.
import { type BpfMap, type Codec, MapType, u32 } from '@bpftime/handlers';
import { decodePercpu, encodePercpu, expectSize, expectType, percpuCount, percpuStride } from './view-checks.js';

/**
 * BPF_MAP_TYPE_PERCPU_ARRAY: `maxEntries` slots, each with one value per possible CPU. A program sees
 * its CPU's value; this view reads and writes every CPU's at once, as the kernel's bpf() does.
 *
 *   const hits = new PercpuArray(reg.createMap({ type: MapType.PercpuArray, name: 'hits', keySize: 4,
 *     valueSize: 8, maxEntries: 1 }), u64);
 *   hits.sum(0); // 0n
 */
export class PercpuArray<V> {
	readonly map: BpfMap;
	readonly #value: Codec<V>;
	readonly #key = Buffer.alloc(4);

	constructor(map: BpfMap, value: Codec<V>) {
		expectType(map, MapType.PercpuArray, 'PercpuArray', 'BPF_MAP_TYPE_PERCPU_ARRAY');
		expectSize(map, 'value', value, map.valueSize, 'valueSize');
		this.map = map;
		this.#value = value;
	}

	/** The possible CPUs: the length of every `get()`. */
	get cpus(): number {
		return percpuCount(this.map);
	}

	#k(index: number): Buffer {
		u32.encode(index, this.#key, 0);
		return this.#key;
	}

	/** Every CPU's value at index; undefined past maxEntries. */
	get(index: number): V[] | undefined {
		const v = this.map.lookup(this.#k(index));
		return v === undefined ? undefined : decodePercpu(this.map, this.#value, v);
	}

	/** Writes every CPU's value (an array of `cpus` values, or one value for all). */
	set(index: number, values: readonly V[] | V): this {
		this.map.update(this.#k(index), encodePercpu(this.map, this.#value, values));
		return this;
	}

	/** The sum of every CPU's value, for number and bigint values. */
	sum(index: number): V extends bigint ? bigint : number {
		const all = (this.get(index) ?? []) as unknown[];
		if (typeof all[0] === 'bigint') return (all as bigint[]).reduce((a, b) => a + b, 0n) as never;
		return (all as number[]).reduce((a, b) => a + b, 0) as never;
	}

	/** The stride of one CPU's value in the raw value (round_up(valueSize, 8)). */
	get stride(): number {
		return percpuStride(this.map);
	}
}
