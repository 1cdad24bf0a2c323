// Side effect: the map-type declarations of the packages beside this one.
import './providers.js';

export { BpftimeError } from '@bpftime/common';
export {
	ATTACH_KINDS,
	type AttachKindName,
	HOOK_FAMILIES,
	type HookFamilyName,
	PERF_EVENT_TYPES,
	type PerfEventTypeName,
	SYSCALLS_X86_64,
} from './attach-kinds.js';
export { bytes, type Codec, i32, i64, u8, u16, u32, u64 } from './codecs.js';
export { AttachType, type Backend, MapFlags, MapType, ProgType, UpdateFlags } from './constants.js';
export {
	availableHelpers,
	type BatchResult,
	BpfMap,
	Btf,
	type BtfDescriptor,
	DEFAULT_CAPACITY,
	defaultBackend,
	type HandlerDescriptor,
	JSON_VERSION,
	Link,
	type LinkDescriptor,
	type LinkSpec,
	type MapDescriptor,
	type MapSpec,
	type OwnerInfo,
	PerfEvent,
	type PerfEventDescriptor,
	type PerfEventSpec,
	Prog,
	type ProgDescriptor,
	type ProgSpec,
	Registry,
	type RegistryOptions,
	type RunOptions,
	registeredMapTypes,
	registerMapOps,
	TypedMap,
} from './registry.js';
