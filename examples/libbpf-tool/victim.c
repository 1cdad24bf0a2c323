// victim: calls work(i) for i in [0, n) and prints how many calls it made.
#include <stdio.h>
#include <stdlib.h>

volatile long sink;

__attribute__((noinline)) void work(int x)
{
	for (int i = 0; i < 4; i++)
		sink += x;
}

int main(int argc, char **argv)
{
	int n = argc > 1 ? atoi(argv[1]) : 1000;
	for (int i = 0; i < n; i++)
		work(i);
	printf("victim: %d calls of work()\n", n);
	return 0;
}
