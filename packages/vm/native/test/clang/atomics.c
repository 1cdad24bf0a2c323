// Atomic read-modify-write on the memory: clang -mcpu=v4 emits the atomic
// add/or/and/xor (with and without fetch), xchg and cmpxchg forms.
typedef unsigned long long u64;
typedef unsigned int u32;
typedef unsigned char u8;

u64 entry(u8 *mem, u64 len)
{
	if (len < 48)
		return 1;
	u64 *q = (u64 *)(mem + 32);
	u32 *w = (u32 *)(mem + 40);
	u64 r = 0;
	__sync_fetch_and_add(q, 5);
	r += __sync_fetch_and_add(q, 7);
	r += __sync_fetch_and_or(q, 0xf0f0);
	r += __sync_fetch_and_and(q, ~0xff00ull);
	r += __sync_fetch_and_xor(q, 0x1234);
	__sync_fetch_and_or(w, 0x8000);
	__sync_fetch_and_and(w, 0xfff0fff0u);
	__sync_fetch_and_xor(w, 0x55);
	r += __sync_fetch_and_add(w, 3);
	r += __sync_lock_test_and_set(q, r);
	r += __sync_val_compare_and_swap(q, r, 99);
	r += __sync_val_compare_and_swap(q, 12345, 1);
	r += __sync_val_compare_and_swap(w, *w, 0x77);
	r += __atomic_exchange_n(w, 0x88u, __ATOMIC_SEQ_CST);
	return r ^ *q ^ ((u64)*w << 32);
}
