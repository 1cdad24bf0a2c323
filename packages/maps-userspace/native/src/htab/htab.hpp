// htab/htab.hpp: the hash table core in the shared-memory segment, shared by
// every hash-based map type of this package (the kernel's kernel/bpf/
// hashtab.c serves BPF_MAP_TYPE_HASH, _PERCPU_HASH, _LRU_HASH and
// _LRU_PERCPU_HASH from one core the same way). A map type is a file on top
// (hash_map.cpp) that checks its attributes, fills a `params`, and puts the
// functions below into its map_ops, adding what is its own.
//
// Algorithm
//   - n_buckets = max_entries rounded up to a power of two (as the kernel),
//     each bucket a 32-bit chain head. Chains link elements by index and end
//     in a "nulls" marker, NULLS | bucket, the kernel's hlist_nulls: a reader
//     that was carried into another chain (its element was freed and reused
//     meanwhile) ends on a foreign marker and starts again.
//   - Elements: header {next, seq, hash, free_next}, key, value slot, each
//     part 8-byte aligned. `seq` is odd while an element is being filled and
//     grows by 2 each time it is freed, so a reader that saw the same even
//     seq before and after comparing a key knows the key was whole and
//     current.
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
//
// Hooks for the types to come, so that each stays a small file:
//   - params::slot_size: the bytes each element stores for its value and
//     that lookup_copy/update copy (per-CPU: handlers::percpu_value_size());
//     the value a program's lookup() points at is the start of the slot.
//   - hooks::evict (LRU): called by update() when the map is full and the key
//     is new, before any stripe lock is taken, to make room (it deletes an
//     entry through remove()); update then proceeds, E2BIG if still full.
//   - hooks::fill_value (per-CPU from a program: one CPU's value, the others
//     zeroed) writes a new element's slot instead of a copy of `value`, and
//     hooks::on_release sees every element leave a chain (LRU bookkeeping);
//     both get the element index, under the stripe lock.
//   - id-valued slots (hash of maps): 4-byte values; the registry checks and
//     resolves the ids (map_ops::fd_kind), the core stores them as bytes.
//
// The hot-path functions (lookup, lookup_copy, update, remove) are inline
// here so that a type's map_ops entry compiles to the same code as before the
// split; creation, growth, iteration and batches are in htab.cpp.
#pragma once

#include "map_common.hpp"

#include <bpftime/handlers/bpf_defs.hpp>
#include <bpftime/handlers/map_ops.hpp>
#include <bpftime/shm/robust_mutex.hpp>
#include <bpftime/shm/segment.hpp>

#include <atomic>
#include <cstring>

namespace bpftime::maps_userspace::htab {

inline constexpr uint32_t NULLS = 0x80000000u;
inline constexpr uint32_t MAX_LOCKS = 256;
inline constexpr uint32_t GROW_CHUNK_SHIFT = 10;
// Element indexes stay below NULLS.
inline constexpr uint32_t MAX_ELEMENTS = NULLS - 1;

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

// Everything is relative to the state itself: the segment maps at a
// different address in every process.
struct state {
	handlers::map_state_header header; // the type's magic and version
	uint32_t key_size;
	uint32_t value_size; // the kernel attribute
	uint32_t max_entries;
	uint32_t map_flags;
	uint32_t n_buckets;
	uint32_t n_locks;
	uint32_t key_stride; // key_size rounded up to 8
	uint32_t slot_size;  // bytes of a stored value (params::slot_size)
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
// The layout of every hash-based type's state: changing it bumps the
// state_version of each type built on this core.
static_assert(sizeof(state) == 152);

// What a type asks of the core at creation, after its own checks
// (map_common.hpp).
using params = core_params;

// Per-call behaviour a type adds (see the file comment); all nullptr for a
// plain hash map, which then compiles to the code without hooks.
struct hooks {
	// LRU: make room in a full map. nullptr: none.
	void (*evict)(state *s, void *ctx) = nullptr;
	// Writes the value slot of element idx for `value`; nullptr: a copy.
	void (*fill_value)(state *s, uint32_t idx, uint8_t *slot,
			   const void *value, void *ctx) = nullptr;
	// Element idx leaves its chain (deleted, replaced). nullptr: nothing.
	void (*on_release)(state *s, uint32_t idx, void *ctx) = nullptr;
	void *ctx = nullptr;
};
inline constexpr hooks NO_HOOKS{};

// The kernel's htab_map_alloc_check and htab_map_alloc. 0 and *out, or a
// negative errno with a message in err.
int create(const handlers::map_create_args *a, const params &p, void **out,
	   char *err, size_t err_len);
// Frees everything create allocated.
void destroy(void *segment_manager, void *s);
// 0, or EBADMSG with a message when the state's sizes and offsets do not
// hold together inside the segment (an open checks it first).
int check_state(const void *s, char *err, size_t err_len);
// The kernel's htab_map_get_next_key; map_ops::get_next_key as it is.
int get_next_key(void *s, const void *key, void *next_key);
// map_ops::lookup_batch (values packed by slot_size).
int lookup_batch(void *s, const void *after, uint32_t max_count, void *keys,
		 void *values, uint32_t *count);
// The kernel's bpf_for_each_hash_elem: bucket by bucket, each element whose
// seq is even (whole), key and value in place; stops after the element cb
// returns non-zero for. cb may delete the element it is given (the next
// link is read before the call). Returns how many cb ran for.
int64_t for_each(void *s, handlers::map_elem_fn cb, void *ctx);
// Carves the next chunk (BPF_F_NO_PREALLOC); see htab.cpp.
uint32_t grow(state *s, int *err);

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

inline uint32_t hash_key(const state *s, const void *key)
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

inline bool key_eq(const state *s, const uint8_t *a, const void *b)
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

inline void push_free(state *s, uint32_t idx)
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
inline uint32_t pop_free(state *s)
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

// --- lock-free reading ------------------------------------------------------

// The element holding key, with the seq it had when the key matched, or
// nullptr. Lock-free; restarts when carried into another chain or when an
// element changes under it.
inline elem *find(state *s, const void *key, uint32_t h, uint32_t *seq_out,
		  uint32_t *idx_out = nullptr)
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
				if (idx_out)
					*idx_out = n;
				return e;
			}
		}
		n = e->next.load(std::memory_order_acquire);
	}
	if ((n & ~NULLS) != b)
		goto again;
	return nullptr;
}

// The value slot of key in place, or nullptr (a program's lookup).
inline void *lookup(state *s, const void *key)
{
	uint32_t seq;
	elem *e = find(s, key, hash_key(s, key), &seq);
	return e ? s->value_of(e) : nullptr;
}

// Copies one consistent value slot of key; -ENOENT when absent.
inline int lookup_copy(state *s, const void *key, void *value)
{
	uint32_t h = hash_key(s, key);
	for (;;) {
		uint32_t seq;
		elem *e = find(s, key, h, &seq);
		if (!e)
			return -ENOENT;
		memcpy(value, s->value_of(e), s->slot_size);
		std::atomic_thread_fence(std::memory_order_acquire);
		if (e->seq.load(std::memory_order_relaxed) == seq)
			return 0;
	}
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

inline void fill(state *s, elem *e, uint32_t h, const void *key,
		 const void *value, uint32_t next, uint32_t idx = 0,
		 const hooks &hk = NO_HOOKS)
{
	uint32_t seq = e->seq.load(std::memory_order_relaxed);
	e->seq.store(seq | 1, std::memory_order_relaxed);
	std::atomic_thread_fence(std::memory_order_release);
	e->hash.store(h, std::memory_order_relaxed);
	memcpy(e->key(), key, s->key_size);
	if (hk.fill_value)
		hk.fill_value(s, idx, s->value_of(e), value, hk.ctx);
	else
		memcpy(s->value_of(e), value, s->slot_size);
	e->next.store(next, std::memory_order_relaxed);
	e->seq.store((seq | 1) + 1, std::memory_order_release);
}

inline void release_elem(state *s, uint32_t idx)
{
	elem *e = s->at(idx);
	e->seq.fetch_add(2, std::memory_order_release);
	push_free(s, idx);
}

inline uint32_t take_elem(state *s, int *err)
{
	uint32_t idx = pop_free(s);
	if (idx != NULLS)
		return idx;
	if (s->map_flags & handlers::BPF_F_NO_PREALLOC)
		return grow(s, err);
	*err = E2BIG;
	return NULLS;
}

// The kernel's htab_map_update_elem.
inline int update(state *s, const void *key, const void *value, uint64_t flags,
		  const hooks &hk = NO_HOOKS)
{
	using namespace bpftime::handlers;
	if ((flags & ~BPF_F_LOCK) > BPF_EXIST) [[unlikely]]
		return -EINVAL;
	if (flags & BPF_F_LOCK) [[unlikely]]
		return -EINVAL; // no bpf_spin_lock in the value
	if (hk.evict &&
	    s->count.load(std::memory_order_relaxed) >= s->max_entries)
		[[unlikely]] hk.evict(s, hk.ctx);
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
			if (hk.fill_value)
				hk.fill_value(s, old, s->value_of(e), value,
					      hk.ctx);
			else
				memcpy(s->value_of(e), value, s->slot_size);
			return 0;
		}
		s->count.fetch_sub(1, std::memory_order_relaxed);
		return -err;
	}
	elem *e = s->at(idx);
	if (old != NULLS) {
		fill(s, e, h, key, value,
		     s->at(old)->next.load(std::memory_order_relaxed), idx, hk);
		link->store(idx, std::memory_order_release);
		if (hk.on_release)
			hk.on_release(s, old, hk.ctx);
		release_elem(s, old);
	} else {
		fill(s, e, h, key, value,
		     s->bucket(b).load(std::memory_order_relaxed), idx, hk);
		s->bucket(b).store(idx, std::memory_order_release);
	}
	return 0;
}

// The kernel's htab_map_delete_elem; -ENOENT when absent.
inline int remove(state *s, const void *key, const hooks &hk = NO_HOOKS)
{
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
			if (hk.on_release)
				hk.on_release(s, n, hk.ctx);
			release_elem(s, n);
			s->count.fetch_sub(1, std::memory_order_relaxed);
			return 0;
		}
		link = &e->next;
		n = e->next.load(std::memory_order_relaxed);
	}
	return -ENOENT;
}

// The kernel's htab_map_lookup_and_delete_elem: copies the value slot of
// key and unlinks it under one stripe lock, so no other update lands in
// between; -ENOENT when absent.
inline int lookup_and_delete(state *s, const void *key, void *value,
			     const hooks &hk = NO_HOOKS)
{
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
			memcpy(value, s->value_of(e), s->slot_size);
			link->store(e->next.load(std::memory_order_relaxed),
				    std::memory_order_release);
			if (hk.on_release)
				hk.on_release(s, n, hk.ctx);
			release_elem(s, n);
			s->count.fetch_sub(1, std::memory_order_relaxed);
			return 0;
		}
		link = &e->next;
		n = e->next.load(std::memory_order_relaxed);
	}
	return -ENOENT;
}

// Removes element idx from the chain of bucket b, if it is still there (an
// LRU eviction that picked it without a lock); -ENOENT when it is not.
inline int remove_index(state *s, uint32_t b, uint32_t idx,
			const hooks &hk = NO_HOOKS)
{
	stripe_lock lock(s->lock_of(b));
	if (lock.error())
		return -lock.error();
	std::atomic<uint32_t> *link = &s->bucket(b);
	uint32_t n = link->load(std::memory_order_relaxed);
	while (!(n & NULLS)) {
		elem *e = s->at(n);
		if (n == idx) {
			link->store(e->next.load(std::memory_order_relaxed),
				    std::memory_order_release);
			if (hk.on_release)
				hk.on_release(s, n, hk.ctx);
			release_elem(s, n);
			s->count.fetch_sub(1, std::memory_order_relaxed);
			return 0;
		}
		link = &e->next;
		n = e->next.load(std::memory_order_relaxed);
	}
	return -ENOENT;
}

} // namespace bpftime::maps_userspace::htab
