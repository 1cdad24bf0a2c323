// fields.ts: the keys of each handler kind's descriptor and of the spec object the binding reads on
// create, as const arrays typed against the descriptor interfaces of registry.ts.
//
// The native side generates the same lists from its field lists (native/include/bpftime/handlers/
// fields.hpp) and exports them as `fieldKeys`; test/fields.test.ts checks that the two agree. A field
// added to a descriptor interface and not here does not typecheck (the error names it); one added
// here and not to the interface does not either; one added to fields.hpp and not here fails the test.
import type {
	BtfDescriptor,
	HandlerDescriptor,
	LinkDescriptor,
	MapDescriptor,
	PerfEventDescriptor,
	ProgDescriptor,
} from './registry.js';

/** Keys every descriptor has (`id`, `generation`, `kind`) or that the TypeScript API adds (`typeName`). */
type CommonKey = 'id' | 'generation' | 'kind' | 'typeName';
type FieldKey<D> = Exclude<keyof D, CommonKey>;
type Missing<D, K extends readonly unknown[]> = Exclude<FieldKey<D>, K[number]>;

/** Checks, at compile time, that `keys` names every field of D: `keysOf<D>()([...])`. */
function keysOf<D>() {
	return <const K extends readonly FieldKey<D>[]>(
		keys: K & ([Missing<D, K>] extends [never] ? unknown : { missing: Missing<D, K> }),
	): K => keys;
}

/**
 * What createMap passes: the descriptor's fields but `frozen` (BpfMap.freeze() sets it) and
 * `userValueSize` (computed from the type and the value size).
 */
export const MAP_SPEC_KEYS = keysOf<Omit<MapDescriptor, 'frozen' | 'userValueSize'>>()([
	'name',
	'type',
	'keySize',
	'valueSize',
	'maxEntries',
	'flags',
	'innerMapId',
	'btfId',
	'btfKeyTypeId',
	'btfValueTypeId',
	'btfVmlinuxValueTypeId',
	'numaNode',
	'ifindex',
	'mapExtra',
]);
export const MAP_DESCRIPTOR_KEYS = keysOf<MapDescriptor>()([...MAP_SPEC_KEYS, 'frozen', 'userValueSize']);

/** What loadProg passes: the descriptor's fields but `mapIds` (computed from the instructions). */
export const PROG_SPEC_KEYS = keysOf<Omit<ProgDescriptor, 'mapIds'>>()([
	'name',
	'type',
	'expectedAttachType',
	'attachBtfId',
	'progFlags',
	'kernVersion',
	'license',
	'insns',
	'fdArray',
]);
export const PROG_DESCRIPTOR_KEYS = keysOf<ProgDescriptor>()([...PROG_SPEC_KEYS, 'mapIds']);

/** What createLink passes: the descriptor's fields but `faults` (the agents count it). */
export const LINK_SPEC_KEYS = keysOf<Omit<LinkDescriptor, 'faults'>>()([
	'progId',
	'targetId',
	'attachType',
	'flags',
	'cookie',
]);
export const LINK_DESCRIPTOR_KEYS = keysOf<LinkDescriptor>()([...LINK_SPEC_KEYS, 'faults']);

export const PERF_EVENT_DESCRIPTOR_KEYS = keysOf<PerfEventDescriptor>()([
	'type',
	'path',
	'offset',
	'symbol',
	'pid',
	'refCtrOffset',
	'syscallId',
	'syscallExit',
	'customName',
	'customConfig',
]);
export const PERF_EVENT_SPEC_KEYS = PERF_EVENT_DESCRIPTOR_KEYS;

export const BTF_DESCRIPTOR_KEYS = keysOf<BtfDescriptor>()(['data']);
export const BTF_SPEC_KEYS = BTF_DESCRIPTOR_KEYS;

/** Every kind's key lists, shaped as the binding's `fieldKeys`. */
export const FIELD_KEYS = {
	map: { descriptor: MAP_DESCRIPTOR_KEYS, spec: MAP_SPEC_KEYS },
	prog: { descriptor: PROG_DESCRIPTOR_KEYS, spec: PROG_SPEC_KEYS },
	link: { descriptor: LINK_DESCRIPTOR_KEYS, spec: LINK_SPEC_KEYS },
	perf_event: { descriptor: PERF_EVENT_DESCRIPTOR_KEYS, spec: PERF_EVENT_SPEC_KEYS },
	btf: { descriptor: BTF_DESCRIPTOR_KEYS, spec: BTF_SPEC_KEYS },
} as const satisfies Record<HandlerDescriptor['kind'], { descriptor: readonly string[]; spec: readonly string[] }>;

export type HandlerKind = keyof typeof FIELD_KEYS;

/**
 * The spec object the binding's create call of a kind reads: the spec keys, each typed as in the
 * descriptor, each optional (the binding applies the defaults and refuses a missing required one).
 */
export type NativeSpec<K extends HandlerKind> = {
	[P in (typeof FIELD_KEYS)[K]['spec'][number] & keyof DescriptorOf[K]]?: DescriptorOf[K][P];
};

interface DescriptorOf {
	map: MapDescriptor;
	prog: ProgDescriptor;
	link: LinkDescriptor;
	perf_event: PerfEventDescriptor;
	btf: BtfDescriptor;
}
