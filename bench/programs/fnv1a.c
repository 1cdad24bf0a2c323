/* fnv1a: the 32-bit FNV-1a hash of 4 KiB, one byte at a time (xor, then
 * multiply by the FNV prime), as hash-map keys are hashed. The multiply's
 * latency bounds both native code and the JIT. */
#include "bench.h"

unsigned char bench_input[BENCH_INPUT_SIZE];

BENCH_PROGRAM
{
	unsigned int h = 2166136261u;
	for (unsigned int i = 0; i < BENCH_INPUT_SIZE; i++) {
		h ^= bench_input[i];
		h *= 16777619u;
	}
	return h;
}
