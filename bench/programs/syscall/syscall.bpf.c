// The programs of the syscall benchmark, written for the kernel: a raw
// sys_enter program and a syscalls/sys_enter_getpid tracepoint program,
// each incrementing an array counter (per system call number for the raw
// one), as syscount does.
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 512);
	__type(key, __u32);
	__type(value, __u64);
} counts SEC(".maps");

SEC("raw_tracepoint/sys_enter")
int raw_count(struct bpf_raw_tracepoint_args *ctx)
{
	__u32 k = (__u32)ctx->args[1];
	__u64 *v = bpf_map_lookup_elem(&counts, &k);
	if (v)
		__sync_fetch_and_add(v, 1);
	return 0;
}

// The hook's own cost: the same event, a program that does nothing.
SEC("raw_tracepoint/sys_enter")
int raw_empty(struct bpf_raw_tracepoint_args *ctx)
{
	return 0;
}

SEC("tracepoint/syscalls/sys_enter_getpid")
int tp_count(void *ctx)
{
	__u32 k = 39;
	__u64 *v = bpf_map_lookup_elem(&counts, &k);
	if (v)
		__sync_fetch_and_add(v, 1);
	return 0;
}

// A program on another system call: getpid's cost where the process has
// syscall hooks, none of them on getpid.
SEC("tracepoint/syscalls/sys_enter_openat")
int tp_openat(void *ctx)
{
	__u32 k = 257;
	__u64 *v = bpf_map_lookup_elem(&counts, &k);
	if (v)
		__sync_fetch_and_add(v, 1);
	return 0;
}

SEC("raw_tracepoint/sys_exit")
int raw_exit_count(struct bpf_raw_tracepoint_args *ctx)
{
	__u32 k = 0;
	__u64 *v = bpf_map_lookup_elem(&counts, &k);
	if (v)
		__sync_fetch_and_add(v, 1);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
