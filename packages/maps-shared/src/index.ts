// @bpftime/maps-shared: map types whose storage is a real kernel map, reached
// through bpf(2), so that programs run by bpftime in user space and programs
// run by the kernel share data. Importing this module registers the types
// with the registry of @bpftime/handlers in this process.
//
//   import { createKernelMap, KernelMapType, kernelMapId } from '@bpftime/maps-shared';
//   const counts = createKernelMap(reg, { type: KernelMapType.Hash, name: 'counts', keySize: 4, valueSize: 8, maxEntries: 64 });
//   kernelMapId(reg, counts); // the id bpftool shows
import { fileURLToPath } from 'node:url';
import { BpftimeError, loadNative, type NativeAddon } from '@bpftime/common';
import { type BpfMap, type MapSpec, type MapType, type Registry, registerMapOps } from '@bpftime/handlers';

/** What the kernel says of one of its maps. */
export interface KernelMapInfo {
	id: number;
	/** The kernel's type (BPF_MAP_TYPE_HASH = 1), not bpftime's. */
	kernelType: number;
	keySize: number;
	valueSize: number;
	maxEntries: number;
	mapFlags: number;
	name: string;
}

interface MapsAddon extends NativeAddon {
	mapOps(): { type: number; typeName: string; ops: unknown }[];
	kernelCreate(
		kernelType: number,
		keySize: number,
		valueSize: number,
		maxEntries: number,
		mapFlags: number,
		name: string,
	): KernelMapInfo & { fd: number };
	kernelDescribe(idOrPath: number | string): KernelMapInfo;
	closeFd(fd: number): void;
	kernelIdOf(segmentName: string, mapId: number): number;
}

const native = loadNative<MapsAddon>(fileURLToPath(new URL('..', import.meta.url)), 'maps_shared');
const tables = native.mapOps();
for (const t of tables) registerMapOps(t.ops);

/** The offset of bpftime's kernel-backed types: KERNEL_MAP_OFFSET + the kernel's type. */
export const KERNEL_MAP_OFFSET = 1000;

/** bpftime's kernel-backed map types (BPFTIME_MAP_TYPE_KERNEL_USER_*). */
export const KernelMapType = {
	/** BPFTIME_MAP_TYPE_KERNEL_USER_HASH: a kernel BPF_MAP_TYPE_HASH. */
	Hash: (KERNEL_MAP_OFFSET + 1) as MapType,
	/** BPFTIME_MAP_TYPE_KERNEL_USER_ARRAY: a kernel BPF_MAP_TYPE_ARRAY (mmapped with BPF_F_MMAPABLE). */
	Array: (KERNEL_MAP_OFFSET + 2) as MapType,
	/**
	 * BPFTIME_MAP_TYPE_KERNEL_USER_PERCPU_ARRAY: a kernel BPF_MAP_TYPE_PERCPU_ARRAY. User space reads
	 * and writes every CPU's value (userValueSize bytes); a program sees and updates the value of the
	 * CPU slot its run owns.
	 */
	PercpuArray: (KERNEL_MAP_OFFSET + 6) as MapType,
} as const;

/** The map types this package provides (and has registered in this process). */
export const MAP_TYPES: readonly { type: MapType; typeName: string }[] = Object.freeze(
	tables.map((t) => Object.freeze({ type: t.type as MapType, typeName: t.typeName })),
);

function kernelTypeOf(type: number): number {
	if (!MAP_TYPES.some((t) => t.type === type))
		throw new BpftimeError(22, `Expected a KernelMapType for type but received ${type} (number)`);
	return type - KERNEL_MAP_OFFSET;
}

/**
 * Creates a kernel map (BPF_MAP_CREATE) and registers it in reg as a map of the kernel-backed type
 * spec.type; its kernel id is the registry map's mapExtra (kernelMapId()). EPERM where bpf() is refused.
 */
export function createKernelMap(reg: Registry, spec: MapSpec): BpfMap {
	const k = native.kernelCreate(
		kernelTypeOf(spec.type),
		spec.keySize,
		spec.valueSize,
		spec.maxEntries,
		spec.flags ?? 0,
		spec.name ?? '',
	);
	try {
		return reg.createMap({ ...spec, mapExtra: BigInt(k.id) });
	} finally {
		// The registry's map now holds its own reference (a pin).
		native.closeFd(k.fd);
	}
}

/**
 * Registers an existing kernel map, by kernel id or by a pin path in bpffs, as a map of the matching
 * kernel-backed type; name defaults to the kernel's name.
 */
export function openKernelMap(reg: Registry, idOrPath: number | string, name?: string): BpfMap {
	const k = native.kernelDescribe(idOrPath);
	const type = (k.kernelType + KERNEL_MAP_OFFSET) as MapType;
	if (!MAP_TYPES.some((t) => t.type === type))
		throw new BpftimeError(
			95,
			`kernel map id ${k.id}: kernel map type ${k.kernelType} has no kernel-backed bpftime type (EOPNOTSUPP)`,
		);
	return reg.createMap({
		type,
		name: name ?? k.name,
		keySize: k.keySize,
		valueSize: k.valueSize,
		maxEntries: k.maxEntries,
		flags: k.mapFlags,
		mapExtra: BigInt(k.id),
	});
}

/** What the kernel says of a map, by kernel id or pin path. */
export function describeKernelMap(idOrPath: number | string): KernelMapInfo {
	return native.kernelDescribe(idOrPath);
}

/** The kernel id of a kernel-backed map (the id `bpftool map dump id N` takes), however it was made. */
export function kernelMapId(reg: Registry, map: BpfMap): number {
	const d = reg.get(map.id);
	if (d?.kind !== 'map') throw new BpftimeError(2, `${map.describe()}: not in the registry (ENOENT)`);
	if (d.mapExtra !== 0n) return Number(d.mapExtra);
	// Made with map_extra 0 (the loader, bpf() through the syscall-server): the id is in the map's state.
	return native.kernelIdOf(reg.segmentName, map.id);
}
