// constants.ts: the kernel's eBPF numbers (include/uapi/linux/bpf.h) with
// TypeScript names: MapType.Hash is BPF_MAP_TYPE_HASH, ProgType.Kprobe is
// BPF_PROG_TYPE_KPROBE, AttachType.TraceFentry is BPF_TRACE_FENTRY. They are
// generated once, in @bpftime/common (scripts/gen-uapi.mjs), and re-exported
// here so that a registry user needs only this package.
//
// MapFlags: BPF_F_RDONLY / BPF_F_WRONLY make updates / lookups from the
// control plane EPERM, BPF_F_RDONLY_PROG makes program updates EPERM,
// BPF_F_MMAPABLE lets `BpfMap.mmap()` view an array's values, BPF_F_ZERO_SEED
// hashes with seed 0. UpdateFlags: BPF_NOEXIST is EEXIST on an existing key,
// BPF_EXIST ENOENT on an absent one; BPF_F_LOCK is EINVAL (no bpf_spin_lock).
export { AttachType, MapFlags, MapType, ProgType, UpdateFlags } from '@bpftime/common';

/** VM backends, as BPFTIME_VM_NAME names them. */
export type Backend = 'interpreter' | 'jit' | 'llvm';
