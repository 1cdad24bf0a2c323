/* memcpy: copies 4 KiB as 64-bit words, the loop a memcpy of aligned data
 * is; natively -fno-tree-loop-distribute-patterns keeps gcc from replacing
 * it with a call to memcpy, for BPF -fno-builtin keeps clang from the same
 * (a BPF program cannot call memcpy). Returns a fold of the first and last
 * words copied, so the copy cannot be dropped. */
#include "bench.h"

#define WORDS (BENCH_INPUT_SIZE / 8)

unsigned long long bench_input[WORDS];
unsigned long long bench_output[WORDS];

BENCH_PROGRAM
{
	for (unsigned int i = 0; i < WORDS; i++)
		bench_output[i] = bench_input[i];
	unsigned long long x = bench_output[0] ^ bench_output[WORDS - 1];
	return (unsigned int)(x ^ (x >> 32));
}
