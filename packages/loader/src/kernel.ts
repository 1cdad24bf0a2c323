// Kernel enumerations with their uapi values (include/uapi/linux/bpf.h),
// generated once in @bpftime/common (scripts/gen-uapi.mjs) and shared with
// @bpftime/handlers. Names are the kernel's in PascalCase: `MapType.Hash` is
// BPF_MAP_TYPE_HASH.
import { attachTypeNames, MapType, mapTypeNames, progTypeNames } from '@bpftime/common';

export { AttachType, BPF_OBJ_NAME_LEN, MapFlags, MapType, ProgFlags, ProgType } from '@bpftime/common';

/** `BPF_MAP_TYPE_HASH` for 1. */
export function mapTypeName(type: number): string {
	return mapTypeNames[type] ?? `BPF_MAP_TYPE_${type}`;
}

/** `BPF_PROG_TYPE_KPROBE` for 2. */
export function progTypeName(type: number): string {
	return progTypeNames[type] ?? `BPF_PROG_TYPE_${type}`;
}

/** `BPF_TRACE_FENTRY` for 24. */
export function attachTypeName(type: number): string {
	return attachTypeNames[type] ?? `BPF_ATTACH_TYPE_${type}`;
}

/** Map types whose values are other maps (BPF_MAP_TYPE_ARRAY_OF_MAPS, BPF_MAP_TYPE_HASH_OF_MAPS). */
export function isMapInMap(type: number): boolean {
	return type === MapType.ArrayOfMaps || type === MapType.HashOfMaps;
}
