// Counts the calls of a function by the residue of its first argument: a
// uprobe program as libbpf tools write them (CO-RE-free, BTF-described maps).
#include <linux/bpf.h>
#include <asm/ptrace.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16);
	__type(key, __u32);
	__type(value, __u64);
} calls SEC(".maps");

SEC("uprobe")
int BPF_KPROBE(count, int x)
{
	__u32 k = (__u32)x % 4;
	__u64 one = 1, *n = bpf_map_lookup_elem(&calls, &k);
	if (n)
		__sync_fetch_and_add(n, 1);
	else
		bpf_map_update_elem(&calls, &k, &one, BPF_NOEXIST);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
