// Loops over the memory and the stack: a bitwise CRC-32, FNV-1a, and an
// insertion sort of a stack array.
typedef unsigned long long u64;
typedef unsigned int u32;
typedef unsigned char u8;

u64 entry(u8 *mem, u64 len)
{
	u32 crc = 0xffffffffu;
	for (u64 i = 0; i < len && i < 256; i++) {
		crc ^= mem[i];
		for (int k = 0; k < 8; k++)
			crc = (crc >> 1) ^ (0xedb88320u & (0u - (crc & 1)));
	}
	crc = ~crc;
	u64 fnv = 0xcbf29ce484222325ull;
	for (u64 i = 0; i < len && i < 256; i++)
		fnv = (fnv ^ mem[i]) * 0x100000001b3ull;
	u32 a[16];
	for (int i = 0; i < 16; i++)
		a[i] = (u32)mem[(i * 7) % (len ? len : 1)] * 2654435761u;
	for (int i = 1; i < 16; i++) {
		u32 v = a[i];
		int j = i - 1;
		while (j >= 0 && a[j] > v) {
			a[j + 1] = a[j];
			j--;
		}
		a[j + 1] = v;
	}
	u64 s = 0;
	for (int i = 0; i < 16; i++)
		s = s * 31 + a[i];
	return (u64)crc ^ fnv ^ s;
}
