// A latency histogram of one function, as bcc's funclatency draws it: the
// uprobe stores the entry time per thread, the uretprobe adds the elapsed
// time to a log2 histogram of microseconds. The SEC names give only the
// function: `bpftime load --binary <program>` names the binary.
#include <linux/bpf.h>
#include <asm/ptrace.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

#define SLOTS 32

// Entry time (ns) by thread id: a thread is in at most one call at a time
// (work() does not recurse).
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, __u32);
	__type(value, __u64);
} starts SEC(".maps");

// hist[i]: calls that took [2^i, 2^(i+1)) microseconds (slot 0 also holds
// those under 1 us).
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, SLOTS);
	__type(key, __u32);
	__type(value, __u64);
} hist SEC(".maps");

static __always_inline __u32 log2_u64(__u64 v)
{
	__u32 r = 0;
	if (v >> 32) { v >>= 32; r += 32; }
	if (v >> 16) { v >>= 16; r += 16; }
	if (v >> 8) { v >>= 8; r += 8; }
	if (v >> 4) { v >>= 4; r += 4; }
	if (v >> 2) { v >>= 2; r += 2; }
	if (v >> 1) { r += 1; }
	return r;
}

SEC("uprobe/work")
int BPF_KPROBE(work_entry)
{
	__u32 tid = (__u32)bpf_get_current_pid_tgid();
	__u64 now = bpf_ktime_get_ns();
	bpf_map_update_elem(&starts, &tid, &now, BPF_ANY);
	return 0;
}

SEC("uretprobe/work")
int BPF_KRETPROBE(work_return)
{
	__u32 tid = (__u32)bpf_get_current_pid_tgid();
	__u64 *start = bpf_map_lookup_elem(&starts, &tid);
	if (!start)
		return 0;
	__u64 us = (bpf_ktime_get_ns() - *start) / 1000;
	bpf_map_delete_elem(&starts, &tid);
	__u32 slot = us ? log2_u64(us) : 0;
	if (slot >= SLOTS)
		slot = SLOTS - 1;
	__u64 *count = bpf_map_lookup_elem(&hist, &slot);
	if (count)
		__sync_fetch_and_add(count, 1);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
