// What the typed views of the per-CPU, LRU, queue, stack, bloom filter and
// LPM trie maps check once, when one is made: the map's type, and a
// codec's size against the map's; and the per-CPU value layout.
import { type BpfMap, BpftimeError, type Codec } from '@bpftime/handlers';

/** Throws EINVAL naming the map unless it is of `type` (the kernel name in the message). */
export function expectType(map: BpfMap, type: number, view: string, kernelName: string): void {
	if (map.type !== type)
		throw new BpftimeError('EINVAL', `${map.describe()}: ${view} views a ${kernelName} map, not a ${map.typeName} map`);
}

/** Throws EINVAL unless `codec` is `size` bytes: `map 'q': value: expected 8 bytes (valueSize) but u32 is 4`. */
export function expectSize(map: BpfMap, what: string, codec: Codec<unknown>, size: number, field: string): void {
	if (codec.size !== size)
		throw new BpftimeError(
			'EINVAL',
			`${map.describe()}: ${what}: expected ${size} bytes (${field}) but ${codec.name} is ${codec.size}`,
		);
}

/** The bytes of one CPU's value in a per-CPU map's user value: round_up(valueSize, 8). */
export function percpuStride(map: BpfMap): number {
	return (map.valueSize + 7) & ~7;
}

/** The CPUs a per-CPU map's user value holds (the kernel's possible CPUs). */
export function percpuCount(map: BpfMap): number {
	return map.userValueSize / percpuStride(map);
}

/** Decodes every CPU's value of a per-CPU user value. */
export function decodePercpu<V>(map: BpfMap, value: Codec<V>, buf: Buffer): V[] {
	const stride = percpuStride(map);
	const out: V[] = [];
	for (let off = 0; off < buf.length; off += stride) out.push(value.decode(buf, off));
	return out;
}

/** A per-CPU user value: one value for every CPU, or the same for all. */
export function encodePercpu<V>(map: BpfMap, value: Codec<V>, values: readonly V[] | V): Buffer {
	const stride = percpuStride(map);
	const cpus = percpuCount(map);
	const buf = Buffer.alloc(map.userValueSize);
	if (Array.isArray(values)) {
		if (values.length !== cpus)
			throw new BpftimeError(
				'EINVAL',
				`${map.describe()}: update: expected ${cpus} per-CPU values (possible CPUs) but received ${values.length}`,
			);
		for (let i = 0; i < cpus; i++) value.encode(values[i] as V, buf, i * stride);
	} else {
		for (let i = 0; i < cpus; i++) value.encode(values as V, buf, i * stride);
	}
	return buf;
}
