// calls: an ordinary libbpf skeleton tool. Attaches calls.bpf.c to
// <function> of <binary>, prints "attached", and on SIGINT or SIGTERM prints
// the counts and exits. It knows nothing of bpftime: the same binary runs
// against the kernel (as root) or under `bpftime load`.
//
//   calls <binary> <function>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "calls.skel.h"

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
	(void)sig;
	stop = 1;
}

int main(int argc, char **argv)
{
	if (argc != 3) {
		fprintf(stderr, "usage: %s <binary> <function>\n", argv[0]);
		return 2;
	}
	struct calls_bpf *skel = calls_bpf__open_and_load();
	if (!skel) {
		fprintf(stderr, "open and load: %s\n", strerror(errno));
		return 1;
	}
	LIBBPF_OPTS(bpf_uprobe_opts, opts, .func_name = argv[2]);
	skel->links.count = bpf_program__attach_uprobe_opts(skel->progs.count, -1, argv[1], 0, &opts);
	if (!skel->links.count) {
		fprintf(stderr, "attach to %s:%s: %s\n", argv[1], argv[2], strerror(errno));
		calls_bpf__destroy(skel);
		return 1;
	}
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	printf("attached to %s:%s\n", argv[1], argv[2]);
	fflush(stdout);
	while (!stop)
		pause();
	int fd = bpf_map__fd(skel->maps.calls);
	for (__u32 k = 0; k < 4; k++) {
		__u64 v = 0;
		bpf_map_lookup_elem(fd, &k, &v);
		printf("x %% 4 == %u: %llu calls\n", k, (unsigned long long)v);
	}
	calls_bpf__destroy(skel);
	return 0;
}
