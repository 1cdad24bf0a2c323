/* sieve: counts the primes below 8192 with the sieve of Eratosthenes, one
 * byte per number: a clearing loop, nested strided stores, a counting loop.
 *
 * Written for the kernel's verifier as well: the count is branch-free
 * (1 - flag, flags are 0 or 1) so that the verifier does not queue one
 * pending branch per number (its limit is 8192), and every index is a
 * constant-bounded loop counter, so each access to the map value is provably
 * inside it. */
#include "bench.h"

#define SIEVE_N 8192

unsigned char bench_input[BENCH_INPUT_SIZE]; /* unused: same layout as the others */
unsigned char bench_sieve[SIEVE_N];

BENCH_PROGRAM
{
	unsigned int i, j, count = 0;
	for (i = 0; i < SIEVE_N; i++)
		bench_sieve[i] = 0;
	for (i = 2; i * i < SIEVE_N; i++)
		if (!bench_sieve[i])
			for (j = i * i; j < SIEVE_N; j += i)
				bench_sieve[j] = 1;
	for (i = 2; i < SIEVE_N; i++)
		count += 1 - bench_sieve[i];
	return count;
}
