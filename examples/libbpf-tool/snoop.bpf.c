// One ring buffer record per call of a function: its first argument and the
// caller's pid, as event-printing libbpf tools (execsnoop, opensnoop) send
// theirs.
#include <linux/bpf.h>
#include <asm/ptrace.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

struct call {
	__u32 pid;
	__s32 x;
};

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 256 * 1024);
} calls SEC(".maps");

SEC("uprobe")
int BPF_KPROBE(snoop, int x)
{
	struct call *c = bpf_ringbuf_reserve(&calls, sizeof(*c), 0);
	if (!c)
		return 0;
	c->pid = bpf_get_current_pid_tgid() >> 32;
	c->x = x;
	bpf_ringbuf_submit(c, 0);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
