// What the registry commands (list, prog, link, map, clean) share: finding a
// program, map or link by id or name, the BTF a map was created with, the
// text of an attach point, and the processes that have the segment mapped.
import { readdirSync, readFileSync } from 'node:fs';
import { BpftimeError } from '@bpftime/common';
import type {
	BtfDescriptor,
	HandlerDescriptor,
	LinkDescriptor,
	MapDescriptor,
	PerfEventDescriptor,
	ProgDescriptor,
	Registry,
} from '@bpftime/handlers';
import type { Btf } from '@bpftime/loader';

type Kind = 'map' | 'prog' | 'link';
type DescriptorOf<K extends Kind> = Extract<HandlerDescriptor, { kind: K }>;

/**
 * The map, program or link `which` names: an id, or a name (maps and
 * programs). ENOENT lists what there is; EINVAL when two share the name.
 */
export function findHandler<K extends Kind>(reg: Registry, kind: K, which: string): DescriptorOf<K> {
	if (/^\d+$/.test(which)) {
		// An id the table cannot hold (above its capacity, or past u32) names nothing either.
		const id = Number(which);
		const d = Number.isSafeInteger(id) && id < reg.capacity ? reg.get(id) : undefined;
		if (!d) throw new BpftimeError('ENOENT', `${kind} id ${which}: no such ${kind} in the registry`);
		if (d.kind !== kind) throw new BpftimeError('EINVAL', `id ${which}: is a ${d.kind}, not a ${kind}`);
		return d as DescriptorOf<K>;
	}
	const all = reg.list().filter((d): d is DescriptorOf<K> => d.kind === kind);
	if (kind === 'link') throw new BpftimeError('EINVAL', `link '${which}': links have no name; give the link's id`);
	const hits = all.filter((d) => (d as MapDescriptor | ProgDescriptor).name === which);
	const [hit] = hits;
	if (!hit) {
		const names = all.map((d) => `'${(d as MapDescriptor | ProgDescriptor).name}'`).join(', ') || 'none';
		throw new BpftimeError('ENOENT', `${kind} '${which}': no such ${kind} in the registry (${kind}s: ${names})`);
	}
	if (hits.length > 1) {
		const ids = hits.map((d) => (d as HandlerDescriptor).id).join(', ');
		throw new BpftimeError(
			'EINVAL',
			`${kind} '${which}': ${hits.length} ${kind}s have this name (ids ${ids}); name one by id`,
		);
	}
	return hit;
}

/** The BTF parser of @bpftime/loader, imported when a command needs it (start-up of the others stays short). */
export async function btfParser(): Promise<typeof Btf> {
	return (await import('@bpftime/loader')).Btf;
}

/** The parsed BTF object `btfId` of the registry, or undefined when there is none or it does not parse. */
export function registryBtf(
	reg: Registry,
	parser: typeof Btf,
	btfId: number | undefined,
	cache = new Map<number, Btf | null>(),
): Btf | undefined {
	if (btfId === undefined) return undefined;
	if (!cache.has(btfId)) {
		const d = reg.get(btfId);
		let btf: Btf | null = null;
		if (d?.kind === 'btf') {
			try {
				btf = parser.parse((d as BtfDescriptor).data, `BTF (id ${btfId})`);
			} catch {
				// A map whose BTF does not parse is shown as bytes, as one without BTF.
			}
		}
		cache.set(btfId, btf);
	}
	return cache.get(btfId) ?? undefined;
}

/** bpftool's name of a map or program type: BPF_MAP_TYPE_PERCPU_ARRAY -> percpu_array. */
export function shortTypeName(typeName: string): string {
	return typeName.replace(/^BPF_(MAP|PROG)_TYPE_/, '').toLowerCase();
}

/** One line for a perf event: `uprobe /usr/lib/libc.so.6+0x9a0c0`, `tracepoint syscalls/sys_enter (nr 257)`. */
export function describeEvent(e: PerfEventDescriptor): string {
	const pid = e.pid >= 0 ? ` pid ${e.pid}` : '';
	switch (e.type) {
		case 'uprobe':
		case 'uretprobe':
			return `${e.type} ${e.path}${e.symbol ? `:${e.symbol}` : ''}+0x${e.offset.toString(16)}${pid}`;
		case 'syscall_tracepoint':
			return `tracepoint syscalls/${e.syscallExit ? 'sys_exit' : 'sys_enter'}${e.syscallId >= 0 ? ` nr ${e.syscallId}` : ' (every call)'}${pid}`;
		case 'custom':
			return `custom ${e.customName} config 0x${e.customConfig.toString(16)}`;
		default:
			return String(e.type);
	}
}

/** A link's target as one line. */
export function describeLinkTarget(reg: Registry, l: LinkDescriptor): string {
	if (l.targetId === undefined) return 'none';
	const e = reg.get(l.targetId);
	return e?.kind === 'perf_event' ? describeEvent(e) : `id ${l.targetId} (${e ? e.kind : 'released'})`;
}

export type ProcessRole = 'agent' | 'syscall-server' | 'other';

export interface SegmentUser {
	pid: number;
	/** /proc/<pid>/comm. */
	command: string;
	/** `agent`: libbpftime-agent.so is loaded (started by `bpftime start` or injected by `bpftime attach`). */
	role: ProcessRole;
}

/**
 * The processes (other than this one) that have the segment mapped, found in
 * /proc/<pid>/maps as the kernel lists the mapping of /dev/shm/<segment>.
 * Processes this user may not read are not seen.
 */
export function segmentUsers(segment: string): SegmentUser[] {
	const file = `/dev/shm/${segment}`;
	const users: SegmentUser[] = [];
	for (const entry of readdirSync('/proc')) {
		if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
		let maps: string;
		try {
			maps = readFileSync(`/proc/${entry}/maps`, 'utf8');
		} catch {
			continue; // gone meanwhile, or not ours to read
		}
		const mapped = maps.split('\n').some((line) => {
			const at = line.indexOf('/');
			if (at < 0) return false;
			const path = line.slice(at).replace(/ \(deleted\)$/, '');
			return path === file;
		});
		if (!mapped) continue;
		const role: ProcessRole = maps.includes('libbpftime-agent.so')
			? 'agent'
			: maps.includes('libbpftime-syscall-server.so')
				? 'syscall-server'
				: 'other';
		let command = '';
		try {
			command = readFileSync(`/proc/${entry}/comm`, 'utf8').trim();
		} catch {
			// Exited between the two reads: keep the row, the pid says enough.
		}
		users.push({ pid: Number(entry), command, role });
	}
	return users.sort((a, b) => a.pid - b.pid);
}
