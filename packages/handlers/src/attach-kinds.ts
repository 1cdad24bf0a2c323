// attach-kinds.ts: the attach vocabulary of native/include/bpftime/handlers/
// attach_kinds.hpp, for TypeScript. Pure data, no addon: the loader and the
// CLI import it as `@bpftime/handlers/attach-kinds` without loading the
// native registry. test/attach-kinds.test.ts checks that these lists equal
// the ones the binding exports from the C++ X-macros, so the two cannot
// drift apart; edit both together.

/** perf_event_handler::type, index = value: the names JSON documents and `PerfEventSpec.type` use. */
export const PERF_EVENT_TYPES = ['uprobe', 'uretprobe', 'syscall_tracepoint', 'custom'] as const;
export type PerfEventTypeName = (typeof PERF_EVENT_TYPES)[number];

/** The mechanisms that hook an attach kind in a target process (the agent's hooks/<family>.cpp), index = value. */
export const HOOK_FAMILIES = ['none', 'uprobe', 'syscall'] as const;
export type HookFamilyName = (typeof HOOK_FAMILIES)[number];

/** What a link to a perf event becomes in a target process, and the family that hooks it; index = value. */
export const ATTACH_KINDS = [
	/** Entry probe: the program runs before the probed instruction. */
	{ name: 'uprobe', family: 'uprobe' },
	/** The program runs when the function returns. */
	{ name: 'uretprobe', family: 'uprobe' },
	/** A uprobe whose program calls bpf_override_return: the function is skipped when it asks. */
	{ name: 'override', family: 'uprobe' },
	/** A uprobe with a USDT semaphore (refCtrOffset != 0). */
	{ name: 'usdt', family: 'uprobe' },
	/** One system call's entry or exit (syscalls/sys_enter_<name>). */
	{ name: 'syscall_tracepoint', family: 'syscall' },
	/** Every system call's entry or exit (raw tracepoints sys_enter, sys_exit): syscallId -1. */
	{ name: 'raw_syscall_tracepoint', family: 'syscall' },
	/** A name and a config for an extension to interpret. */
	{ name: 'custom', family: 'none' },
] as const satisfies readonly { name: string; family: HookFamilyName }[];
export type AttachKindName = (typeof ATTACH_KINDS)[number]['name'];
// Which kind a link becomes is decided in one place, attach_kind_of() in
// attach_kinds.hpp, when the agent attaches it.

export { SYSCALLS_X86_64 } from './syscalls-x86-64.js';
