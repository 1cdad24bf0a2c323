// opensnoop: the files a program opens, with the result, as libbpf-tools'
// opensnoop traces them, written for the kernel: sys_enter_openat keeps the
// path per thread, sys_exit_openat records it with the returned fd (or
// -errno). bpftime has no ring buffer on this branch yet, so the records go
// into an array used as a ring (`events`, slot = seq % 1024) and the reader
// polls it with `bpftime map dump`.
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#define NAME_LEN 64
#define SLOTS 1024

struct args_t {
	char fname[NAME_LEN];
};

struct event {
	__u64 seq; // 1, 2, ...: 0 marks an empty slot
	__u32 pid;
	__u32 tid;
	__s64 ret;
	char fname[NAME_LEN];
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, __u32);
	__type(value, struct args_t);
} start SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} seq SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, SLOTS);
	__type(key, __u32);
	__type(value, struct event);
} events SEC(".maps");

struct trace_event_raw_sys_enter {
	unsigned short common_type;
	unsigned char common_flags;
	unsigned char common_preempt_count;
	int common_pid;
	long id;
	unsigned long args[6];
};

struct trace_event_raw_sys_exit {
	unsigned short common_type;
	unsigned char common_flags;
	unsigned char common_preempt_count;
	int common_pid;
	long id;
	long ret;
};

SEC("tracepoint/syscalls/sys_enter_openat")
int trace_openat_enter(struct trace_event_raw_sys_enter *ctx)
{
	__u32 tid = (__u32)bpf_get_current_pid_tgid();
	struct args_t a = {};
	bpf_probe_read_user_str(a.fname, sizeof(a.fname), (const void *)ctx->args[1]);
	bpf_map_update_elem(&start, &tid, &a, BPF_ANY);
	return 0;
}

SEC("tracepoint/syscalls/sys_exit_openat")
int trace_openat_exit(struct trace_event_raw_sys_exit *ctx)
{
	__u64 id = bpf_get_current_pid_tgid();
	__u32 tid = (__u32)id, zero = 0;
	struct args_t *a = bpf_map_lookup_elem(&start, &tid);
	if (!a)
		return 0;
	__u64 *s = bpf_map_lookup_elem(&seq, &zero);
	if (s) {
		__u64 n = __sync_fetch_and_add(s, 1) + 1;
		__u32 slot = (__u32)(n % SLOTS);
		struct event *e = bpf_map_lookup_elem(&events, &slot);
		if (e) {
			e->pid = id >> 32;
			e->tid = tid;
			e->ret = ctx->ret;
			__builtin_memcpy(e->fname, a->fname, NAME_LEN);
			e->seq = n;
		}
	}
	bpf_map_delete_elem(&start, &tid);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
