// Integer arithmetic of every width: with -mcpu=v4 clang emits sdiv/smod,
// movsx, ldxs* and bswap; natively the same C gives the expected value.
// Contract of every program here: entry(mem, len) is the first function of
// .text and uses no globals, maps or relocations.
typedef unsigned long long u64;
typedef long long s64;
typedef unsigned int u32;
typedef int s32;
typedef unsigned short u16;
typedef short s16;
typedef unsigned char u8;
typedef signed char s8;

u64 entry(u8 *mem, u64 len)
{
	if (len < 32)
		return 1;
	volatile s64 a = (s64)(*(s32 *)(mem + 4)) * 3 - 1000;
	volatile s64 b = (s8)mem[7] ? (s8)mem[7] : 3;
	volatile s32 c = (s32)(*(u32 *)(mem + 8)) | 1;
	volatile s32 d = (s16)(*(u16 *)(mem + 12)) | 2;
	u64 r = 0;
	r += (u64)(a / b);
	r ^= (u64)(a % b) << 7;
	r += (u64)(u32)(c / d);
	r ^= (u64)(u32)(c % d) << 13;
	r += (u64)(s64)(s8)(mem[1] + mem[2]);
	r += (u64)(s64)(s16)(*(u16 *)(mem + 14) * 3);
	r += (u64)(s64)(s32)(*(u32 *)(mem + 16) * 5u);
	r ^= __builtin_bswap64(*(u64 *)(mem + 16));
	r += __builtin_bswap32(*(u32 *)(mem + 24));
	r += __builtin_bswap16(*(u16 *)(mem + 28));
	r += (u64)a >> (mem[3] & 63);
	r += (u64)(a >> (mem[5] & 63));
	r += (u64)((u32)c << (mem[6] & 31));
	r += (u64)(u32)((s32)c >> (mem[9] & 31));
	r *= 0x9e3779b97f4a7c15ull;
	r += (u64)((u32)r * (u32)(r >> 32));
	r -= (u64)(-(s64)(u32)(r >> 17));
	r += (u64)(u64)(*(u64 *)(mem + 8)) / ((u64)mem[0] + 1);
	r += (u64)(*(u64 *)(mem + 8)) % ((u64)mem[11] + 7);
	return r;
}
