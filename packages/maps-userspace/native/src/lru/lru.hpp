// lru/lru.hpp: the LRU hash core (the kernel's kernel/bpf/hashtab.c LRU
// variants over kernel/bpf/bpf_lru_list.c), shared by LRU_HASH and
// LRU_PERCPU_HASH: the hash table core (htab/htab.hpp) plus an eviction
// policy, so that a full map takes a new key by dropping the least recently
// used one instead of answering E2BIG.
//
// Policy: sampled LRU. The map keeps a clock that ticks once per insert;
// an element carries the tick of its insert or of the last program lookup
// that saw it (a lookup stores only when the tick moved since: a hot key
// costs one store per insert elsewhere, not one per lookup). A lookup from
// user space does not count as a use (the kernel's
// htab_lru_map_lookup_elem_sys). To evict, a shared hand walks the buckets
// and the oldest of the next SAMPLE elements goes. The kernel's LRU is an
// approximation too (active/inactive lists with a `ref` bit, per-CPU
// caches that evict in batches); both keep what was used since the
// entries they drop.
//
// As the kernel, an update of a full map makes room first even when the key
// exists (the kernel pops a fresh node before it looks the key up), so an
// update can evict an unrelated entry; a per-CPU map's program update with
// BPF_EXIST does not (it writes in place).
//
// BPF_F_NO_COMMON_LRU: one list per possible CPU, as the kernel's
// percpu_lru: max_entries is rounded up to a multiple of the CPUs and each
// CPU's list holds max_entries / CPUs elements; an element belongs to the
// list of the CPU that inserted it, an update on a CPU whose list is full
// evicts from that list only.
//
// Locks: the hash core's striped robust mutexes, nothing more. Marks and
// the hand are relaxed atomics; list counts are changed under the stripe
// lock of the element's bucket (fill / release hooks). A process killed in
// an eviction leaves a count that may be off by one, as the hash core's.
#pragma once

#include "htab/htab.hpp"
#include "map_common.hpp"

#include <atomic>

namespace bpftime::maps_userspace::lru {

struct state {
	handlers::map_state_header header; // the type's magic and version
	uint32_t lists;         // 1, or the possible CPUs (BPF_F_NO_COMMON_LRU)
	uint32_t list_max;      // elements each list may hold
	uint32_t percpu_values; // LRU_PERCPU_HASH
	uint32_t reserved;
	int64_t htab_off;   // the htab::state, from this struct
	int64_t stamps_off; // std::atomic<uint32_t> per element: its tick
	int64_t owner_off;  // uint16_t per element index: its list
	int64_t counts_off; // std::atomic<uint32_t> per list
	std::atomic<uint32_t> hand; // the next bucket eviction looks at
	std::atomic<uint32_t> now;  // the clock: ticks once per insert

	char *self() noexcept
	{
		return reinterpret_cast<char *>(this);
	}
	htab::state *table() noexcept
	{
		return reinterpret_cast<htab::state *>(self() + htab_off);
	}
	std::atomic<uint32_t> &stamp(uint32_t idx) noexcept
	{
		return reinterpret_cast<std::atomic<uint32_t> *>(
			self() + stamps_off)[idx];
	}
	uint16_t &owner(uint32_t idx) noexcept
	{
		return reinterpret_cast<uint16_t *>(self() + owner_off)[idx];
	}
	std::atomic<uint32_t> &count(uint32_t list) noexcept
	{
		return reinterpret_cast<std::atomic<uint32_t> *>(self() +
								 counts_off)[list];
	}
};
// Changing the layout bumps the state_version of both LRU types.
static_assert(sizeof(state) == 64);

struct params {
	uint32_t magic;
	uint32_t version;
	bool percpu_values;
};

// The kernel's htab_map_alloc_check and htab_map_alloc for LRU maps.
int create(const handlers::map_create_args *a, const params &p, void **out,
	   char *err, size_t err_len);
void destroy(void *segment_manager, void *s);
int get_next_key(void *s, const void *key, void *next_key);
int lookup_batch(void *s, const void *after, uint32_t max_count, void *keys,
		 void *values, uint32_t *count);

// The list an update from the calling thread fills.
uint32_t list_of_caller(state *s);
// Elements eviction compares: the oldest of them goes.
inline constexpr uint32_t SAMPLE = 32;

// Makes room in `list` (any element when there is one list); false when the
// hand found nothing to evict in a turn.
bool evict(state *s, uint32_t list);
// Whether an insert into `list` must evict first.
inline bool full(state *s, uint32_t list)
{
	if (s->lists == 1)
		return s->table()->count.load(std::memory_order_relaxed) >=
		       s->table()->max_entries;
	return s->count(list).load(std::memory_order_relaxed) >= s->list_max;
}

// Records a use of element idx now.
inline void touch(state *s, uint32_t idx)
{
	uint32_t now = s->now.load(std::memory_order_relaxed);
	std::atomic<uint32_t> &st = s->stamp(idx);
	if (st.load(std::memory_order_relaxed) != now)
		st.store(now, std::memory_order_relaxed);
}

// The value slot of key for a program, marked used; nullptr.
inline void *lookup(state *s, const void *key)
{
	htab::state *t = s->table();
	uint32_t seq, idx;
	htab::elem *e = htab::find(t, key, htab::hash_key(t, key), &seq, &idx);
	if (!e)
		return nullptr;
	touch(s, idx);
	return t->value_of(e);
}

// The hooks of an update from list `list`; `one_cpu`: a per-CPU program
// update (the running CPU's value, zero elsewhere).
struct update_ctx {
	state *s;
	uint32_t list;
	bool one_cpu;
};
void fill_value(htab::state *t, uint32_t idx, uint8_t *slot,
		const void *value, void *ctx);
void on_release(htab::state *t, uint32_t idx, void *ctx);

// The kernel's htab_lru_map_update_elem (and its per-CPU form).
int update(state *s, const void *key, const void *value, uint64_t flags,
	   bool one_cpu);
int remove(state *s, const void *key);
// BPF_MAP_LOOKUP_AND_DELETE_ELEM (the kernel's
// htab_lru_map_lookup_and_delete_elem), under one stripe lock.
int lookup_and_delete(state *s, const void *key, void *value);

} // namespace bpftime::maps_userspace::lru
