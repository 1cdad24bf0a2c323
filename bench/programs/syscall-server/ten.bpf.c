// Ten hash maps and ten uprobe programs, each program counting into its map:
// the object whose open + load + attach the syscall-server suite times.
#include <linux/bpf.h>
#include <asm/ptrace.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

#define MAP_AND_PROG(n)                                                        \
	struct {                                                               \
		__uint(type, BPF_MAP_TYPE_HASH);                               \
		__uint(max_entries, 1024);                                     \
		__type(key, __u32);                                            \
		__type(value, __u64);                                          \
	} counts##n SEC(".maps");                                              \
	SEC("uprobe")                                                          \
	int BPF_KPROBE(count##n, int x)                                        \
	{                                                                      \
		__u32 k = (__u32)x;                                            \
		__u64 one = 1, *v = bpf_map_lookup_elem(&counts##n, &k);       \
		if (v)                                                         \
			__sync_fetch_and_add(v, 1);                            \
		else                                                           \
			bpf_map_update_elem(&counts##n, &k, &one, BPF_NOEXIST); \
		return 0;                                                      \
	}

MAP_AND_PROG(0)
MAP_AND_PROG(1)
MAP_AND_PROG(2)
MAP_AND_PROG(3)
MAP_AND_PROG(4)
MAP_AND_PROG(5)
MAP_AND_PROG(6)
MAP_AND_PROG(7)
MAP_AND_PROG(8)
MAP_AND_PROG(9)

char LICENSE[] SEC("license") = "GPL";
