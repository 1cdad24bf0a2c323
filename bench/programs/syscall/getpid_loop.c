// The target of the syscall benchmark: getpid() through libc (glibc's
// wrapper: mov eax, 39; syscall) in a loop, `rounds` rounds of `calls`
// calls, pinned to one CPU; prints one JSON line with the median and
// quartiles of the time per call.
//
//   getpid_loop <cpu> <rounds> <calls>
#define _GNU_SOURCE
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

static int cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
	if (argc < 4)
		return 2;
	int cpu = atoi(argv[1]), rounds = atoi(argv[2]);
	long calls = atol(argv[3]);
	if (rounds < 1 || rounds > 1000 || calls < 1)
		return 2;
	cpu_set_t set;
	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	sched_setaffinity(0, sizeof set, &set);
	double ns[1000];
	for (long i = 0; i < calls / 10; i++) /* warm up */
		getpid();
	for (int r = 0; r < rounds; r++) {
		struct timespec a, b;
		clock_gettime(CLOCK_MONOTONIC, &a);
		for (long i = 0; i < calls; i++)
			getpid();
		clock_gettime(CLOCK_MONOTONIC, &b);
		ns[r] = ((b.tv_sec - a.tv_sec) * 1e9 + (b.tv_nsec - a.tv_nsec)) / calls;
	}
	qsort(ns, rounds, sizeof ns[0], cmp);
	printf("{\"ns\":%.3f,\"p25\":%.3f,\"p75\":%.3f}\n", ns[rounds / 2], ns[rounds / 4], ns[(3 * rounds) / 4]);
	return 0;
}
