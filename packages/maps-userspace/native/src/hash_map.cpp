// hash_map.cpp: BPF_MAP_TYPE_HASH in the shared-memory segment (the kernel's
// kernel/bpf/hashtab.c semantics), for any number of threads in any number
// of processes at once.
//
// Algorithm
//   - n_buckets = max_entries rounded up to a power of two (as the kernel),
//     each bucket a 32-bit chain head. Chains link elements by index and end
//     in a "nulls" marker, NULLS | bucket, the kernel's hlist_nulls: a reader
//     that was carried into another chain (its element was freed and reused
//     meanwhile) ends on a foreign marker and starts again.
//   - Elements: header {next, seq, hash, free_next}, key, value, each part
//     8-byte aligned. `seq` is odd while an element is being filled and grows
//     by 2 each time it is freed, so a reader that saw the same even seq
//     before and after comparing a key knows the key was whole and current.
//   - Lookups take no lock (acquire loads and the seq check). Updates and
//     deletes take the robust mutex of the bucket's stripe (n_locks of them,
//     a power of two up to 256); a chain changes only by single release
//     stores of one link, so it is consistent at every instant.
//   - An update of an existing key builds the new value in a fresh element
//     and swaps it into the chain with one store (a concurrent lookup sees
//     the old value or the new one, never a mix), then frees the old
//     element; the kernel does the same. n_locks spare elements beyond
//     max_entries guarantee a fresh element for every stripe at once.
//   - Free elements are a lock-free stack with a tag against ABA.
//   - Preallocated (default): every element is allocated at creation; a
//     full map answers E2BIG. BPF_F_NO_PREALLOC: elements are carved from
//     chunks of 1024, allocated from the segment when the free stack runs
//     dry (ENOMEM when the segment cannot give one); memory grows with the
//     number of entries, never past max_entries, and is only returned when
//     the map is destroyed, so readers never touch freed memory.
//   - Freed elements may be reused at once, like the kernel's preallocated
//     maps: a program that keeps a value pointer across a delete of its key
//     may see another key's value there.
//
// A process killed in an update holds no lock forever (robust mutexes: the
// next locker continues; chains are never inconsistent). It may leak the
// one element it was moving, and the entry count may be off by one.
#include "map_common.hpp"

#include <bpftime/handlers/bpf_defs.hpp>
#include <bpftime/maps_userspace/maps_userspace.hpp>
#include <bpftime/shm/robust_mutex.hpp>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <memory>
#include <new>
#include <sys/random.h>

namespace bpftime::maps_userspace {
namespace {

using namespace bpftime::handlers;

constexpr uint32_t HASH_MAGIC = 0x48415348; // "HASH"
constexpr uint32_t NULLS = 0x80000000u;
constexpr uint32_t MAX_LOCKS = 256;
constexpr uint32_t GROW_CHUNK_SHIFT = 10;
// Element indexes stay below NULLS.
constexpr uint32_t MAX_ELEMENTS = NULLS - 1;

struct elem {
	std::atomic<uint32_t> next; // chain link: index, or NULLS | bucket
	std::atomic<uint32_t> seq;  // odd while being filled
	std::atomic<uint32_t> hash;
	std::atomic<uint32_t> free_next; // free stack: index + 1, 0 = end

	uint8_t *key() noexcept
	{
		return reinterpret_cast<uint8_t *>(this + 1);
	}
};
static_assert(sizeof(elem) == 16);

struct hash_state {
	uint32_t magic;
	uint32_t key_size;
	uint32_t value_size;
	uint32_t max_entries;
	uint32_t map_flags;
	uint32_t n_buckets;
	uint32_t n_locks;
	uint32_t key_stride; // key_size rounded up to 8
	uint32_t elem_size;
	uint32_t chunk_shift; // elements per chunk: 1 << chunk_shift
	uint32_t n_chunks;
	uint32_t capacity; // max_entries + spares
	uint64_t seed;
	std::atomic<uint32_t> count;  // live entries
	std::atomic<uint32_t> carved; // elements taken out of chunks
	std::atomic<uint64_t> free_head; // tag << 32 | (index + 1)
	int64_t manager_off; // all offsets are from this struct
	int64_t buckets_off;
	int64_t locks_off;
	int64_t chunks_off;
	shm::robust_mutex grow_mutex; // carving chunks (BPF_F_NO_PREALLOC)

	char *self() noexcept
	{
		return reinterpret_cast<char *>(this);
	}
	std::atomic<uint32_t> &bucket(uint32_t b) noexcept
	{
		return reinterpret_cast<std::atomic<uint32_t> *>(self() +
								 buckets_off)[b];
	}
	shm::robust_mutex &lock_of(uint32_t b) noexcept
	{
		return reinterpret_cast<shm::robust_mutex *>(
			self() + locks_off)[b & (n_locks - 1)];
	}
	std::atomic<int64_t> &chunk(uint32_t c) noexcept
	{
		return reinterpret_cast<std::atomic<int64_t> *>(self() +
								chunks_off)[c];
	}
	elem *at(uint32_t i) noexcept
	{
		int64_t c = chunk(i >> chunk_shift).load(std::memory_order_acquire);
		return reinterpret_cast<elem *>(
			self() + c +
			size_t(i & ((1u << chunk_shift) - 1)) * elem_size);
	}
	uint8_t *value_of(elem *e) noexcept
	{
		return e->key() + key_stride;
	}
	shm::segment_manager *manager() noexcept
	{
		return reinterpret_cast<shm::segment_manager *>(self() + manager_off);
	}
};
// Part of the registry layout: changing it bumps
// handlers::REGISTRY_LAYOUT_VERSION.
static_assert(sizeof(hash_state) == 144);

// --- hashing ---------------------------------------------------------------

inline uint64_t fmix64(uint64_t x)
{
	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdULL;
	x ^= x >> 33;
	x *= 0xc4ceb9fe1a85ec53ULL;
	x ^= x >> 33;
	return x;
}

inline uint32_t hash_key(const hash_state *s, const void *key)
{
	const auto *p = static_cast<const uint8_t *>(key);
	uint32_t len = s->key_size;
	if (len == 4) {
		uint32_t w;
		memcpy(&w, p, 4);
		return uint32_t(fmix64(w ^ s->seed));
	}
	if (len == 8) {
		uint64_t w;
		memcpy(&w, p, 8);
		return uint32_t(fmix64(w ^ s->seed));
	}
	uint64_t h = s->seed ^ (uint64_t(len) * 0x9e3779b97f4a7c15ULL);
	while (len >= 8) {
		uint64_t w;
		memcpy(&w, p, 8);
		h = (h ^ fmix64(w)) * 0x9e3779b97f4a7c15ULL;
		p += 8;
		len -= 8;
	}
	if (len) {
		uint64_t w = 0;
		memcpy(&w, p, len);
		h = (h ^ fmix64(w ^ len)) * 0x9e3779b97f4a7c15ULL;
	}
	return uint32_t(fmix64(h));
}

inline bool key_eq(const hash_state *s, const uint8_t *a, const void *b)
{
	switch (s->key_size) {
	case 4: {
		uint32_t x, y;
		memcpy(&x, a, 4);
		memcpy(&y, b, 4);
		return x == y;
	}
	case 8: {
		uint64_t x, y;
		memcpy(&x, a, 8);
		memcpy(&y, b, 8);
		return x == y;
	}
	default:
		return memcmp(a, b, s->key_size) == 0;
	}
}

// --- free stack --------------------------------------------------------------

void push_free(hash_state *s, uint32_t idx)
{
	elem *e = s->at(idx);
	uint64_t h = s->free_head.load(std::memory_order_relaxed);
	uint64_t nh;
	do {
		e->free_next.store(uint32_t(h), std::memory_order_relaxed);
		nh = ((h >> 32) + 1) << 32 | (uint64_t(idx) + 1);
	} while (!s->free_head.compare_exchange_weak(
		h, nh, std::memory_order_release, std::memory_order_relaxed));
}

// NULLS when empty.
uint32_t pop_free(hash_state *s)
{
	uint64_t h = s->free_head.load(std::memory_order_acquire);
	for (;;) {
		uint32_t top = uint32_t(h);
		if (top == 0)
			return NULLS;
		uint32_t nx = s->at(top - 1)->free_next.load(
			std::memory_order_relaxed);
		uint64_t nh = ((h >> 32) + 1) << 32 | nx;
		if (s->free_head.compare_exchange_weak(h, nh,
						       std::memory_order_acquire,
						       std::memory_order_acquire))
			return top - 1;
	}
}

void init_elements(hash_state *s, uint32_t first, uint32_t n)
{
	for (uint32_t i = 0; i < n; i++) {
		elem *e = s->at(first + i);
		new (&e->next) std::atomic<uint32_t>(NULLS | 0x7fffffffu);
		new (&e->seq) std::atomic<uint32_t>(0);
		new (&e->hash) std::atomic<uint32_t>(0);
		new (&e->free_next) std::atomic<uint32_t>(0);
	}
}

// Carves the next chunk (BPF_F_NO_PREALLOC) and returns one element of it,
// or NULLS: ENOMEM in *err when the segment is full, E2BIG when every
// element exists already. Takes grow_mutex, and the segment allocator's.
uint32_t grow(hash_state *s, int *err)
{
	auto st = s->grow_mutex.lock_checked();
	if (!st) {
		*err = st.error().code;
		return NULLS;
	}
	// Another thread may have grown the map while we waited.
	uint32_t idx = pop_free(s);
	if (idx != NULLS) {
		(void)s->grow_mutex.unlock_checked();
		return idx;
	}
	uint32_t carved = s->carved.load(std::memory_order_relaxed);
	uint32_t chunk_elems = 1u << s->chunk_shift;
	uint32_t c = carved >> s->chunk_shift;
	if (carved >= s->capacity || c >= s->n_chunks) {
		(void)s->grow_mutex.unlock_checked();
		*err = E2BIG;
		return NULLS;
	}
	// A process killed after allocating but before counting leaves a
	// chunk published: reuse it.
	if (s->chunk(c).load(std::memory_order_acquire) == 0) {
		void *mem = s->manager()->allocate(size_t(chunk_elems) *
							   s->elem_size,
						   std::nothrow);
		if (!mem) {
			(void)s->grow_mutex.unlock_checked();
			*err = ENOMEM;
			return NULLS;
		}
		s->chunk(c).store(static_cast<char *>(mem) - s->self(),
				  std::memory_order_release);
	}
	uint32_t n = std::min(chunk_elems, s->capacity - carved);
	init_elements(s, carved, n);
	s->carved.store(carved + n, std::memory_order_release);
	for (uint32_t i = n - 1; i > 0; i--)
		push_free(s, carved + i);
	(void)s->grow_mutex.unlock_checked();
	return carved;
}

// --- creation --------------------------------------------------------------

// The kernel's HTAB_CREATE_FLAG_MASK.
constexpr uint32_t CREATE_FLAGS = BPF_F_NO_PREALLOC | BPF_F_NO_COMMON_LRU |
				  BPF_F_NUMA_NODE | BPF_F_ACCESS_MASK |
				  BPF_F_ZERO_SEED;

uint32_t round_up_pow2(uint32_t v)
{
	uint32_t p = 1;
	while (p < v)
		p <<= 1;
	return p;
}

void free_state(shm::segment_manager *mgr, hash_state *s)
{
	if (s->chunks_off) {
		for (uint32_t c = 0; c < s->n_chunks; c++)
			if (int64_t off = s->chunk(c).load())
				mgr->deallocate(s->self() + off);
		mgr->deallocate(s->self() + s->chunks_off);
	}
	if (s->locks_off) {
		for (uint32_t i = 0; i < s->n_locks; i++)
			std::destroy_at(&s->lock_of(i));
		mgr->deallocate(s->self() + s->locks_off);
	}
	if (s->buckets_off)
		mgr->deallocate(s->self() + s->buckets_off);
	std::destroy_at(&s->grow_mutex);
	s->magic = 0;
	mgr->deallocate(s);
}

// The kernel's htab_map_alloc_check and htab_map_alloc.
int hash_create(const map_create_args *a, void **out, char *err, size_t err_len)
{
	if (a->key_size == 0)
		return set_error(err, err_len, EINVAL, "key size is 0");
	if (a->value_size == 0)
		return set_error(err, err_len, EINVAL, "value size is 0");
	if (a->max_entries == 0)
		return set_error(err, err_len, EINVAL, "max_entries is 0");
	if (a->map_flags & ~CREATE_FLAGS)
		return set_error(err, err_len, EINVAL,
				 "map_flags 0x%x has bits hash maps do not take "
				 "(allowed: 0x%x)",
				 a->map_flags, CREATE_FLAGS);
	if (a->map_flags & BPF_F_NO_COMMON_LRU)
		return set_error(err, err_len, EINVAL,
				 "BPF_F_NO_COMMON_LRU is for LRU hash maps");
	// The kernel's htab_map_alloc_check: an element larger than kmalloc
	// can give could not be read through bpf(2). 48 is the kernel's
	// sizeof(struct htab_elem) on 64-bit, so the same attributes pass.
	constexpr uint64_t KERNEL_HTAB_ELEM = 48;
	if (uint64_t(a->key_size) + a->value_size >=
	    KMALLOC_MAX_SIZE - KERNEL_HTAB_ELEM)
		return set_error(err, err_len, E2BIG,
				 "key size %u + value size %u is too large",
				 a->key_size, a->value_size);
	uint32_t n_buckets = round_up_pow2(a->max_entries);
	uint32_t n_locks = std::min(n_buckets, MAX_LOCKS);
	if (a->max_entries > (1u << 31) || n_buckets == 0 ||
	    uint64_t(a->max_entries) + n_locks > MAX_ELEMENTS)
		return set_error(err, err_len, E2BIG,
				 "max_entries %u is too large", a->max_entries);

	auto *mgr = static_cast<shm::segment_manager *>(a->segment_manager);
	void *mem = mgr->allocate(sizeof(hash_state), std::nothrow);
	if (!mem)
		return set_error(err, err_len, ENOMEM, "the segment is full");
	memset(mem, 0, sizeof(hash_state));
	auto *s = static_cast<hash_state *>(mem);
	new (&s->grow_mutex) shm::robust_mutex();
	s->key_size = a->key_size;
	s->value_size = a->value_size;
	s->max_entries = a->max_entries;
	s->map_flags = a->map_flags;
	s->n_buckets = n_buckets;
	s->n_locks = n_locks;
	s->key_stride = (a->key_size + 7) & ~7u;
	s->elem_size = uint32_t(sizeof(elem)) + s->key_stride +
		       ((a->value_size + 7) & ~7u);
	s->capacity = a->max_entries + n_locks;
	bool prealloc = !(a->map_flags & BPF_F_NO_PREALLOC);
	s->chunk_shift = prealloc ? 31 : GROW_CHUNK_SHIFT;
	s->n_chunks = prealloc ? 1 :
				 (s->capacity + (1u << GROW_CHUNK_SHIFT) - 1) >>
					 GROW_CHUNK_SHIFT;
	s->manager_off = reinterpret_cast<char *>(mgr) - s->self();
	if (!(a->map_flags & BPF_F_ZERO_SEED)) {
		if (getrandom(&s->seed, sizeof(s->seed), GRND_NONBLOCK) !=
		    sizeof(s->seed))
			s->seed = reinterpret_cast<uint64_t>(s) * 0x9e3779b97f4a7c15ULL;
	}

	auto fail_nomem = [&](const char *what, uint64_t bytes) {
		free_state(mgr, s);
		return set_error(err, err_len, ENOMEM,
				 "the segment has no room for %llu bytes of %s",
				 (unsigned long long)bytes, what);
	};
	uint64_t bucket_bytes = uint64_t(n_buckets) * 4;
	void *b = mgr->allocate_aligned(bucket_bytes, 64, std::nothrow);
	if (!b)
		return fail_nomem("buckets", bucket_bytes);
	s->buckets_off = static_cast<char *>(b) - s->self();
	for (uint32_t i = 0; i < n_buckets; i++)
		new (&s->bucket(i)) std::atomic<uint32_t>(NULLS | i);

	void *l = mgr->allocate_aligned(sizeof(shm::robust_mutex) * n_locks, 64,
					std::nothrow);
	if (!l)
		return fail_nomem("locks", sizeof(shm::robust_mutex) * n_locks);
	for (uint32_t i = 0; i < n_locks; i++)
		new (static_cast<shm::robust_mutex *>(l) + i) shm::robust_mutex();
	s->locks_off = static_cast<char *>(l) - s->self();

	void *c = mgr->allocate(sizeof(int64_t) * s->n_chunks, std::nothrow);
	if (!c)
		return fail_nomem("the chunk table", sizeof(int64_t) * s->n_chunks);
	s->chunks_off = static_cast<char *>(c) - s->self();
	for (uint32_t i = 0; i < s->n_chunks; i++)
		new (&s->chunk(i)) std::atomic<int64_t>(0);

	if (prealloc) {
		uint64_t bytes = uint64_t(s->capacity) * s->elem_size;
		void *e = mgr->allocate_aligned(bytes, 64, std::nothrow);
		if (!e)
			return fail_nomem("elements", bytes);
		s->chunk(0).store(static_cast<char *>(e) - s->self());
		init_elements(s, 0, s->capacity);
		// The free stack in index order: element i links to i + 1.
		for (uint32_t i = 0; i + 1 < s->capacity; i++)
			s->at(i)->free_next.store(i + 2);
		s->free_head.store(1);
		s->carved.store(s->capacity);
	}
	s->magic = HASH_MAGIC;
	*out = s;
	return 0;
}

void hash_destroy(void *segment_manager, void *state)
{
	free_state(static_cast<shm::segment_manager *>(segment_manager),
		   static_cast<hash_state *>(state));
}

// --- lock-free reading ------------------------------------------------------

// The element holding key, with the seq it had when the key matched, or
// nullptr. Lock-free; restarts when carried into another chain or when an
// element changes under it.
elem *find(hash_state *s, const void *key, uint32_t h, uint32_t *seq_out)
{
	const uint32_t b = h & (s->n_buckets - 1);
again:
	uint32_t n = s->bucket(b).load(std::memory_order_acquire);
	while (!(n & NULLS)) {
		elem *e = s->at(n);
		if (e->hash.load(std::memory_order_relaxed) == h) {
			uint32_t s1 = e->seq.load(std::memory_order_acquire);
			if (s1 & 1)
				goto again;
			bool eq = key_eq(s, e->key(), key);
			std::atomic_thread_fence(std::memory_order_acquire);
			if (e->seq.load(std::memory_order_relaxed) != s1)
				goto again;
			if (eq) {
				*seq_out = s1;
				return e;
			}
		}
		n = e->next.load(std::memory_order_acquire);
	}
	if ((n & ~NULLS) != b)
		goto again;
	return nullptr;
}

void *hash_lookup(void *state, const void *key)
{
	auto *s = static_cast<hash_state *>(state);
	uint32_t seq;
	elem *e = find(s, key, hash_key(s, key), &seq);
	return e ? s->value_of(e) : nullptr;
}

int hash_lookup_copy(void *state, const void *key, void *value)
{
	auto *s = static_cast<hash_state *>(state);
	uint32_t h = hash_key(s, key);
	for (;;) {
		uint32_t seq;
		elem *e = find(s, key, h, &seq);
		if (!e)
			return -ENOENT;
		memcpy(value, s->value_of(e), s->value_size);
		std::atomic_thread_fence(std::memory_order_acquire);
		if (e->seq.load(std::memory_order_relaxed) == seq)
			return 0;
	}
}

// Copies the key of e if it is stable; false when it changed meanwhile.
bool copy_key(hash_state *s, elem *e, void *out)
{
	uint32_t s1 = e->seq.load(std::memory_order_acquire);
	if (s1 & 1)
		return false;
	memcpy(out, e->key(), s->key_size);
	std::atomic_thread_fence(std::memory_order_acquire);
	return e->seq.load(std::memory_order_relaxed) == s1;
}

// The kernel's htab_map_get_next_key: the element after key in its chain,
// then the first element of the following buckets; an absent key starts at
// the first element of the map.
int hash_get_next_key(void *state, const void *key, void *next_key)
{
	auto *s = static_cast<hash_state *>(state);
	uint32_t b = 0;
	if (key) {
		uint32_t h = hash_key(s, key);
		uint32_t seq;
	again:
		elem *e = find(s, key, h, &seq);
		if (e) {
			b = h & (s->n_buckets - 1);
			uint32_t n = e->next.load(std::memory_order_acquire);
			if (e->seq.load(std::memory_order_acquire) != seq)
				goto again;
			if (!(n & NULLS)) {
				if (copy_key(s, s->at(n), next_key))
					return 0;
				goto again;
			}
			if ((n & ~NULLS) != b)
				goto again;
			b++;
		}
	}
	for (; b < s->n_buckets; b++) {
		for (;;) {
			uint32_t n = s->bucket(b).load(std::memory_order_acquire);
			if (n & NULLS)
				break;
			if (copy_key(s, s->at(n), next_key))
				return 0;
		}
	}
	return -ENOENT;
}

// Bulk read in get_next_key's order: bucket by bucket, each chain from its
// head, copying every element whose seq is even and unchanged across the
// copy. A bucket whose chain changed under the walk (an element refilled,
// the walk carried into another chain) is copied again from its start, so
// no entry is duplicated or torn. The heads of buckets a few ahead are
// prefetched: their elements are scattered over the segment, and the walk
// would otherwise wait for each one in turn.
int hash_lookup_batch(void *state, const void *after, uint32_t max_count,
		      void *keys, void *values, uint32_t *count)
{
	auto *s = static_cast<hash_state *>(state);
	auto *ko = static_cast<uint8_t *>(keys);
	auto *vo = static_cast<uint8_t *>(values);
	constexpr uint32_t PREFETCH_AHEAD = 8;
	uint32_t n = 0;
	uint32_t b = 0;
	bool resume = after != nullptr;
	if (resume)
		b = hash_key(s, after) & (s->n_buckets - 1);
	while (b < s->n_buckets && n < max_count) {
		if (b + PREFETCH_AHEAD < s->n_buckets) {
			uint32_t ahead = s->bucket(b + PREFETCH_AHEAD)
						 .load(std::memory_order_relaxed);
			if (!(ahead & NULLS))
				__builtin_prefetch(s->at(ahead));
		}
		const uint32_t start = n;
		bool partial = false;
	again:
		n = start;
		bool skipping = resume;
		uint32_t idx = s->bucket(b).load(std::memory_order_acquire);
		while (!(idx & NULLS)) {
			if (!skipping && n == max_count) {
				partial = true;
				break;
			}
			elem *e = s->at(idx);
			uint32_t s1 = e->seq.load(std::memory_order_acquire);
			if (s1 & 1)
				goto again;
			uint32_t next = e->next.load(std::memory_order_acquire);
			bool matched = false;
			if (skipping) {
				matched = key_eq(s, e->key(), after);
			} else {
				memcpy(ko + size_t(n) * s->key_size, e->key(),
				       s->key_size);
				memcpy(vo + size_t(n) * s->value_size,
				       s->value_of(e), s->value_size);
			}
			std::atomic_thread_fence(std::memory_order_acquire);
			if (e->seq.load(std::memory_order_relaxed) != s1)
				goto again;
			if (skipping)
				skipping = !matched;
			else
				n++;
			idx = next;
		}
		if (partial)
			break;
		if ((idx & ~NULLS) != b)
			goto again;
		// A resumed bucket in which `after` is gone (deleted meanwhile)
		// contributes nothing; the walk goes on with the next one.
		resume = false;
		b++;
	}
	*count = n;
	return 0;
}

// --- writing (under the stripe lock) -----------------------------------------

class stripe_lock {
    public:
	explicit stripe_lock(shm::robust_mutex &m) : m_(m)
	{
		auto st = m_.lock_checked();
		err_ = st ? 0 : st.error().code;
	}
	~stripe_lock()
	{
		if (err_ == 0)
			(void)m_.unlock_checked();
	}
	int error() const
	{
		return err_;
	}

    private:
	shm::robust_mutex &m_;
	int err_;
};

void fill(hash_state *s, elem *e, uint32_t h, const void *key,
	  const void *value, uint32_t next)
{
	uint32_t seq = e->seq.load(std::memory_order_relaxed);
	e->seq.store(seq | 1, std::memory_order_relaxed);
	std::atomic_thread_fence(std::memory_order_release);
	e->hash.store(h, std::memory_order_relaxed);
	memcpy(e->key(), key, s->key_size);
	memcpy(s->value_of(e), value, s->value_size);
	e->next.store(next, std::memory_order_relaxed);
	e->seq.store((seq | 1) + 1, std::memory_order_release);
}

void release_elem(hash_state *s, uint32_t idx)
{
	elem *e = s->at(idx);
	e->seq.fetch_add(2, std::memory_order_release);
	push_free(s, idx);
}

uint32_t take_elem(hash_state *s, int *err)
{
	uint32_t idx = pop_free(s);
	if (idx != NULLS)
		return idx;
	if (s->map_flags & BPF_F_NO_PREALLOC)
		return grow(s, err);
	*err = E2BIG;
	return NULLS;
}

// The kernel's htab_map_update_elem.
int hash_update(void *state, const void *key, const void *value, uint64_t flags)
{
	auto *s = static_cast<hash_state *>(state);
	if ((flags & ~BPF_F_LOCK) > BPF_EXIST) [[unlikely]]
		return -EINVAL;
	if (flags & BPF_F_LOCK) [[unlikely]]
		return -EINVAL; // no bpf_spin_lock in the value
	const uint32_t h = hash_key(s, key);
	const uint32_t b = h & (s->n_buckets - 1);
	stripe_lock lock(s->lock_of(b));
	if (lock.error())
		return -lock.error();

	std::atomic<uint32_t> *link = &s->bucket(b);
	uint32_t n = link->load(std::memory_order_relaxed);
	uint32_t old = NULLS;
	while (!(n & NULLS)) {
		elem *e = s->at(n);
		if (e->hash.load(std::memory_order_relaxed) == h &&
		    key_eq(s, e->key(), key)) {
			old = n;
			break;
		}
		link = &e->next;
		n = e->next.load(std::memory_order_relaxed);
	}
	if (old != NULLS && (flags & 3) == BPF_NOEXIST)
		return -EEXIST;
	if (old == NULLS && (flags & 3) == BPF_EXIST)
		return -ENOENT;

	if (old == NULLS &&
	    s->count.fetch_add(1, std::memory_order_relaxed) >= s->max_entries) {
		s->count.fetch_sub(1, std::memory_order_relaxed);
		return -E2BIG;
	}
	int err = 0;
	uint32_t idx = take_elem(s, &err);
	if (idx == NULLS) {
		if (old != NULLS) {
			// No spare element (more concurrent writers than
			// stripes, or leaked elements): update in place.
			elem *e = s->at(old);
			memcpy(s->value_of(e), value, s->value_size);
			return 0;
		}
		s->count.fetch_sub(1, std::memory_order_relaxed);
		return -err;
	}
	elem *e = s->at(idx);
	if (old != NULLS) {
		fill(s, e, h, key, value,
		     s->at(old)->next.load(std::memory_order_relaxed));
		link->store(idx, std::memory_order_release);
		release_elem(s, old);
	} else {
		fill(s, e, h, key, value,
		     s->bucket(b).load(std::memory_order_relaxed));
		s->bucket(b).store(idx, std::memory_order_release);
	}
	return 0;
}

int hash_delete(void *state, const void *key)
{
	auto *s = static_cast<hash_state *>(state);
	const uint32_t h = hash_key(s, key);
	const uint32_t b = h & (s->n_buckets - 1);
	stripe_lock lock(s->lock_of(b));
	if (lock.error())
		return -lock.error();
	std::atomic<uint32_t> *link = &s->bucket(b);
	uint32_t n = link->load(std::memory_order_relaxed);
	while (!(n & NULLS)) {
		elem *e = s->at(n);
		if (e->hash.load(std::memory_order_relaxed) == h &&
		    key_eq(s, e->key(), key)) {
			link->store(e->next.load(std::memory_order_relaxed),
				    std::memory_order_release);
			release_elem(s, n);
			s->count.fetch_sub(1, std::memory_order_relaxed);
			return 0;
		}
		link = &e->next;
		n = e->next.load(std::memory_order_relaxed);
	}
	return -ENOENT;
}

const map_ops ops = {
	.size = sizeof(map_ops),
	.abi_version = MAP_OPS_ABI_VERSION,
	.layout_version = shm::LAYOUT_VERSION,
	.map_type = BPF_MAP_TYPE_HASH,
	.type_name = "BPF_MAP_TYPE_HASH",
	.provider = "@bpftime/maps-userspace",
	.create = hash_create,
	.destroy = hash_destroy,
	.lookup = hash_lookup,
	.lookup_copy = hash_lookup_copy,
	.update = hash_update,
	.delete_elem = hash_delete,
	.get_next_key = hash_get_next_key,
	.push = nullptr,
	.pop = nullptr,
	.peek = nullptr,
	.mmap_region = nullptr,
	.poll = nullptr,
	.direct_value_addr = nullptr,
	.lookup_batch = hash_lookup_batch,
};

} // namespace

const handlers::map_ops *hash_map_ops() noexcept
{
	return &ops;
}

} // namespace bpftime::maps_userspace
