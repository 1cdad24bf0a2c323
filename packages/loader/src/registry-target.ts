// The LoadTarget of a bpftime registry (the `Registry` of @bpftime/handlers,
// in shared memory), so that `obj.load(registry)` works as it does with the
// kernel. Typed structurally: any object with these methods serves, and the
// loader loads nothing native of the handlers package (it imports only the
// pure-TypeScript attach vocabulary and its system call table).

import { BpftimeError, type MapSpec, type ProgSpec } from '@bpftime/common';
import { type PerfEventTypeName, SYSCALLS_X86_64 } from '@bpftime/handlers/attach-kinds';
import { AttachType } from './kernel.js';
import type { LinkRequest, LoadTarget, MapCreateRequest, PerfEventRequest, ProgLoadRequest } from './target.js';

/** What the loader calls on a registry; @bpftime/handlers' `Registry` has all of it. */
export interface RegistryLike {
	createMap(spec: MapSpec): { id: number };
	map(id: number): { update(key: Uint8Array, value: Uint8Array, flags?: number): void; freeze?(): void };
	loadProg(spec: ProgSpec): { id: number };
	createPerfEvent(
		spec:
			| {
					type: Extract<PerfEventTypeName, 'uprobe' | 'uretprobe'>;
					path: string;
					offset?: bigint;
					pid?: number;
					refCtrOffset?: bigint;
			  }
			| { type: Extract<PerfEventTypeName, 'syscall_tracepoint'>; syscallId?: number; exit?: boolean; pid?: number },
	): { id: number };
	createLink(spec: { progId: number; targetId?: number; attachType?: number; cookie?: bigint }): { id: number };
	loadBtf?(data: Uint8Array): { id: number };
	release(id: number): void;
	beginLoad?(): void;
	endLoad?(): void;
}

/** Whether `t` is a registry rather than a LoadTarget. */
export function isRegistryLike(t: unknown): t is RegistryLike {
	const r = t as Partial<RegistryLike & LoadTarget> | undefined;
	return typeof r?.loadProg === 'function' && typeof r.createMap === 'function' && typeof r.loadProgram !== 'function';
}

/** The system call number of a `sys_enter_<name>` / `sys_exit_<name>` tracepoint. */
export function syscallOfTracepoint(name: string): { nr: number; exit: boolean } {
	const m = /^sys_(enter|exit)_([a-z0-9_]+)$/.exec(name);
	if (!m)
		throw new BpftimeError('EINVAL', `tracepoint 'syscalls/${name}': expected sys_enter_<name> or sys_exit_<name>`);
	if (process.arch !== 'x64') {
		throw new BpftimeError(
			'EOPNOTSUPP',
			`tracepoint 'syscalls/${name}': system call numbers are known for x86-64 only`,
		);
	}
	const nr = SYSCALLS_X86_64[m[2] as string];
	if (nr === undefined)
		throw new BpftimeError('ENOENT', `tracepoint 'syscalls/${name}': no system call '${m[2]}' on x86-64`);
	return { nr, exit: m[1] === 'exit' };
}

/**
 * A LoadTarget over a registry. `BpfObject.load(registry)` makes one itself;
 * call this to share one between objects.
 *
 * - BTF is loaded into the registry when it offers `loadBtf` (as the
 *   syscall-server does for libbpf); func and line info are not kept there.
 * - `.rodata` is frozen when the registry's maps offer `freeze()`; otherwise
 *   BPF_F_RDONLY_PROG already keeps programs from writing it, and the loader
 *   refuses `setRodata()` after load.
 * - A syscall tracepoint becomes a syscall perf event for the system call's
 *   number; a raw tracepoint (`sys_enter`, `sys_exit`) one for every system
 *   call, owned by its link (released with it).
 * - Pinning is not kept: a `by-name` map is created like any other.
 */
export function registryTarget(reg: RegistryLike): LoadTarget {
	/** Perf events the target made for raw tracepoint links: released after their link. */
	const owned = new Map<number, number>();
	const target: LoadTarget = {
		createMap: (r: MapCreateRequest) =>
			reg.createMap({
				type: r.type,
				name: r.name,
				keySize: r.keySize,
				valueSize: r.valueSize,
				maxEntries: r.maxEntries,
				flags: r.flags,
				innerMapId: r.innerMapId,
				btfId: r.btfId,
				btfKeyTypeId: r.btfId === undefined ? 0 : r.btfKeyTypeId,
				btfValueTypeId: r.btfId === undefined ? 0 : r.btfValueTypeId,
				numaNode: r.numaNode,
				mapExtra: r.mapExtra,
			}).id,
		updateMap: (map: number, key: Buffer, value: Buffer) => reg.map(map).update(key, value, 0),
		freezeMap: (map: number) => {
			const m = reg.map(map);
			if (typeof m.freeze === 'function') m.freeze();
		},
		loadProgram: (r: ProgLoadRequest) =>
			reg.loadProg({
				type: r.type,
				name: r.name,
				license: r.license,
				insns: r.instructions,
				expectedAttachType: r.expectedAttachType,
				progFlags: r.flags,
				kernVersion: r.kernelVersion,
			}).id,
		createPerfEvent: (r: PerfEventRequest) => {
			if (r.kind === 'uprobe') {
				return reg.createPerfEvent({
					type: r.retprobe ? 'uretprobe' : 'uprobe',
					path: r.path,
					offset: r.offset,
					pid: r.pid,
					refCtrOffset: r.refCtrOffset,
				}).id;
			}
			if (r.category !== 'syscalls') {
				throw new BpftimeError(
					'EOPNOTSUPP',
					`tracepoint '${r.category}/${r.name}': only syscalls/ tracepoints exist in user space`,
				);
			}
			const sc = syscallOfTracepoint(r.name);
			return reg.createPerfEvent({ type: 'syscall_tracepoint', syscallId: sc.nr, exit: sc.exit, pid: r.pid }).id;
		},
		createLink: (r: LinkRequest) => {
			if (r.kind === 'perf_event') {
				return reg.createLink({
					progId: r.prog,
					targetId: r.perfEvent,
					attachType: AttachType.PerfEvent,
					cookie: r.cookie,
				}).id;
			}
			if (r.name !== 'sys_enter' && r.name !== 'sys_exit') {
				throw new BpftimeError('EOPNOTSUPP', `raw tracepoint '${r.name}': bpftime has sys_enter and sys_exit`);
			}
			const pe = reg.createPerfEvent({
				type: 'syscall_tracepoint',
				syscallId: -1,
				exit: r.name === 'sys_exit',
				pid: -1,
			}).id;
			try {
				const link = reg.createLink({ progId: r.prog, targetId: pe, attachType: AttachType.PerfEvent, cookie: 0n }).id;
				owned.set(link, pe);
				return link;
			} catch (e) {
				reg.release(pe);
				throw e;
			}
		},
		release: (id: number) => {
			reg.release(id);
			const pe = owned.get(id);
			if (pe !== undefined) {
				owned.delete(id);
				reg.release(pe);
			}
		},
	};
	if (typeof reg.beginLoad === 'function' && typeof reg.endLoad === 'function') {
		target.beginLoad = reg.beginLoad.bind(reg);
		target.endLoad = reg.endLoad.bind(reg);
	}
	if (typeof reg.loadBtf === 'function') {
		const loadBtf = reg.loadBtf.bind(reg);
		target.loadBtf = (data: Buffer) => loadBtf(data).id;
	}
	return target;
}
