// snoop: an ordinary libbpf event printer. Attaches snoop.bpf.c to
// <function> of <binary>, prints "attached", then prints one line per call
// as ring_buffer__poll() hands it over, until SIGINT or SIGTERM. Under
// `bpftime load` the ring buffer lives in bpftime's shared memory: the
// victim's agent writes the records, the tool's epoll and mmap read them.
//
//   snoop <binary> <function>
#include <bpf/libbpf.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "snoop.skel.h"

struct call {
	__u32 pid;
	__s32 x;
};

static volatile sig_atomic_t stop;
static unsigned long seen;

static void on_signal(int sig)
{
	(void)sig;
	stop = 1;
}

static int on_call(void *ctx, void *data, size_t size)
{
	const struct call *c = data;
	(void)ctx;
	(void)size;
	printf("pid %u: x=%d\n", c->pid, c->x);
	seen++;
	return 0;
}

int main(int argc, char **argv)
{
	if (argc != 3) {
		fprintf(stderr, "usage: %s <binary> <function>\n", argv[0]);
		return 2;
	}
	struct snoop_bpf *skel = snoop_bpf__open_and_load();
	if (!skel) {
		fprintf(stderr, "open and load: %s\n", strerror(errno));
		return 1;
	}
	struct ring_buffer *rb = ring_buffer__new(bpf_map__fd(skel->maps.calls), on_call, NULL, NULL);
	LIBBPF_OPTS(bpf_uprobe_opts, opts, .func_name = argv[2]);
	skel->links.snoop = bpf_program__attach_uprobe_opts(skel->progs.snoop, -1, argv[1], 0, &opts);
	if (!rb || !skel->links.snoop) {
		fprintf(stderr, "ring buffer or attach to %s:%s: %s\n", argv[1], argv[2], strerror(errno));
		ring_buffer__free(rb);
		snoop_bpf__destroy(skel);
		return 1;
	}
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	printf("attached to %s:%s\n", argv[1], argv[2]);
	fflush(stdout);
	while (!stop) {
		int err = ring_buffer__poll(rb, 100);
		if (err < 0 && err != -EINTR) {
			fprintf(stderr, "poll: %s\n", strerror(-err));
			break;
		}
		fflush(stdout);
	}
	ring_buffer__consume(rb);
	printf("%lu calls seen\n", seen);
	ring_buffer__free(rb);
	snoop_bpf__destroy(skel);
	return 0;
}
