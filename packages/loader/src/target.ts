// What the loader needs from a registry to load an object into it.
//
// `BpfObject.load()` and `attach()` only talk to this interface; the
// `Registry` of @bpftime/handlers (shared memory) gets it from
// `registryTarget()` (registry-target.ts), and anything else that keeps
// kernel-style objects can implement it (the tests drive the kernel through
// bpf(2) with one, and a recorder). Each create call returns an
// fd-like id; `release()` drops one, and is what `load()` calls, in reverse
// order, to undo a load that failed half-way.
//
// Create calls may be synchronous or return a promise; `release()` is
// synchronous so that `close()` and `[Symbol.dispose]` can be.

import type { MapSpec } from '@bpftime/common';

/**
 * A MapSpec with the attributes libbpf always passes to BPF_MAP_CREATE given
 * (0 where the object names none): what an object's maps and the create
 * requests made of them share.
 */
export interface FilledMapSpec extends MapSpec {
	/** BPF_F_* map flags */
	flags: number;
	numaNode: number;
	mapExtra: bigint;
}

/** BPF_MAP_CREATE, with the attributes libbpf would pass: a MapSpec with every field the loader knows filled in. */
export interface MapCreateRequest extends FilledMapSpec {
	/** The kernel-visible name: at most 15 characters of [A-Za-z0-9_.]. */
	name: string;
	/** For map-in-map types: the id of a map shaped like the inner maps (the kernel's inner_map_fd). */
	innerMapId: number | undefined;
	/** `by-name`: the object asked for LIBBPF_PIN_BY_NAME; a registry may share the map with others of that name. */
	pinning: 'none' | 'by-name';
	/** The id `loadBtf()` gave the object's BTF (btf_fd), or undefined when the target took no BTF. */
	btfId: number | undefined;
	/** BTF ids of key and value in the object's BTF (0 when absent), as btf_key_type_id/btf_value_type_id. */
	btfKeyTypeId: number;
	btfValueTypeId: number;
}

/** BPF_PROG_LOAD */
export interface ProgLoadRequest {
	/** The kernel-visible name: at most 15 characters. */
	name: string;
	/** BPF_PROG_TYPE_* */
	type: number;
	/** BPF_* attach type */
	expectedAttachType: number;
	/** The instructions, map loads already pointing at registry ids (BPF_PSEUDO_MAP_FD / BPF_PSEUDO_MAP_VALUE). */
	instructions: Buffer;
	license: string;
	kernelVersion: number;
	/** BPF_F_SLEEPABLE (1 << 4) for `.s` sections; 0 otherwise. */
	flags: number;
	/** Ids of every map the instructions reference, in first-use order. */
	mapIds: number[];
	/** The id `loadBtf()` gave the object's BTF (prog_btf_fd), or undefined. */
	btfId: number | undefined;
	/** struct bpf_func_info records (8 bytes: insn_off, type_id), one per function after sub-programs are appended. */
	funcInfo: Buffer;
	/** struct bpf_line_info records (16 bytes: insn_off, file_name_off, line_off, line_col). */
	lineInfo: Buffer;
}

/** perf_event_open(2) for the events bpftime can hook in user space. u64 values are bigint. */
export type PerfEventRequest =
	| {
			kind: 'uprobe';
			/** Absolute path of the executable or library. */
			path: string;
			/** File offset of the probed instruction. */
			offset: bigint;
			retprobe: boolean;
			/** -1: every process. */
			pid: number;
			/** File offset of a USDT semaphore to increment while attached, 0 for none. */
			refCtrOffset: bigint;
	  }
	| {
			kind: 'tracepoint';
			/** `syscalls` */
			category: string;
			/** `sys_enter_openat` */
			name: string;
			pid: number;
	  };

/** BPF_LINK_CREATE (or BPF_RAW_TRACEPOINT_OPEN): ties a loaded program to an event. */
export type LinkRequest =
	| { kind: 'perf_event'; prog: number; perfEvent: number; cookie: bigint }
	| { kind: 'raw_tracepoint'; prog: number; name: string };

export interface LoadTarget {
	/**
	 * BPF_BTF_LOAD of the object's BTF (DATASEC sizes and offsets fixed up),
	 * before anything else. Optional: a target that has no use for BTF (the
	 * bpftime registry runs programs without it) leaves it out, and maps and
	 * programs then come with no BTF id. The kernel needs it for programs
	 * with callbacks or global functions.
	 */
	loadBtf?(data: Buffer): number | Promise<number>;
	createMap(req: MapCreateRequest): number | Promise<number>;
	/** BPF_MAP_UPDATE_ELEM with BPF_ANY: initial values of global data, map-in-map and prog-array slots. */
	updateMap(map: number, key: Buffer, value: Buffer): void | Promise<void>;
	/** BPF_MAP_FREEZE: `.rodata` maps, after their initial value is written. */
	freezeMap(map: number): void | Promise<void>;
	loadProgram(req: ProgLoadRequest): number | Promise<number>;
	createPerfEvent(req: PerfEventRequest): number | Promise<number>;
	createLink(req: LinkRequest): number | Promise<number>;
	/** Drops an id created by this target (close(2) of the fd). */
	release(id: number): void;
	/**
	 * Brackets a load (the bpftime registry: a loader that dies in between has
	 * what it created released by the next opener). Optional: the kernel
	 * closes a dead process's fds itself.
	 */
	beginLoad?(): void;
	endLoad?(): void;
}
