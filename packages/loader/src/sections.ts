// SEC() names: program type, expected attach type and attach point, with the
// table and matching rules of libbpf (src/libbpf.c section_defs[] and
// sec_def_matches(), libbpf 1.x). The first entry that matches wins:
//   - `type/` matches names that start with it;
//   - `type+` matches `type` exactly or `type/anything`;
//   - anything else matches only itself.

import { AttachType, ProgType } from './kernel.js';

/** libbpf's enum sec_def_flags */
export const SecFlags = {
	None: 0,
	ExpAttachOpt: 1,
	Attachable: 2,
	AttachableOpt: 3,
	AttachBtf: 4,
	Sleepable: 8,
	XdpFrags: 16,
	Usdt: 32,
} as const;

/**
 * libbpf's family of a SEC name (how libbpf would attach it); `kernel` ones cannot run in user
 * space. What a family becomes in bpftime is the attach vocabulary of @bpftime/handlers
 * (`@bpftime/handlers/attach-kinds`): `registryTarget` turns `uprobe` and `usdt` into uprobe or
 * uretprobe perf events, `tracepoint` (syscalls/) and `raw_tracepoint` (sys_enter, sys_exit)
 * into syscall_tracepoint ones.
 */
export type AttachFamily = 'uprobe' | 'usdt' | 'tracepoint' | 'raw_tracepoint' | 'kprobe' | 'kernel' | 'none';

export interface SecDef {
	/** The pattern as libbpf spells it (`uprobe+`, `cgroup/bind4`). */
	sec: string;
	progType: ProgType;
	expectedAttachType: number;
	flags: number;
	family: AttachFamily;
}

const P = ProgType;
const A = AttachType;
const F = SecFlags;

function def(sec: string, progType: ProgType, expectedAttachType: number, flags: number, family: AttachFamily): SecDef {
	return { sec, progType, expectedAttachType, flags, family };
}

/** libbpf's section_defs[], in its order. */
export const SEC_DEFS: readonly SecDef[] = [
	def('socket', P.SocketFilter, 0, F.None, 'kernel'),
	def('sk_reuseport/migrate', P.SkReuseport, A.SkReuseportSelectOrMigrate, F.Attachable, 'kernel'),
	def('sk_reuseport', P.SkReuseport, A.SkReuseportSelect, F.Attachable, 'kernel'),
	def('kprobe+', P.Kprobe, 0, F.None, 'kprobe'),
	def('uprobe+', P.Kprobe, 0, F.None, 'uprobe'),
	def('uprobe.s+', P.Kprobe, 0, F.Sleepable, 'uprobe'),
	def('kretprobe+', P.Kprobe, 0, F.None, 'kprobe'),
	def('uretprobe+', P.Kprobe, 0, F.None, 'uprobe'),
	def('uretprobe.s+', P.Kprobe, 0, F.Sleepable, 'uprobe'),
	def('kprobe.multi+', P.Kprobe, A.TraceKprobeMulti, F.None, 'kprobe'),
	def('kretprobe.multi+', P.Kprobe, A.TraceKprobeMulti, F.None, 'kprobe'),
	def('ksyscall+', P.Kprobe, 0, F.None, 'kprobe'),
	def('kretsyscall+', P.Kprobe, 0, F.None, 'kprobe'),
	def('usdt+', P.Kprobe, 0, F.Usdt, 'usdt'),
	def('tc', P.SchedCls, 0, F.None, 'kernel'),
	def('classifier', P.SchedCls, 0, F.None, 'kernel'),
	def('action', P.SchedAct, 0, F.None, 'kernel'),
	def('tracepoint+', P.Tracepoint, 0, F.None, 'tracepoint'),
	def('tp+', P.Tracepoint, 0, F.None, 'tracepoint'),
	def('raw_tracepoint+', P.RawTracepoint, 0, F.None, 'raw_tracepoint'),
	def('raw_tp+', P.RawTracepoint, 0, F.None, 'raw_tracepoint'),
	def('raw_tracepoint.w+', P.RawTracepointWritable, 0, F.None, 'raw_tracepoint'),
	def('raw_tp.w+', P.RawTracepointWritable, 0, F.None, 'raw_tracepoint'),
	def('tp_btf+', P.Tracing, A.TraceRawTp, F.AttachBtf, 'kernel'),
	def('fentry+', P.Tracing, A.TraceFentry, F.AttachBtf, 'kernel'),
	def('fmod_ret+', P.Tracing, A.ModifyReturn, F.AttachBtf, 'kernel'),
	def('fexit+', P.Tracing, A.TraceFexit, F.AttachBtf, 'kernel'),
	def('fentry.s+', P.Tracing, A.TraceFentry, F.AttachBtf | F.Sleepable, 'kernel'),
	def('fmod_ret.s+', P.Tracing, A.ModifyReturn, F.AttachBtf | F.Sleepable, 'kernel'),
	def('fexit.s+', P.Tracing, A.TraceFexit, F.AttachBtf | F.Sleepable, 'kernel'),
	def('freplace+', P.Ext, 0, F.AttachBtf, 'kernel'),
	def('lsm+', P.Lsm, A.LsmMac, F.AttachBtf, 'kernel'),
	def('lsm.s+', P.Lsm, A.LsmMac, F.AttachBtf | F.Sleepable, 'kernel'),
	def('lsm_cgroup+', P.Lsm, A.LsmCgroup, F.AttachBtf, 'kernel'),
	def('iter+', P.Tracing, A.TraceIter, F.AttachBtf, 'kernel'),
	def('iter.s+', P.Tracing, A.TraceIter, F.AttachBtf | F.Sleepable, 'kernel'),
	def('syscall', P.Syscall, 0, F.Sleepable, 'none'),
	def('xdp.frags/devmap', P.Xdp, A.XdpDevmap, F.XdpFrags, 'kernel'),
	def('xdp/devmap', P.Xdp, A.XdpDevmap, F.Attachable, 'kernel'),
	def('xdp.frags/cpumap', P.Xdp, A.XdpCpumap, F.XdpFrags, 'kernel'),
	def('xdp/cpumap', P.Xdp, A.XdpCpumap, F.Attachable, 'kernel'),
	def('xdp.frags', P.Xdp, A.Xdp, F.XdpFrags, 'kernel'),
	def('xdp', P.Xdp, A.Xdp, F.AttachableOpt, 'kernel'),
	def('perf_event', P.PerfEvent, 0, F.None, 'kernel'),
	def('lwt_in', P.LwtIn, 0, F.None, 'kernel'),
	def('lwt_out', P.LwtOut, 0, F.None, 'kernel'),
	def('lwt_xmit', P.LwtXmit, 0, F.None, 'kernel'),
	def('lwt_seg6local', P.LwtSeg6local, 0, F.None, 'kernel'),
	def('sockops', P.SockOps, A.CgroupSockOps, F.AttachableOpt, 'kernel'),
	def('sk_skb/stream_parser', P.SkSkb, A.SkSkbStreamParser, F.AttachableOpt, 'kernel'),
	def('sk_skb/stream_verdict', P.SkSkb, A.SkSkbStreamVerdict, F.AttachableOpt, 'kernel'),
	def('sk_skb', P.SkSkb, 0, F.None, 'kernel'),
	def('sk_msg', P.SkMsg, A.SkMsgVerdict, F.AttachableOpt, 'kernel'),
	def('lirc_mode2', P.LircMode2, A.LircMode2, F.AttachableOpt, 'kernel'),
	def('flow_dissector', P.FlowDissector, A.FlowDissector, F.AttachableOpt, 'kernel'),
	def('cgroup_skb/ingress', P.CgroupSkb, A.CgroupInetIngress, F.AttachableOpt, 'kernel'),
	def('cgroup_skb/egress', P.CgroupSkb, A.CgroupInetEgress, F.AttachableOpt, 'kernel'),
	def('cgroup/skb', P.CgroupSkb, 0, F.None, 'kernel'),
	def('cgroup/sock_create', P.CgroupSock, A.CgroupInetSockCreate, F.Attachable, 'kernel'),
	def('cgroup/sock_release', P.CgroupSock, A.CgroupInetSockRelease, F.Attachable, 'kernel'),
	def('cgroup/sock', P.CgroupSock, A.CgroupInetSockCreate, F.AttachableOpt, 'kernel'),
	def('cgroup/post_bind4', P.CgroupSock, A.CgroupInet4PostBind, F.Attachable, 'kernel'),
	def('cgroup/post_bind6', P.CgroupSock, A.CgroupInet6PostBind, F.Attachable, 'kernel'),
	def('cgroup/bind4', P.CgroupSockAddr, A.CgroupInet4Bind, F.Attachable, 'kernel'),
	def('cgroup/bind6', P.CgroupSockAddr, A.CgroupInet6Bind, F.Attachable, 'kernel'),
	def('cgroup/connect4', P.CgroupSockAddr, A.CgroupInet4Connect, F.Attachable, 'kernel'),
	def('cgroup/connect6', P.CgroupSockAddr, A.CgroupInet6Connect, F.Attachable, 'kernel'),
	def('cgroup/sendmsg4', P.CgroupSockAddr, A.CgroupUdp4Sendmsg, F.Attachable, 'kernel'),
	def('cgroup/sendmsg6', P.CgroupSockAddr, A.CgroupUdp6Sendmsg, F.Attachable, 'kernel'),
	def('cgroup/recvmsg4', P.CgroupSockAddr, A.CgroupUdp4Recvmsg, F.Attachable, 'kernel'),
	def('cgroup/recvmsg6', P.CgroupSockAddr, A.CgroupUdp6Recvmsg, F.Attachable, 'kernel'),
	def('cgroup/getpeername4', P.CgroupSockAddr, A.CgroupInet4Getpeername, F.Attachable, 'kernel'),
	def('cgroup/getpeername6', P.CgroupSockAddr, A.CgroupInet6Getpeername, F.Attachable, 'kernel'),
	def('cgroup/getsockname4', P.CgroupSockAddr, A.CgroupInet4Getsockname, F.Attachable, 'kernel'),
	def('cgroup/getsockname6', P.CgroupSockAddr, A.CgroupInet6Getsockname, F.Attachable, 'kernel'),
	def('cgroup/sysctl', P.CgroupSysctl, A.CgroupSysctl, F.Attachable, 'kernel'),
	def('cgroup/getsockopt', P.CgroupSockopt, A.CgroupGetsockopt, F.Attachable, 'kernel'),
	def('cgroup/setsockopt', P.CgroupSockopt, A.CgroupSetsockopt, F.Attachable, 'kernel'),
	def('cgroup/dev', P.CgroupDevice, A.CgroupDevice, F.AttachableOpt, 'kernel'),
	def('struct_ops+', P.StructOps, 0, F.None, 'kernel'),
	def('sk_lookup', P.SkLookup, A.SkLookup, F.Attachable, 'kernel'),
];

/** libbpf sec_def_matches() */
export function secDefMatches(d: SecDef, secName: string): boolean {
	const pattern = d.sec;
	if (pattern.endsWith('/')) return secName.startsWith(pattern);
	if (pattern.endsWith('+')) {
		const prefix = pattern.slice(0, -1);
		if (!secName.startsWith(prefix)) return false;
		const next = secName[prefix.length];
		return next === undefined || next === '/';
	}
	return secName === pattern;
}

/** The first definition matching a SEC name (libbpf find_sec_def()), or undefined. */
export function findSecDef(secName: string): SecDef | undefined {
	return SEC_DEFS.find((d) => secDefMatches(d, secName));
}

/** Where a program attaches, as parsed from its SEC name. u64 offsets are bigint. */
export type AttachPoint =
	| {
			kind: 'uprobe';
			retprobe: boolean;
			/** Path as written in SEC, or undefined when the SEC gives only a function (`uprobe/func`). */
			binary: string | undefined;
			/** Symbol to resolve in the binary, or undefined for a raw offset. */
			func: string | undefined;
			/** Added to the symbol's file offset (or the file offset itself without a symbol). */
			offset: bigint;
	  }
	| { kind: 'usdt'; binary: string; provider: string; name: string }
	| { kind: 'tracepoint'; category: string; name: string }
	| { kind: 'raw_tracepoint'; name: string }
	| { kind: 'kprobe'; retprobe: boolean; func: string; offset: bigint };

/** What `parseAttachPoint` found: a point, none (`SEC("uprobe")`: valid, but no auto-attach), or why the name is malformed. */
export type AttachParse = { point: AttachPoint } | { point: undefined; error?: string };

// libbpf scans these with sscanf("%li"): decimal, 0x hex or 0 octal.
function parseCLong(s: string): bigint | undefined {
	if (/^[+-]?0[xX][0-9a-fA-F]+$/.test(s)) return BigInt(s.replace(/^\+/, '').replace(/^(-?)0[xX]/, '$10x'));
	if (/^[+-]?0[0-7]*$/.test(s)) return BigInt(`${s.startsWith('-') ? '-' : ''}0o${s.replace(/^[+-]?0/, '') || '0'}`);
	if (/^[+-]?[1-9][0-9]*$/.test(s)) return BigInt(s);
	return undefined;
}

/**
 * Parses the attach target of a SEC name the way libbpf's attach_uprobe(),
 * attach_usdt(), attach_tp(), attach_raw_tp() and attach_kprobe() do.
 */
export function parseAttachPoint(secName: string, d: SecDef): AttachParse {
	const base = d.sec.replace(/[+/]$/, '');
	const rest = secName.slice(base.length + 1); // after `type/`
	const bare = secName === base;
	switch (d.family) {
		case 'uprobe': {
			if (bare) return { point: undefined };
			const retprobe = base.startsWith('uretprobe');
			// `uprobe/<path>:<func>[+<offset>]`; the path may itself start with '/'.
			const colon = rest.indexOf(':');
			if (colon < 0) {
				// bpftime accepts `uprobe/<func>[+<offset>]` when attachAll() is given the binary.
				const m = /^([A-Za-z0-9_.@]+)(?:\+(.+))?$/.exec(rest);
				const off = m?.[2] === undefined ? 0n : parseCLong(m[2]);
				if (!m || off === undefined)
					return { point: undefined, error: `section '${secName}' missing ':function[+offset]' specification` };
				if (retprobe && off !== 0n)
					return { point: undefined, error: 'uretprobes do not support offset specification' };
				return { point: { kind: 'uprobe', retprobe, binary: undefined, func: m[1], offset: off } };
			}
			const binary = rest.slice(0, colon);
			const target = rest.slice(colon + 1);
			const m = /^([A-Za-z0-9_.@]*)(?:\+(.+))?$/.exec(target);
			const offset = m?.[2] === undefined ? 0n : parseCLong(m[2]);
			if (!m || binary === '' || offset === undefined || (m[1] === '' && m[2] === undefined)) {
				return { point: undefined, error: `invalid format of section definition '${secName}'` };
			}
			if (retprobe && offset !== 0n)
				return { point: undefined, error: 'uretprobes do not support offset specification' };
			const func = m[1] ?? '';
			// A target that is only a number is an offset in the file (a symbol cannot start with a digit).
			const asOffset = func !== '' && m[2] === undefined ? parseCLong(func) : undefined;
			if (asOffset !== undefined)
				return { point: { kind: 'uprobe', retprobe, binary, func: undefined, offset: asOffset } };
			return { point: { kind: 'uprobe', retprobe, binary, func: func === '' ? undefined : func, offset } };
		}
		case 'usdt': {
			if (bare) return { point: undefined };
			// `usdt/<path>:<provider>:<name>`
			const m = /^([^:]+):([^:]+):([^:]+)$/.exec(rest);
			if (!m)
				return { point: undefined, error: `invalid section '${secName}': expected usdt/<path>:<provider>:<name>` };
			return { point: { kind: 'usdt', binary: m[1] as string, provider: m[2] as string, name: m[3] as string } };
		}
		case 'tracepoint': {
			if (bare) return { point: undefined };
			const slash = rest.indexOf('/');
			if (slash <= 0 || slash === rest.length - 1) {
				return { point: undefined, error: `invalid section '${secName}': expected ${base}/<category>/<name>` };
			}
			return { point: { kind: 'tracepoint', category: rest.slice(0, slash), name: rest.slice(slash + 1) } };
		}
		case 'raw_tracepoint': {
			if (bare) return { point: undefined };
			if (rest === '') return { point: undefined, error: `invalid section '${secName}': expected ${base}/<name>` };
			return { point: { kind: 'raw_tracepoint', name: rest } };
		}
		case 'kprobe': {
			if (bare || base.includes('.multi') || base.includes('syscall')) {
				if (bare) return { point: undefined };
				return { point: { kind: 'kprobe', retprobe: base.startsWith('kret'), func: rest, offset: 0n } };
			}
			const retprobe = base === 'kretprobe';
			const m = /^([A-Za-z0-9_.]+)(?:\+(.+))?$/.exec(rest);
			const offset = m?.[2] === undefined ? 0n : parseCLong(m[2]);
			if (!m || offset === undefined) return { point: undefined, error: `kprobe name is invalid: ${rest}` };
			if (retprobe && offset !== 0n)
				return { point: undefined, error: 'kretprobes do not support offset specification' };
			return { point: { kind: 'kprobe', retprobe, func: m[1] as string, offset } };
		}
		default:
			return { point: undefined };
	}
}
