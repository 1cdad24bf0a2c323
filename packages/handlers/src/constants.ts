// constants.ts: the kernel's eBPF numbers (include/uapi/linux/bpf.h) with
// TypeScript names: MapType.Hash is BPF_MAP_TYPE_HASH, ProgType.Kprobe is
// BPF_PROG_TYPE_KPROBE, AttachType.TraceFentry is BPF_TRACE_FENTRY.

/** The kernel's enum bpf_map_type. */
export enum MapType {
	/** BPF_MAP_TYPE_UNSPEC */
	Unspec = 0,
	/** BPF_MAP_TYPE_HASH */
	Hash = 1,
	/** BPF_MAP_TYPE_ARRAY */
	Array = 2,
	/** BPF_MAP_TYPE_PROG_ARRAY */
	ProgArray = 3,
	/** BPF_MAP_TYPE_PERF_EVENT_ARRAY */
	PerfEventArray = 4,
	/** BPF_MAP_TYPE_PERCPU_HASH */
	PercpuHash = 5,
	/** BPF_MAP_TYPE_PERCPU_ARRAY */
	PercpuArray = 6,
	/** BPF_MAP_TYPE_STACK_TRACE */
	StackTrace = 7,
	/** BPF_MAP_TYPE_CGROUP_ARRAY */
	CgroupArray = 8,
	/** BPF_MAP_TYPE_LRU_HASH */
	LruHash = 9,
	/** BPF_MAP_TYPE_LRU_PERCPU_HASH */
	LruPercpuHash = 10,
	/** BPF_MAP_TYPE_LPM_TRIE */
	LpmTrie = 11,
	/** BPF_MAP_TYPE_ARRAY_OF_MAPS */
	ArrayOfMaps = 12,
	/** BPF_MAP_TYPE_HASH_OF_MAPS */
	HashOfMaps = 13,
	/** BPF_MAP_TYPE_DEVMAP */
	Devmap = 14,
	/** BPF_MAP_TYPE_SOCKMAP */
	Sockmap = 15,
	/** BPF_MAP_TYPE_CPUMAP */
	Cpumap = 16,
	/** BPF_MAP_TYPE_XSKMAP */
	Xskmap = 17,
	/** BPF_MAP_TYPE_SOCKHASH */
	Sockhash = 18,
	/** BPF_MAP_TYPE_CGROUP_STORAGE */
	CgroupStorage = 19,
	/** BPF_MAP_TYPE_REUSEPORT_SOCKARRAY */
	ReuseportSockarray = 20,
	/** BPF_MAP_TYPE_PERCPU_CGROUP_STORAGE */
	PercpuCgroupStorage = 21,
	/** BPF_MAP_TYPE_QUEUE */
	Queue = 22,
	/** BPF_MAP_TYPE_STACK */
	Stack = 23,
	/** BPF_MAP_TYPE_SK_STORAGE */
	SkStorage = 24,
	/** BPF_MAP_TYPE_DEVMAP_HASH */
	DevmapHash = 25,
	/** BPF_MAP_TYPE_STRUCT_OPS */
	StructOps = 26,
	/** BPF_MAP_TYPE_RINGBUF */
	Ringbuf = 27,
	/** BPF_MAP_TYPE_INODE_STORAGE */
	InodeStorage = 28,
	/** BPF_MAP_TYPE_TASK_STORAGE */
	TaskStorage = 29,
	/** BPF_MAP_TYPE_BLOOM_FILTER */
	BloomFilter = 30,
	/** BPF_MAP_TYPE_USER_RINGBUF */
	UserRingbuf = 31,
	/** BPF_MAP_TYPE_CGRP_STORAGE */
	CgrpStorage = 32,
	/** BPF_MAP_TYPE_ARENA */
	Arena = 33,
}

/** The kernel's enum bpf_prog_type. */
export enum ProgType {
	/** BPF_PROG_TYPE_UNSPEC */
	Unspec = 0,
	/** BPF_PROG_TYPE_SOCKET_FILTER */
	SocketFilter = 1,
	/** BPF_PROG_TYPE_KPROBE */
	Kprobe = 2,
	/** BPF_PROG_TYPE_SCHED_CLS */
	SchedCls = 3,
	/** BPF_PROG_TYPE_SCHED_ACT */
	SchedAct = 4,
	/** BPF_PROG_TYPE_TRACEPOINT */
	Tracepoint = 5,
	/** BPF_PROG_TYPE_XDP */
	Xdp = 6,
	/** BPF_PROG_TYPE_PERF_EVENT */
	PerfEvent = 7,
	/** BPF_PROG_TYPE_CGROUP_SKB */
	CgroupSkb = 8,
	/** BPF_PROG_TYPE_CGROUP_SOCK */
	CgroupSock = 9,
	/** BPF_PROG_TYPE_LWT_IN */
	LwtIn = 10,
	/** BPF_PROG_TYPE_LWT_OUT */
	LwtOut = 11,
	/** BPF_PROG_TYPE_LWT_XMIT */
	LwtXmit = 12,
	/** BPF_PROG_TYPE_SOCK_OPS */
	SockOps = 13,
	/** BPF_PROG_TYPE_SK_SKB */
	SkSkb = 14,
	/** BPF_PROG_TYPE_CGROUP_DEVICE */
	CgroupDevice = 15,
	/** BPF_PROG_TYPE_SK_MSG */
	SkMsg = 16,
	/** BPF_PROG_TYPE_RAW_TRACEPOINT */
	RawTracepoint = 17,
	/** BPF_PROG_TYPE_CGROUP_SOCK_ADDR */
	CgroupSockAddr = 18,
	/** BPF_PROG_TYPE_LWT_SEG6LOCAL */
	LwtSeg6local = 19,
	/** BPF_PROG_TYPE_LIRC_MODE2 */
	LircMode2 = 20,
	/** BPF_PROG_TYPE_SK_REUSEPORT */
	SkReuseport = 21,
	/** BPF_PROG_TYPE_FLOW_DISSECTOR */
	FlowDissector = 22,
	/** BPF_PROG_TYPE_CGROUP_SYSCTL */
	CgroupSysctl = 23,
	/** BPF_PROG_TYPE_RAW_TRACEPOINT_WRITABLE */
	RawTracepointWritable = 24,
	/** BPF_PROG_TYPE_CGROUP_SOCKOPT */
	CgroupSockopt = 25,
	/** BPF_PROG_TYPE_TRACING */
	Tracing = 26,
	/** BPF_PROG_TYPE_STRUCT_OPS */
	StructOps = 27,
	/** BPF_PROG_TYPE_EXT */
	Ext = 28,
	/** BPF_PROG_TYPE_LSM */
	Lsm = 29,
	/** BPF_PROG_TYPE_SK_LOOKUP */
	SkLookup = 30,
	/** BPF_PROG_TYPE_SYSCALL */
	Syscall = 31,
	/** BPF_PROG_TYPE_NETFILTER */
	Netfilter = 32,
}

/** The kernel's enum bpf_attach_type. */
export enum AttachType {
	/** BPF_CGROUP_INET_INGRESS */
	CgroupInetIngress = 0,
	/** BPF_CGROUP_INET_EGRESS */
	CgroupInetEgress = 1,
	/** BPF_CGROUP_INET_SOCK_CREATE */
	CgroupInetSockCreate = 2,
	/** BPF_CGROUP_SOCK_OPS */
	CgroupSockOps = 3,
	/** BPF_SK_SKB_STREAM_PARSER */
	SkSkbStreamParser = 4,
	/** BPF_SK_SKB_STREAM_VERDICT */
	SkSkbStreamVerdict = 5,
	/** BPF_CGROUP_DEVICE */
	CgroupDevice = 6,
	/** BPF_SK_MSG_VERDICT */
	SkMsgVerdict = 7,
	/** BPF_CGROUP_INET4_BIND */
	CgroupInet4Bind = 8,
	/** BPF_CGROUP_INET6_BIND */
	CgroupInet6Bind = 9,
	/** BPF_CGROUP_INET4_CONNECT */
	CgroupInet4Connect = 10,
	/** BPF_CGROUP_INET6_CONNECT */
	CgroupInet6Connect = 11,
	/** BPF_CGROUP_INET4_POST_BIND */
	CgroupInet4PostBind = 12,
	/** BPF_CGROUP_INET6_POST_BIND */
	CgroupInet6PostBind = 13,
	/** BPF_CGROUP_UDP4_SENDMSG */
	CgroupUdp4Sendmsg = 14,
	/** BPF_CGROUP_UDP6_SENDMSG */
	CgroupUdp6Sendmsg = 15,
	/** BPF_LIRC_MODE2 */
	LircMode2 = 16,
	/** BPF_FLOW_DISSECTOR */
	FlowDissector = 17,
	/** BPF_CGROUP_SYSCTL */
	CgroupSysctl = 18,
	/** BPF_CGROUP_UDP4_RECVMSG */
	CgroupUdp4Recvmsg = 19,
	/** BPF_CGROUP_UDP6_RECVMSG */
	CgroupUdp6Recvmsg = 20,
	/** BPF_CGROUP_GETSOCKOPT */
	CgroupGetsockopt = 21,
	/** BPF_CGROUP_SETSOCKOPT */
	CgroupSetsockopt = 22,
	/** BPF_TRACE_RAW_TP */
	TraceRawTp = 23,
	/** BPF_TRACE_FENTRY */
	TraceFentry = 24,
	/** BPF_TRACE_FEXIT */
	TraceFexit = 25,
	/** BPF_MODIFY_RETURN */
	ModifyReturn = 26,
	/** BPF_LSM_MAC */
	LsmMac = 27,
	/** BPF_TRACE_ITER */
	TraceIter = 28,
	/** BPF_CGROUP_INET4_GETPEERNAME */
	CgroupInet4Getpeername = 29,
	/** BPF_CGROUP_INET6_GETPEERNAME */
	CgroupInet6Getpeername = 30,
	/** BPF_CGROUP_INET4_GETSOCKNAME */
	CgroupInet4Getsockname = 31,
	/** BPF_CGROUP_INET6_GETSOCKNAME */
	CgroupInet6Getsockname = 32,
	/** BPF_XDP_DEVMAP */
	XdpDevmap = 33,
	/** BPF_CGROUP_INET_SOCK_RELEASE */
	CgroupInetSockRelease = 34,
	/** BPF_XDP_CPUMAP */
	XdpCpumap = 35,
	/** BPF_SK_LOOKUP */
	SkLookup = 36,
	/** BPF_XDP */
	Xdp = 37,
	/** BPF_SK_SKB_VERDICT */
	SkSkbVerdict = 38,
	/** BPF_SK_REUSEPORT_SELECT */
	SkReuseportSelect = 39,
	/** BPF_SK_REUSEPORT_SELECT_OR_MIGRATE */
	SkReuseportSelectOrMigrate = 40,
	/** BPF_PERF_EVENT */
	PerfEvent = 41,
	/** BPF_TRACE_KPROBE_MULTI */
	TraceKprobeMulti = 42,
	/** BPF_LSM_CGROUP */
	LsmCgroup = 43,
	/** BPF_STRUCT_OPS */
	StructOps = 44,
	/** BPF_NETFILTER */
	Netfilter = 45,
	/** BPF_TCX_INGRESS */
	TcxIngress = 46,
	/** BPF_TCX_EGRESS */
	TcxEgress = 47,
	/** BPF_TRACE_UPROBE_MULTI */
	TraceUprobeMulti = 48,
	/** BPF_CGROUP_UNIX_CONNECT */
	CgroupUnixConnect = 49,
	/** BPF_CGROUP_UNIX_SENDMSG */
	CgroupUnixSendmsg = 50,
	/** BPF_CGROUP_UNIX_RECVMSG */
	CgroupUnixRecvmsg = 51,
	/** BPF_CGROUP_UNIX_GETPEERNAME */
	CgroupUnixGetpeername = 52,
	/** BPF_CGROUP_UNIX_GETSOCKNAME */
	CgroupUnixGetsockname = 53,
	/** BPF_NETKIT_PRIMARY */
	NetkitPrimary = 54,
	/** BPF_NETKIT_PEER */
	NetkitPeer = 55,
	/** BPF_TRACE_KPROBE_SESSION */
	TraceKprobeSession = 56,
}
/** map_flags of BPF_MAP_CREATE. */
export const MapFlags = {
	/** BPF_F_NO_PREALLOC: hash maps take memory as they fill instead of at creation. */
	NoPrealloc: 1 << 0,
	/** BPF_F_NO_COMMON_LRU */
	NoCommonLru: 1 << 1,
	/** BPF_F_NUMA_NODE */
	NumaNode: 1 << 2,
	/** BPF_F_RDONLY: read-only for the control plane (updates are EPERM). */
	Rdonly: 1 << 3,
	/** BPF_F_WRONLY: write-only for the control plane (lookups are EPERM). */
	Wronly: 1 << 4,
	/** BPF_F_STACK_BUILD_ID */
	StackBuildId: 1 << 5,
	/** BPF_F_ZERO_SEED: hash with seed 0 (reproducible order). */
	ZeroSeed: 1 << 6,
	/** BPF_F_RDONLY_PROG: programs may not write (their updates are EPERM). */
	RdonlyProg: 1 << 7,
	/** BPF_F_WRONLY_PROG */
	WronlyProg: 1 << 8,
	/** BPF_F_CLONE */
	Clone: 1 << 9,
	/** BPF_F_MMAPABLE: the values of an array map can be viewed directly (`BpfMap.mmap()`). */
	Mmapable: 1 << 10,
	/** BPF_F_PRESERVE_ELEMS */
	PreserveElems: 1 << 11,
	/** BPF_F_INNER_MAP */
	InnerMap: 1 << 12,
} as const;

/** Flags of BPF_MAP_UPDATE_ELEM. */
export const UpdateFlags = {
	/** BPF_ANY: create or replace. */
	Any: 0,
	/** BPF_NOEXIST: create only; EEXIST when the key exists. */
	NoExist: 1,
	/** BPF_EXIST: replace only; ENOENT when the key is absent. */
	Exist: 2,
	/** BPF_F_LOCK: needs a bpf_spin_lock in the value (EINVAL here: none is supported). */
	Lock: 4,
} as const;

/** VM backends, as BPFTIME_VM_NAME names them. */
export type Backend = 'interpreter' | 'jit' | 'llvm';
