export type { MapSpec, ProgSpec } from '@bpftime/common';
export { BpftimeError } from '@bpftime/common';
export { findFuncOffset, resolveBinaryPath } from './attach/uprobe.js';
export { findUsdtProbes, type UsdtProbe } from './attach/usdt.js';
export {
	Btf,
	type BtfEnumValue,
	BtfKind,
	type BtfMember,
	type BtfParam,
	type BtfType,
	type BtfVarSecinfo,
	btfKindName,
} from './btf/btf.js';
export {
	type BtfExt,
	type CoreRelo,
	CoreReloKind,
	coreReloKindName,
	type FuncInfo,
	type LineInfo,
	parseBtfExt,
} from './btf/ext.js';
export { type AppliedCoreRelo, loadBtf, type TargetBtfSource, VMLINUX_BTF_PATH } from './core/apply.js';
export { type DescribeOptions, type Disassembler, formatAttachPoint } from './describe.js';
export {
	ElfFile,
	type ElfHeader,
	type ElfRelocation,
	type ElfSection,
	type ElfSegment,
	type ElfSymbol,
} from './elf/elf-file.js';
export {
	AttachType,
	attachTypeName,
	BPF_OBJ_NAME_LEN,
	MapFlags,
	MapType,
	mapTypeName,
	ProgFlags,
	ProgType,
	progTypeName,
} from './kernel.js';
export { type GlobalVariable, internalMapName, type MapKind, type MapPinning, type ObjectMapSpec } from './maps.js';
export {
	type AttachOptions,
	type AttachTarget,
	BpfObject,
	Link,
	type LoadedMap,
	type LoadedObject,
	type LoadedProgram,
	type LoadOptions,
	mapCreateRequest,
	type OpenOptions,
	possibleCpus,
} from './object.js';
export type { AppliedRelocation, FuncInfoEntry, MapReference, ObjectProgSpec } from './programs.js';
export { isRegistryLike, type RegistryLike, registryTarget, syscallOfTracepoint } from './registry-target.js';
export { resolveMapReferences } from './relocate.js';
export { type AttachPoint, findSecDef, parseAttachPoint, SEC_DEFS, type SecDef } from './sections.js';
export type { LinkRequest, LoadTarget, MapCreateRequest, PerfEventRequest, ProgLoadRequest } from './target.js';
