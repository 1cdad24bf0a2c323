// syscount: system calls per number, as libbpf-tools' syscount counts
// them, written for the kernel. Under bpftime the raw sys_enter tracepoint
// runs inside the traced process, on every system call it makes.
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, __u32);   // system call number
	__type(value, __u64); // calls
} syscall_counts SEC(".maps");

SEC("raw_tracepoint/sys_enter")
int count_syscall(struct bpf_raw_tracepoint_args *ctx)
{
	__u32 nr = (__u32)ctx->args[1];
	__u64 one = 1;
	__u64 *n = bpf_map_lookup_elem(&syscall_counts, &nr);
	if (n)
		__sync_fetch_and_add(n, 1);
	else
		bpf_map_update_elem(&syscall_counts, &nr, &one, BPF_NOEXIST);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
