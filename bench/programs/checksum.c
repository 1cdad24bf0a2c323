/* checksum: a byte loop over 4 KiB, the two running sums of a Fletcher-style
 * checksum (a += byte; b += a) as packet and file checksums compute them.
 * Each iteration is one byte load and two dependent adds. */
#include "bench.h"

unsigned char bench_input[BENCH_INPUT_SIZE];

BENCH_PROGRAM
{
	unsigned int a = 1, b = 0;
	for (unsigned int i = 0; i < BENCH_INPUT_SIZE; i++) {
		a += bench_input[i];
		b += a;
	}
	return (b << 16) ^ a;
}
