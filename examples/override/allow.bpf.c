// The override example (a "ufilter"): replaces the answer of a function
// without touching its code. check_access(uid) of the victim says whether a
// user may go on; for uid 1000 this program skips the function and makes it
// return 1, for every other uid the function runs as usual. bpftime attaches
// a uprobe program that calls bpf_override_return() as an override probe.
#include <linux/bpf.h>
#include <asm/ptrace.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

// [0]: calls overridden.
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} overridden SEC(".maps");

SEC("uprobe/check_access")
int BPF_KPROBE(allow_uid_1000, int uid)
{
	if (uid != 1000)
		return 0;
	bpf_override_return(ctx, 1);
	__u32 k = 0;
	__u64 *n = bpf_map_lookup_elem(&overridden, &k);
	if (n)
		__sync_fetch_and_add(n, 1);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
