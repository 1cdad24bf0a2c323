// The traced program of the malloc example: calls malloc at a steady rate
// (BATCH allocations every 10 ms) until killed, or for argv[1] seconds.
// Prints "victim <pid>: started" first (the demo waits for it) and the total
// at the end.
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#define BATCH 100

int main(int argc, char **argv)
{
	double seconds = argc > 1 ? atof(argv[1]) : 0;
	printf("victim %d: started\n", getpid());
	fflush(stdout);
	struct timespec start, now;
	clock_gettime(CLOCK_MONOTONIC, &start);
	unsigned long total = 0;
	for (;;) {
		for (int i = 0; i < BATCH; i++) {
			/* volatile: the allocation must not be optimised away */
			void *volatile p = malloc(16 + i);
			free(p);
		}
		total += BATCH;
		usleep(10000);
		clock_gettime(CLOCK_MONOTONIC, &now);
		if (seconds > 0 && (now.tv_sec - start.tv_sec) + (now.tv_nsec - start.tv_nsec) / 1e9 >= seconds)
			break;
	}
	printf("victim %d: %lu mallocs\n", getpid(), total);
	return 0;
}
