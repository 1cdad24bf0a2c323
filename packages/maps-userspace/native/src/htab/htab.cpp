// htab/htab.cpp: the cold parts of the hash table core (htab.hpp):
// creation, growth, iteration and batch reads.
#include "htab/htab.hpp"
#include "map_common.hpp"

#include <algorithm>
#include <memory>
#include <new>
#include <sys/random.h>

namespace bpftime::maps_userspace::htab {

using namespace bpftime::handlers;

namespace {

void init_elements(state *s, uint32_t first, uint32_t n)
{
	for (uint32_t i = 0; i < n; i++) {
		elem *e = s->at(first + i);
		new (&e->next) std::atomic<uint32_t>(NULLS | 0x7fffffffu);
		new (&e->seq) std::atomic<uint32_t>(0);
		new (&e->hash) std::atomic<uint32_t>(0);
		new (&e->free_next) std::atomic<uint32_t>(0);
	}
}

} // namespace

// Carves the next chunk (BPF_F_NO_PREALLOC) and returns one element of it,
// or NULLS: ENOMEM in *err when the segment is full, E2BIG when every
// element exists already. Takes grow_mutex, and the segment allocator's.
uint32_t grow(state *s, int *err)
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
	// chunk published: reuse it. The allocation and its publication are
	// one allocator transaction, so a process killed between them has the
	// allocation undone with the chunk's slot, not a chunk nobody owns.
	if (s->chunk(c).load(std::memory_order_acquire) == 0) {
		void *mem = nullptr;
		try {
			shm::segment::allocator_transaction txn(s->manager());
			(void)txn.also_undo(&s->chunk(c), sizeof(int64_t));
			mem = s->manager()->allocate(size_t(chunk_elems) *
							     s->elem_size,
						     std::nothrow);
			if (mem)
				s->chunk(c).store(static_cast<char *>(mem) -
							  s->self(),
						  std::memory_order_release);
		} catch (const std::exception &) {
			// The allocator's lock failed: as a full segment.
		}
		if (!mem) {
			(void)s->grow_mutex.unlock_checked();
			*err = ENOMEM;
			return NULLS;
		}
	}
	uint32_t n = std::min(chunk_elems, s->capacity - carved);
	init_elements(s, carved, n);
	s->carved.store(carved + n, std::memory_order_release);
	for (uint32_t i = n - 1; i > 0; i--)
		push_free(s, carved + i);
	(void)s->grow_mutex.unlock_checked();
	return carved;
}

namespace {

// v rounded up to a power of two; 0 when that does not fit in 32 bits (v
// above 2^31), where a 32-bit doubling would wrap to 0 and never end.
uint32_t round_up_pow2(uint32_t v)
{
	uint64_t p = 1;
	while (p < v)
		p <<= 1;
	return p > UINT32_MAX ? 0 : uint32_t(p);
}

void free_state(shm::segment_manager *mgr, state *s)
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
	s->header.magic = 0;
	mgr->deallocate(s);
}

} // namespace

// The kernel's htab_map_alloc_check and htab_map_alloc.
int create(const map_create_args *a, const params &p, void **out, char *err,
	   size_t err_len)
{
	if (a->key_size == 0)
		return set_error(err, err_len, EINVAL, "key size is 0");
	if (int r = check_create_args(a, p, "hash maps", err, err_len))
		return r;
	// The kernel's htab_map_alloc_check: an element larger than kmalloc
	// can give could not be read through bpf(2). 48 is the kernel's
	// sizeof(struct htab_elem) on 64-bit, so the same attributes pass.
	constexpr uint64_t KERNEL_HTAB_ELEM = 48;
	if (uint64_t(a->key_size) + a->value_size >=
	    KMALLOC_MAX_SIZE - KERNEL_HTAB_ELEM)
		return set_error(err, err_len, E2BIG,
				 "key size %u + value size %u is too large",
				 a->key_size, a->value_size);
	// Checked before the buckets are counted, as the kernel's
	// htab_map_alloc does (max_entries > 1 << 31 is E2BIG).
	if (a->max_entries > (1u << 31))
		return set_error(err, err_len, E2BIG,
				 "max_entries %u is too large", a->max_entries);
	uint32_t n_buckets = round_up_pow2(a->max_entries);
	uint32_t n_locks = std::min(n_buckets, MAX_LOCKS);
	if (n_buckets == 0 ||
	    uint64_t(a->max_entries) + n_locks > MAX_ELEMENTS)
		return set_error(err, err_len, E2BIG,
				 "max_entries %u is too large", a->max_entries);

	auto *mgr = static_cast<shm::segment_manager *>(a->segment_manager);
	const uint32_t slot_size = p.slot_for(a);
	void *mem = mgr->allocate(sizeof(state), std::nothrow);
	if (!mem)
		return set_error(err, err_len, ENOMEM, "the segment is full");
	memset(mem, 0, sizeof(state));
	auto *s = static_cast<state *>(mem);
	new (&s->grow_mutex) shm::robust_mutex();
	keep_create_args(s, a);
	s->n_buckets = n_buckets;
	s->n_locks = n_locks;
	s->key_stride = (a->key_size + 7) & ~7u;
	s->slot_size = slot_size;
	s->elem_size = uint32_t(sizeof(elem)) + s->key_stride +
		       ((slot_size + 7) & ~7u);
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
	s->header.version = p.version;
	// Written last: a state is only ever seen whole.
	s->header.magic = p.magic;
	*out = s;
	return 0;
}

// Everything a reader follows from the state lies in the segment and agrees
// with the sizes the state was made with (create above): a damaged segment is
// refused here, before the first bucket is read (issue 17, item 3).
int check_state(const void *sp, char *err, size_t err_len)
{
	auto *s = const_cast<state *>(static_cast<const state *>(sp));
	auto pow2 = [](uint32_t v) { return v != 0 && (v & (v - 1)) == 0; };
	auto in = [&](int64_t off, uint64_t len) {
		return off != 0 &&
		       shm::same_mapping(s, s->self() + off, len);
	};
	const bool prealloc = !(s->map_flags & BPF_F_NO_PREALLOC);
	const uint32_t slot = (s->slot_size + 7) & ~7u;
	bool ok = pow2(s->n_buckets) && pow2(s->n_locks) &&
		  s->n_locks <= s->n_buckets &&
		  s->key_stride == ((s->key_size + 7) & ~7u) && s->key_size != 0 &&
		  s->elem_size == sizeof(elem) + uint64_t(s->key_stride) + slot &&
		  s->capacity >= s->max_entries &&
		  s->carved.load() <= s->capacity &&
		  s->chunk_shift == (prealloc ? 31u : GROW_CHUNK_SHIFT) &&
		  s->n_chunks == (prealloc ? 1u :
					     uint32_t((uint64_t(s->capacity) +
						       (1u << GROW_CHUNK_SHIFT) - 1) >>
						      GROW_CHUNK_SHIFT)) &&
		  in(s->manager_off, 1) &&
		  in(s->buckets_off, uint64_t(s->n_buckets) * 4) &&
		  in(s->locks_off,
		     uint64_t(s->n_locks) * sizeof(shm::robust_mutex)) &&
		  in(s->chunks_off, uint64_t(s->n_chunks) * sizeof(int64_t));
	for (uint32_t c = 0; ok && c < s->n_chunks; c++) {
		int64_t off = s->chunk(c).load();
		uint64_t elems = prealloc ? s->capacity : 1u << s->chunk_shift;
		ok = off == 0 ? !prealloc : in(off, elems * s->elem_size);
	}
	if (!ok)
		return set_error(err, err_len, EBADMSG,
				 "the map's state in the segment is damaged "
				 "(its sizes or offsets do not hold together)");
	return 0;
}

void destroy(void *segment_manager, void *s)
{
	free_state(static_cast<shm::segment_manager *>(segment_manager),
		   static_cast<state *>(s));
}

namespace {

// Copies the key of e if it is stable; false when it changed meanwhile.
bool copy_key(state *s, elem *e, void *out)
{
	uint32_t s1 = e->seq.load(std::memory_order_acquire);
	if (s1 & 1)
		return false;
	memcpy(out, e->key(), s->key_size);
	std::atomic_thread_fence(std::memory_order_acquire);
	return e->seq.load(std::memory_order_relaxed) == s1;
}

} // namespace

// The kernel's htab_map_get_next_key: the element after key in its chain,
// then the first element of the following buckets; an absent key starts at
// the first element of the map.
int get_next_key(void *sp, const void *key, void *next_key)
{
	auto *s = static_cast<state *>(sp);
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
int lookup_batch(void *sp, const void *after, uint32_t max_count, void *keys,
		 void *values, uint32_t *count)
{
	auto *s = static_cast<state *>(sp);
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
				memcpy(vo + size_t(n) * s->slot_size,
				       s->value_of(e), s->slot_size);
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

int64_t for_each(void *sp, map_elem_fn cb, void *ctx)
{
	auto *s = static_cast<state *>(sp);
	int64_t n = 0;
	// A chain that concurrent updates keep relinking could be walked
	// forever; no walk visits more than every element once per bucket.
	uint64_t budget = uint64_t(s->capacity) + s->n_buckets;
	for (uint32_t b = 0; b < s->n_buckets; b++) {
		uint32_t i = s->bucket(b).load(std::memory_order_acquire);
		while (!(i & NULLS) && budget--) {
			elem *e = s->at(i);
			uint32_t next = e->next.load(std::memory_order_acquire);
			uint32_t seq = e->seq.load(std::memory_order_acquire);
			if (!(seq & 1)) {
				n++;
				if (cb(ctx, e->key(), s->value_of(e)))
					return n;
			}
			i = next;
		}
	}
	return n;
}

} // namespace bpftime::maps_userspace::htab
