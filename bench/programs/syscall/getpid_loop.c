// The target of the syscall benchmark: getpid() through libc (glibc's
// wrapper: mov eax, 39; syscall) in a loop, pinned to one CPU, paired in
// the same process with the same call made from an anonymous executable
// page, which no hook rewrites (only file-backed code is): each round
// times `calls` calls of the copy, then `calls` calls of libc's, so a slow
// spell of the machine hits both halves of a pair alike. Prints one JSON
// line: the medians per call of libc's getpid (ns) and of the copy (base),
// the median and quartiles over rounds of their difference (added, p25,
// p75), and the cost of one atomic add (lock_add).
//
//   getpid_loop <cpu> <rounds> <calls>
//
// Built with -DLEFT, the calls timed are those of left_getpid(): getpid
// through a `syscall` no jump can be placed over, which the agent can only
// report through syscall user dispatch (SIGSYS). Once that fallback is on,
// the copy traps too (it is outside the allowed range): its time is then
// no baseline, and the suite compares with the no-agent process instead.
#define _GNU_SOURCE
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

static int cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

typedef long (*getpid_fn)(void);

#ifdef LEFT
// A branch targets the syscall and a ret and another function follow it.
long left_getpid(void);
__asm__(".text\n.globl left_getpid\n.type left_getpid,@function\nleft_getpid:\n"
	"mov $39, %eax\n jmp 1f\n1: syscall\n ret\n.size left_getpid, .-left_getpid\n"
	".globl left_after\n.type left_after,@function\nleft_after:\n ret\n"
	".size left_after, .-left_after\n");
#define TIMED left_getpid
#else
#define TIMED getpid
#endif

// mov eax, 39; syscall; ret: glibc's getpid() without its name.
static getpid_fn unhooked_getpid(void)
{
	static const unsigned char code[] = { 0xb8, 39, 0, 0, 0, 0x0f, 0x05, 0xc3 };
	void *p = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		return NULL;
	memcpy(p, code, sizeof code);
	if (mprotect(p, 4096, PROT_READ | PROT_EXEC) != 0)
		return NULL;
	return (getpid_fn)p;
}

static double now_ns(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec * 1e9 + t.tv_nsec;
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
	getpid_fn copy = unhooked_getpid();
	if (!copy)
		return 3;
	// The function pointer through a volatile: the compiler calls libc's
	// getpid the same way, indirectly through its PLT, as the copy.
	getpid_fn volatile hooked = (getpid_fn)TIMED;
	static double ns[1000], base[1000], diff[1000];
	for (long i = 0; i < calls / 10; i++) { /* warm up */
		hooked();
		copy();
	}
	for (int r = 0; r < rounds; r++) {
		double a = now_ns();
		for (long i = 0; i < calls; i++)
			copy();
		double b = now_ns();
		getpid_fn f = hooked;
		for (long i = 0; i < calls; i++)
			f();
		double c = now_ns();
		base[r] = (b - a) / calls;
		ns[r] = (c - b) / calls;
		diff[r] = ns[r] - base[r];
	}
	// What the counter program's atomic add costs by itself here, back to
	// back on one cache line: the floor under any counter program, the
	// kernel's included.
	static volatile long counter;
	double la = now_ns();
	for (long i = 0; i < 1000000; i++)
		__sync_fetch_and_add(&counter, 1);
	const double lock_add = (now_ns() - la) / 1e6;
	qsort(ns, rounds, sizeof ns[0], cmp);
	qsort(base, rounds, sizeof base[0], cmp);
	qsort(diff, rounds, sizeof diff[0], cmp);
	printf("{\"ns\":%.3f,\"base\":%.3f,\"added\":%.3f,\"p25\":%.3f,\"p75\":%.3f,\"lock_add\":%.3f}\n",
	       ns[rounds / 2], base[rounds / 2], diff[rounds / 2], diff[rounds / 4],
	       diff[(3 * rounds) / 4], lock_add);
	return 0;
}
