// ten_loader: times what a libbpf skeleton tool does at start and exit,
// `rounds` times: open + load of ten.bpf.o (10 maps, 10 programs), attach of
// its 10 programs as uprobes on probed() of this executable, and destroy.
// Prints one JSON line: {"load_ns", "attach_ns", "destroy_ns"}, medians.
//
//   ten_loader <rounds>
#include <bpf/libbpf.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ten.skel.h"

__attribute__((noinline)) int probed(int x)
{
	__asm__ volatile("" ::: "memory");
	return x + 1;
}

static double now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e9 + ts.tv_nsec;
}

static int cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static int quiet(enum libbpf_print_level level, const char *fmt, va_list ap)
{
	return level == LIBBPF_WARN ? vfprintf(stderr, fmt, ap) : 0;
}

int main(int argc, char **argv)
{
	int rounds = argc > 1 ? atoi(argv[1]) : 9;
	if (rounds < 1 || rounds > 1000)
		return 2;
	libbpf_set_print(quiet);
	double load[1000], attach[1000], destroy[1000];
	for (int r = 0; r < rounds; r++) {
		double t0 = now_ns();
		struct ten_bpf *skel = ten_bpf__open_and_load();
		if (!skel) {
			fprintf(stderr, "open and load: %s\n", strerror(errno));
			return 1;
		}
		double t1 = now_ns();
		struct bpf_program *progs[10] = {
			skel->progs.count0, skel->progs.count1, skel->progs.count2, skel->progs.count3,
			skel->progs.count4, skel->progs.count5, skel->progs.count6, skel->progs.count7,
			skel->progs.count8, skel->progs.count9,
		};
		struct bpf_link **links[10] = {
			&skel->links.count0, &skel->links.count1, &skel->links.count2, &skel->links.count3,
			&skel->links.count4, &skel->links.count5, &skel->links.count6, &skel->links.count7,
			&skel->links.count8, &skel->links.count9,
		};
		LIBBPF_OPTS(bpf_uprobe_opts, opts, .func_name = "probed");
		for (int i = 0; i < 10; i++) {
			*links[i] = bpf_program__attach_uprobe_opts(progs[i], -1, "/proc/self/exe", 0, &opts);
			if (!*links[i]) {
				fprintf(stderr, "attach: %s\n", strerror(errno));
				return 1;
			}
		}
		double t2 = now_ns();
		ten_bpf__destroy(skel);
		double t3 = now_ns();
		load[r] = t1 - t0;
		attach[r] = t2 - t1;
		destroy[r] = t3 - t2;
	}
	qsort(load, (size_t)rounds, sizeof(double), cmp);
	qsort(attach, (size_t)rounds, sizeof(double), cmp);
	qsort(destroy, (size_t)rounds, sizeof(double), cmp);
	printf("{\"load_ns\":%.0f,\"attach_ns\":%.0f,\"destroy_ns\":%.0f,\"probed\":%d}\n", load[rounds / 2],
	       attach[rounds / 2], destroy[rounds / 2], probed(rounds));
	return 0;
}
