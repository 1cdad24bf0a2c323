/* helpers: 256 helper calls per run (bpf_get_prandom_u32, which the kernel
 * also has), mixed into a hash so that none can be dropped. Measures the cost
 * of a helper call: argument setup, the call itself and what the VM checks
 * after it, not a compute loop. */
#include "bench.h"

unsigned char bench_input[BENCH_INPUT_SIZE]; /* unused: same layout as the others */

BENCH_PROGRAM
{
	unsigned int acc = 0;
	for (unsigned int i = 0; i < 256; i++)
		acc = (acc ^ bench_get_prandom_u32()) * 31u + i;
	return acc;
}
