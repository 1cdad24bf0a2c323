// specs.ts: what a map or a program is before it exists, as plain data. One
// MapSpec and one ProgSpec for every package: handlers' `Registry.createMap()`
// and `loadProg()` take them, the loader's object maps are MapSpecs with what
// the object file adds (`ObjectMapSpec`), and its create requests are
// MapSpecs with every attribute filled in.
import type { AttachType, MapType, ProgType } from './uapi.js';

/** What BPF_MAP_CREATE takes. */
export interface MapSpec {
	type: MapType | number;
	/** At most 15 bytes of letters, digits, `_` and `.`. */
	name?: string;
	keySize: number;
	valueSize: number;
	maxEntries: number;
	/** `MapFlags` bits. */
	flags?: number;
	/** Map-in-map: the id of a map that serves as the template of the inner maps. */
	innerMapId?: number;
	btfId?: number;
	btfKeyTypeId?: number;
	btfValueTypeId?: number;
	btfVmlinuxValueTypeId?: number;
	numaNode?: number;
	ifindex?: number;
	mapExtra?: bigint;
}

/** What BPF_PROG_LOAD takes. */
export interface ProgSpec {
	type: ProgType | number;
	name?: string;
	license?: string;
	/** Raw 8-byte instructions; lddw map references name map ids (BPF_PSEUDO_MAP_FD) or fdArray indexes. */
	insns: Uint8Array;
	expectedAttachType?: AttachType | number;
	attachBtfId?: number;
	/** `ProgFlags` bits (BPF_F_SLEEPABLE ...). */
	progFlags?: number;
	kernVersion?: number;
	/** Map ids for BPF_PSEUDO_MAP_IDX / _IDX_VALUE instructions (the kernel's fd_array). */
	fdArray?: number[];
}
