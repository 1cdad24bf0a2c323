// @bpftime/maps-gpu: eBPF maps whose storage is CUDA device memory, shared
// between processes through CUDA IPC handles kept in the registry, so that
// CUDA kernels (the device header, device.cuh) and host programs and tools
// see the same data. Importing this module registers the types with the
// registry of @bpftime/handlers in this process (where the addon was built).
//
//   import { GpuArray, GpuMapType, isAvailable } from '@bpftime/maps-gpu';
//   if (!isAvailable().available) console.log(isAvailable().reason);
//   const hits = new GpuArray(reg.createMap({ type: GpuMapType.Array, name: 'hits', keySize: 4, valueSize: 8, maxEntries: 1024 }), u64);
import { BpftimeError } from '@bpftime/common';
import { type BpfMap, type MapType, registerMapOps } from '@bpftime/handlers';
import { native, whyNoAddon } from './native.js';

export { GpuArray, GpuPerThreadArray } from './arrays.js';
export { type DeviceMap, deviceMap, GpuRingBuf, type GpuRingBufReadOptions } from './ringbuf.js';

/** bpftime's GPU map types (numbers as bpftime names them, gpu_map.h). */
export const GpuMapType = {
	/** BPFTIME_MAP_TYPE_PERGPUTD_ARRAY: a value slot per GPU thread; `mapExtra` is the thread count. */
	PerThreadArray: 1502 as MapType,
	/** BPFTIME_MAP_TYPE_GPU_ARRAY: an array in device memory, one copy. */
	Array: 1503 as MapType,
	/** BPFTIME_MAP_TYPE_GPU_RINGBUF: a ring buffer that CUDA kernels write and the host reads. */
	Ringbuf: 1527 as MapType,
} as const;

const tables = native?.mapOps() ?? [];
for (const t of tables) registerMapOps(t.ops);

/** The map types this package registered in this process (none when its addon was not built). */
export const MAP_TYPES: readonly { type: MapType; typeName: string }[] = Object.freeze(
	tables.map((t) => Object.freeze({ type: t.type as MapType, typeName: t.typeName })),
);

export interface Availability {
	/** GPU maps can be created and opened in this process. */
	available: boolean;
	/** Why not (no toolkit at build, no driver, no device), or '' when available. */
	reason: string;
	/** The device new maps go to, as `device 0: NVIDIA H100 ..., driver CUDA 13.0`, when available. */
	device?: string;
}

/**
 * Whether GPU maps work here, and why not: the addon was built without the CUDA toolkit, the NVIDIA
 * driver (libcuda.so.1) is missing, cuInit fails, or no device is visible (BPFTIME_CUDA_DEVICE picks one).
 */
export function isAvailable(): Availability {
	if (!native) return { available: false, reason: whyNoAddon };
	const p = native.probe();
	if (p.code !== 0) return { available: false, reason: p.detail };
	return { available: true, reason: '', device: p.detail };
}

/** Throws EINVAL naming the map unless it is one of this package's types. */
export function expectGpuMap(map: BpfMap, type?: number): void {
	const ok = type === undefined ? MAP_TYPES.some((t) => t.type === map.type) : map.type === type;
	if (!ok)
		throw new BpftimeError(
			'EINVAL',
			`${map.describe()}: expected a GPU map${type === undefined ? '' : ` of type ${type}`} but the map is ${map.typeName}`,
		);
}
