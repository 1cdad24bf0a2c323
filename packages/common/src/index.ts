export { expectBuffer, expectPositiveInt, expectString, expectU32, expectU64 } from './checks.js';
export { BpftimeError, errnoName, errnoNumber } from './errors.js';
export { findBuilt, loadNative, type NativeAddon } from './native.js';
export type { MapSpec, ProgSpec } from './specs.js';
export {
	AttachType,
	attachTypeNames,
	BPF_OBJ_NAME_LEN,
	BpfCmd,
	bpfCmdNames,
	HelperId,
	helperNames,
	LinkType,
	linkTypeNames,
	MapFlags,
	MapType,
	mapTypeNames,
	ProgFlags,
	ProgType,
	progTypeNames,
	UAPI_SOURCE_SHA256,
	UpdateFlags,
} from './uapi.js';
