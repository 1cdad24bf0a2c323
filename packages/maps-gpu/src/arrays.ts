// arrays.ts: typed views of the GPU array and the per-thread GPU array. Each
// operation is a copy between device memory and this process (map_ops on
// the registry's instance); readAll() reads every value in one copy.
import { BpftimeError } from '@bpftime/common';
import { type BpfMap, type Codec, UpdateFlags, u32 } from '@bpftime/handlers';

function expectView(map: BpfMap, type: number, view: string, kernelName: string, value: Codec<unknown>): void {
	if (map.type !== type)
		throw new BpftimeError('EINVAL', `${map.describe()}: ${view} views a ${kernelName} map, not a ${map.typeName} map`);
	if (value.size !== map.valueSize)
		throw new BpftimeError(
			'EINVAL',
			`${map.describe()}: value: expected ${map.valueSize} bytes (valueSize) but ${value.name} is ${value.size}`,
		);
}

function keyOf(index: number, buf: Buffer): Buffer {
	u32.encode(index, buf, 0);
	return buf;
}

/**
 * BPFTIME_MAP_TYPE_GPU_ARRAY: `maxEntries` values in device memory, indexed by u32. CUDA kernels reach
 * them in place (device.cuh); this view copies.
 *
 *   const hits = new GpuArray(reg.createMap({ type: GpuMapType.Array, name: 'hits', keySize: 4, valueSize: 8, maxEntries: 64 }), u64);
 *   hits.set(3, 7n); hits.get(3); // 7n
 */
export class GpuArray<V> {
	readonly map: BpfMap;
	readonly #value: Codec<V>;
	readonly #key = Buffer.alloc(4);

	constructor(map: BpfMap, value: Codec<V>) {
		expectView(map, 1503, 'GpuArray', 'BPFTIME_MAP_TYPE_GPU_ARRAY', value);
		this.map = map;
		this.#value = value;
	}

	get length(): number {
		return this.map.maxEntries;
	}

	/** The value at index; undefined past maxEntries. */
	get(index: number): V | undefined {
		const v = this.map.lookup(keyOf(index, this.#key));
		return v === undefined ? undefined : this.#value.decode(v, 0);
	}

	/** Writes the value at index (E2BIG past maxEntries; BPF_NOEXIST is EEXIST, as for any array). */
	set(index: number, value: V, flags: number = UpdateFlags.Any): this {
		const buf = Buffer.alloc(this.map.valueSize);
		this.#value.encode(value, buf, 0);
		this.map.update(keyOf(index, this.#key), buf, flags);
		return this;
	}

	/** Every value, in index order, read from the device in one copy. */
	readAll(): V[] {
		const b = this.map.lookupBatch(undefined, this.map.maxEntries);
		const out: V[] = new Array(b.count);
		for (let i = 0; i < b.count; i++) out[i] = this.#value.decode(b.values, i * this.map.valueSize);
		return out;
	}
}

/**
 * BPFTIME_MAP_TYPE_PERGPUTD_ARRAY: `maxEntries` indexes, each with a value per GPU thread (`mapExtra`
 * threads, addressed by the thread's index in its grid). A kernel's thread sees its own slot; this view
 * reads and writes every thread's at once, as the kernel's bpf() does with per-CPU arrays.
 *
 *   const m = reg.createMap({ type: GpuMapType.PerThreadArray, name: 'lat', keySize: 4, valueSize: 8, maxEntries: 1, mapExtra: 1024n });
 *   new GpuPerThreadArray(m, u64).get(0); // 1024 values
 */
export class GpuPerThreadArray<V> {
	readonly map: BpfMap;
	readonly #value: Codec<V>;
	readonly #key = Buffer.alloc(4);

	constructor(map: BpfMap, value: Codec<V>) {
		expectView(map, 1502, 'GpuPerThreadArray', 'BPFTIME_MAP_TYPE_PERGPUTD_ARRAY', value);
		this.map = map;
		this.#value = value;
	}

	/** Bytes between two threads' values: round_up(valueSize, 8). */
	get stride(): number {
		return (this.map.valueSize + 7) & ~7;
	}

	/** GPU threads with a slot: the length of every `get()`. */
	get threads(): number {
		return this.map.userValueSize / this.stride;
	}

	#decode(buf: Buffer, off: number): V[] {
		const out: V[] = new Array(this.threads);
		for (let t = 0; t < out.length; t++) out[t] = this.#value.decode(buf, off + t * this.stride);
		return out;
	}

	/** Every thread's value at index; undefined past maxEntries. */
	get(index: number): V[] | undefined {
		const v = this.map.lookup(keyOf(index, this.#key));
		return v === undefined ? undefined : this.#decode(v, 0);
	}

	/** Writes every thread's value at index: an array of `threads` values, or one value for all. */
	set(index: number, values: readonly V[] | V, flags: number = UpdateFlags.Any): this {
		const buf = Buffer.alloc(this.map.userValueSize);
		const n = this.threads;
		if (Array.isArray(values)) {
			if (values.length !== n)
				throw new BpftimeError(
					'EINVAL',
					`${this.map.describe()}: update: expected ${n} per-thread values (mapExtra) but received ${values.length}`,
				);
			for (let t = 0; t < n; t++) this.#value.encode(values[t] as V, buf, t * this.stride);
		} else {
			for (let t = 0; t < n; t++) this.#value.encode(values as V, buf, t * this.stride);
		}
		this.map.update(keyOf(index, this.#key), buf, flags);
		return this;
	}

	/** The sum of every thread's value at index, for number and bigint values. */
	sum(index: number): V extends bigint ? bigint : number {
		const all = (this.get(index) ?? []) as unknown[];
		if (typeof all[0] === 'bigint') return (all as bigint[]).reduce((a, b) => a + b, 0n) as never;
		return (all as number[]).reduce((a, b) => a + b, 0) as never;
	}

	/** Every index's values, read from the device in one copy. */
	readAll(): V[][] {
		const b = this.map.lookupBatch(undefined, this.map.maxEntries);
		const out: V[][] = new Array(b.count);
		for (let i = 0; i < b.count; i++) out[i] = this.#decode(b.values, i * this.map.userValueSize);
		return out;
	}
}
