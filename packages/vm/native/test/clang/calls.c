// Local calls: five arguments, a chain of sub-programs, pointers to the
// caller's stack passed down, and values in callee-saved registers kept
// across calls.
typedef unsigned long long u64;
typedef unsigned char u8;

static u64 mix(u64 a, u64 b, u64 c, u64 d, u64 e);
static u64 level1(u64 x, u64 *acc);
static void fill(u64 *out, int n, u64 seed);

u64 entry(u8 *mem, u64 len)
{
	u64 acc = len;
	u64 buf[8];
	fill(buf, 8, mem[0] | (u64)mem[1] << 8);
	u64 r = 0;
	for (int i = 0; i < 8; i++)
		r += level1(buf[i] ^ mem[i + 2], &acc);
	return r ^ acc ^ mix(mem[3], mem[4], mem[5], mem[6], mem[7]);
}

static __attribute__((noinline)) u64 mix(u64 a, u64 b, u64 c, u64 d, u64 e)
{
	return a * 1 + b * 3 + c * 5 + d * 7 + e * 11 + (a ^ e) * (b | d);
}

static __attribute__((noinline)) u64 level3(u64 x)
{
	return (x << 3) ^ (x >> 5) ^ 0x5bd1e995;
}

static __attribute__((noinline)) u64 level2(u64 x, u64 *acc)
{
	*acc += level3(x) & 0xff;
	return level3(x + 1) * 17;
}

static __attribute__((noinline)) u64 level1(u64 x, u64 *acc)
{
	volatile u64 keep = x * 7;
	u64 y = level2(x, acc);
	return y + keep + mix(x, y, keep, *acc, 1);
}

static __attribute__((noinline)) void fill(u64 *out, int n, u64 seed)
{
	for (int i = 0; i < n; i++) {
		seed = seed * 6364136223846793005ull + 1442695040888963407ull;
		out[i] = seed >> 17;
	}
}
