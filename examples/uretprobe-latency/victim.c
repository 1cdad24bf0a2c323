// The traced program of the uretprobe-latency example: calls work(us), which
// spins for `us` microseconds, with us cycling through 1, 2, 4 ... 512, for
// argv[1] seconds (default 3), then prints how many calls it made.
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

static double now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

// The probed function. noinline/noclone keep it a real function with its
// own symbol.
__attribute__((noinline, noclone)) long work(long us)
{
	double end = now_us() + (double)us;
	long spins = 0;
	while (now_us() < end)
		spins++;
	return spins;
}

int main(int argc, char **argv)
{
	double seconds = argc > 1 ? atof(argv[1]) : 3;
	printf("victim %d: started\n", getpid());
	fflush(stdout);
	double stop = now_us() + seconds * 1e6;
	unsigned long calls = 0;
	for (long i = 0; now_us() < stop; i++) {
		work(1L << (i % 10));
		calls++;
	}
	printf("victim %d: %lu calls of work()\n", getpid(), calls);
	return 0;
}
