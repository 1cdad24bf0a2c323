// lru/lru.cpp: the LRU hash core (lru.hpp): creation, eviction, updates.
#include "lru/lru.hpp"
#include "percpu/percpu.hpp"

#include <bpftime/handlers/bpf_defs.hpp>
#include <bpftime/handlers/registry.hpp>

#include <new>
#include <sched.h>

namespace bpftime::maps_userspace::lru {

using namespace bpftime::handlers;

namespace {

// The kernel's HTAB_CREATE_FLAG_MASK.
constexpr uint32_t CREATE_FLAGS = BPF_F_NO_PREALLOC | BPF_F_NO_COMMON_LRU |
				  BPF_F_NUMA_NODE | BPF_F_ACCESS_MASK |
				  BPF_F_ZERO_SEED;
constexpr int ENOTSUPP = 524;

void free_state(shm::segment_manager *mgr, state *s)
{
	if (s->htab_off)
		htab::destroy(mgr, s->table());
	for (int64_t off : { s->stamps_off, s->owner_off, s->counts_off })
		if (off)
			mgr->deallocate(s->self() + off);
	s->header.magic = 0;
	mgr->deallocate(s);
}

} // namespace

int create(const map_create_args *a, const params &p, void **out, char *err,
	   size_t err_len)
{
	const bool valid = !(a->map_flags & ~CREATE_FLAGS) && a->key_size &&
			   a->value_size && a->max_entries;
	// htab_map_alloc_check, in its order after the generic checks: LRU
	// maps are always preallocated (ENOTSUPP), per-CPU values are at most
	// PCPU_MIN_UNIT_SIZE.
	if (valid && (a->map_flags & BPF_F_NO_PREALLOC))
		return set_error(err, err_len, ENOTSUPP,
				 "BPF_F_NO_PREALLOC: LRU maps are always "
				 "preallocated");
	if (valid && p.percpu_values && a->value_size > (32u << 10))
		return set_error(err, err_len, E2BIG,
				 "value size %u is above the 32768 bytes of a "
				 "per-CPU value",
				 a->value_size);
	const bool percpu_lru = a->map_flags & BPF_F_NO_COMMON_LRU;
	const uint32_t cpus = possible_cpus();
	// htab_map_alloc: per-CPU lists share max_entries rounded up to a
	// multiple of the CPUs (down where that wraps).
	uint64_t max = a->max_entries;
	if (percpu_lru && valid) {
		max = (max + cpus - 1) / cpus * cpus;
		if (max > UINT32_MAX)
			max = uint64_t(a->max_entries) / cpus * cpus;
	}
	map_create_args inner = *a;
	inner.max_entries = uint32_t(max);
	void *t = nullptr;
	int r = htab::create(&inner,
			     htab::params{ p.magic, p.version,
					   p.percpu_values ?
						   percpu_value_size(a->value_size) :
						   0,
					   CREATE_FLAGS },
			     &t, err, err_len);
	if (r)
		return r;
	auto *table = static_cast<htab::state *>(t);
	auto *mgr = static_cast<shm::segment_manager *>(a->segment_manager);
	auto *s = static_cast<state *>(mgr->allocate(sizeof(state), std::nothrow));
	if (!s) {
		htab::destroy(mgr, table);
		return set_error(err, err_len, ENOMEM, "the segment is full");
	}
	memset(static_cast<void *>(s), 0, sizeof(state));
	new (&s->hand) std::atomic<uint32_t>(0);
	new (&s->now) std::atomic<uint32_t>(0);
	s->lists = percpu_lru ? cpus : 1;
	s->list_max = uint32_t(max / s->lists);
	s->percpu_values = p.percpu_values;
	s->htab_off = reinterpret_cast<char *>(table) - s->self();
	const uint32_t cap = table->capacity;
	auto room = [&](uint64_t bytes, int64_t *off) {
		void *m = mgr->allocate_aligned(bytes, 64, std::nothrow);
		if (!m)
			return false;
		memset(m, 0, bytes);
		*off = static_cast<char *>(m) - s->self();
		return true;
	};
	if (!room(uint64_t(cap) * sizeof(uint32_t), &s->stamps_off) ||
	    !room(uint64_t(cap) * sizeof(uint16_t), &s->owner_off) ||
	    !room(uint64_t(s->lists) * sizeof(uint32_t), &s->counts_off)) {
		free_state(mgr, s);
		return set_error(err, err_len, ENOMEM,
				 "the segment has no room for the LRU marks of "
				 "%u elements",
				 cap);
	}
	s->header.version = p.version;
	s->header.magic = p.magic;
	*out = s;
	return 0;
}

void destroy(void *segment_manager, void *sp)
{
	free_state(static_cast<shm::segment_manager *>(segment_manager),
		   static_cast<state *>(sp));
}

int get_next_key(void *s, const void *key, void *next_key)
{
	return htab::get_next_key(static_cast<state *>(s)->table(), key,
				  next_key);
}

int lookup_batch(void *s, const void *after, uint32_t max_count, void *keys,
		 void *values, uint32_t *count)
{
	return htab::lookup_batch(static_cast<state *>(s)->table(), after,
				  max_count, keys, values, count);
}

uint32_t list_of_caller(state *s)
{
	if (s->lists == 1)
		return 0;
	int cpu = percpu::current_cpu();
	return cpu >= 0 && uint32_t(cpu) < s->lists ? uint32_t(cpu) : 0;
}

void fill_value(htab::state *t, uint32_t idx, uint8_t *slot, const void *value,
		void *ctx)
{
	auto *c = static_cast<update_ctx *>(ctx);
	if (c->one_cpu) {
		memset(slot, 0, t->slot_size);
		memcpy(slot + percpu::this_cpu_offset(t->value_size,
						      t->slot_size),
		       value, t->value_size);
	} else {
		memcpy(slot, value, t->slot_size);
	}
	c->s->stamp(idx).store(c->s->now.fetch_add(1, std::memory_order_relaxed) + 1,
			       std::memory_order_relaxed);
	c->s->owner(idx) = uint16_t(c->list);
	c->s->count(c->list).fetch_add(1, std::memory_order_relaxed);
}

void on_release(htab::state *, uint32_t idx, void *ctx)
{
	state *s = static_cast<update_ctx *>(ctx)->s;
	uint32_t list = s->owner(idx);
	if (list < s->lists)
		s->count(list).fetch_sub(1, std::memory_order_relaxed);
}

bool evict(state *s, uint32_t list)
{
	htab::state *t = s->table();
	update_ctx ctx{ s, list, false };
	const htab::hooks hk{ .on_release = on_release, .ctx = &ctx };
	// A victim lost to a concurrent delete: sample again, a few times.
	for (int attempt = 0; attempt < 4; attempt++) {
		const uint32_t now = s->now.load(std::memory_order_relaxed);
		uint32_t seen = 0, best = htab::NULLS, best_bucket = 0;
		uint32_t best_age = 0;
		for (uint32_t i = 0; i < t->n_buckets && seen < SAMPLE; i++) {
			uint32_t b = s->hand.fetch_add(1, std::memory_order_relaxed) &
				     (t->n_buckets - 1);
			uint32_t n = t->bucket(b).load(std::memory_order_acquire);
			// Lock-free walk; remove_index re-checks under the
			// lock, and a walk carried into another chain only
			// picks a worse victim.
			for (uint32_t steps = 0; !(n & htab::NULLS) && steps < 64;
			     steps++) {
				htab::elem *e = t->at(n);
				uint32_t next = e->next.load(std::memory_order_acquire);
				if (s->lists == 1 || s->owner(n) == list) {
					uint32_t age = now - s->stamp(n).load(
								     std::memory_order_relaxed);
					if (best == htab::NULLS || age > best_age) {
						best = n;
						best_bucket = b;
						best_age = age;
					}
					seen++;
				}
				n = next;
			}
		}
		if (best == htab::NULLS)
			return false;
		if (htab::remove_index(t, best_bucket, best, hk) == 0)
			return true;
	}
	return false;
}

int update(state *s, const void *key, const void *value, uint64_t flags,
	   bool one_cpu)
{
	if ((flags & ~BPF_F_LOCK) > BPF_EXIST || (flags & BPF_F_LOCK))
		[[unlikely]] return -EINVAL;
	htab::state *t = s->table();
	update_ctx ctx{ s, list_of_caller(s), one_cpu };
	if (one_cpu && (flags & 3) != BPF_NOEXIST) {
		// A per-CPU program update of an existing key writes its CPU's
		// value in place and marks the element (the kernel's
		// __htab_lru_percpu_map_update_elem).
		uint32_t seq, idx;
		if (htab::elem *e = htab::find(t, key, htab::hash_key(t, key),
					       &seq, &idx)) {
			memcpy(t->value_of(e) +
				       percpu::this_cpu_offset(t->value_size,
							       t->slot_size),
			       value, t->value_size);
			touch(s, idx);
			return 0;
		}
		if ((flags & 3) == BPF_EXIST)
			return -ENOENT;
	}
	if (full(s, ctx.list) && !(s->percpu_values && (flags & 3) == BPF_EXIST))
		(void)evict(s, ctx.list);
	const htab::hooks hk{ .fill_value = fill_value,
			      .on_release = on_release,
			      .ctx = &ctx };
	if (!one_cpu || (flags & 3) == BPF_NOEXIST)
		return htab::update(t, key, value, flags, hk);
	// A per-CPU program insert: only if still absent, so that a key
	// another thread inserted meanwhile keeps its other CPUs' values.
	int r = htab::update(t, key, value, BPF_NOEXIST, hk);
	if (r != -EEXIST)
		return r;
	return update(s, key, value, flags, one_cpu);
}

int remove(state *s, const void *key)
{
	update_ctx ctx{ s, 0, false };
	const htab::hooks hk{ .on_release = on_release, .ctx = &ctx };
	return htab::remove(s->table(), key, hk);
}

int lookup_and_delete(state *s, const void *key, void *value)
{
	update_ctx ctx{ s, 0, false };
	const htab::hooks hk{ .on_release = on_release, .ctx = &ctx };
	return htab::lookup_and_delete(s->table(), key, value, hk);
}

} // namespace bpftime::maps_userspace::lru
