// Counts the malloc calls of every process it is attached to, per process,
// in a hash map keyed by pid. The uprobe SEC name gives the library and the
// function, as libbpf's auto-attach does. (BPF_KPROBE serves uprobes too:
// both receive pt_regs.)
#include <linux/bpf.h>
#include <asm/ptrace.h> /* struct pt_regs: bpftime hands uprobes the same layout */
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, __u32);
	__type(value, __u64);
} malloc_calls SEC(".maps");

SEC("uprobe/libc.so.6:malloc")
int BPF_KPROBE(count_malloc, unsigned long size)
{
	__u32 pid = bpf_get_current_pid_tgid() >> 32;
	__u64 *count = bpf_map_lookup_elem(&malloc_calls, &pid);
	if (count) {
		__sync_fetch_and_add(count, 1);
	} else {
		__u64 one = 1;
		/* Another thread may have inserted it meanwhile: then add to
		 * its entry instead. */
		if (bpf_map_update_elem(&malloc_calls, &pid, &one, BPF_NOEXIST)) {
			count = bpf_map_lookup_elem(&malloc_calls, &pid);
			if (count)
				__sync_fetch_and_add(count, 1);
		}
	}
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
