// bloom_filter_map.cpp: BPF_MAP_TYPE_BLOOM_FILTER (bloom.hpp). User space:
// update pushes, lookup peeks the value passed in, as the kernel's bpf()
// does; programs use bpf_map_push_elem / bpf_map_peek_elem (shipped with the
// queue's table).
#include "bloom/bloom.hpp"

#include <bpftime/handlers/bpf_defs.hpp>
#include <bpftime/maps_userspace/maps_userspace.hpp>

#include <new>
#include <sys/random.h>

namespace bpftime::maps_userspace {

namespace bloom {

namespace {

inline uint64_t mix(uint64_t x)
{
	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdULL;
	x ^= x >> 33;
	x *= 0xc4ceb9fe1a85ec53ULL;
	x ^= x >> 33;
	return x;
}

// Two independent 32-bit hashes of the value; hash function i is
// h1 + i * h2 (Kirsch and Mitzenmacher), as good as k hashes for a bloom
// filter and one pass over the value.
inline uint64_t hash_value(const state *s, const void *value)
{
	const auto *p = static_cast<const uint8_t *>(value);
	uint64_t h = s->seed ^ (uint64_t(s->value_size) * 0x9e3779b97f4a7c15ULL);
	uint32_t len = s->value_size;
	while (len >= 8) {
		uint64_t w;
		memcpy(&w, p, 8);
		h = (h ^ mix(w)) * 0x9e3779b97f4a7c15ULL;
		p += 8;
		len -= 8;
	}
	if (len) {
		uint64_t w = 0;
		memcpy(&w, p, len);
		h = (h ^ mix(w ^ len)) * 0x9e3779b97f4a7c15ULL;
	}
	return mix(h);
}

} // namespace

int push(state *s, const void *value, uint64_t flags)
{
	if (flags != handlers::BPF_ANY)
		return -EINVAL;
	uint64_t h = hash_value(s, value);
	uint32_t h1 = uint32_t(h), h2 = uint32_t(h >> 32) | 1;
	for (uint32_t i = 0; i < s->hash_funcs; i++) {
		uint32_t bit = (h1 + i * h2) & s->bit_mask;
		s->words()[bit >> 6].fetch_or(uint64_t(1) << (bit & 63),
					      std::memory_order_relaxed);
	}
	return 0;
}

int peek(state *s, const void *value)
{
	uint64_t h = hash_value(s, value);
	uint32_t h1 = uint32_t(h), h2 = uint32_t(h >> 32) | 1;
	for (uint32_t i = 0; i < s->hash_funcs; i++) {
		uint32_t bit = (h1 + i * h2) & s->bit_mask;
		if (!(s->words()[bit >> 6].load(std::memory_order_relaxed) &
		      (uint64_t(1) << (bit & 63))))
			return -ENOENT;
	}
	return 0;
}

} // namespace bloom

namespace {

using namespace bpftime::handlers;

constexpr uint32_t BLOOM_MAGIC = 0x424c4f4d; // "BLOM"
// The layout of bloom::state. 1: the first versioned state.
constexpr uint32_t BLOOM_STATE_VERSION = 1;

// The kernel's BLOOM_CREATE_FLAG_MASK.
constexpr uint32_t CREATE_FLAGS = BPF_F_NUMA_NODE | BPF_F_ZERO_SEED |
				  BPF_F_ACCESS_MASK;

int bloom_create(const map_create_args *a, void **out, char *err,
		 size_t err_len)
{
	// bloom_map_alloc_check (first), then bloom_map_alloc.
	if (a->value_size > KMALLOC_MAX_SIZE)
		return set_error(err, err_len, E2BIG, "value size %u is too large",
				 a->value_size);
	if (a->key_size != 0)
		return set_error(err, err_len, EINVAL,
				 "key size %u: bloom filters have no key (key "
				 "size 0)",
				 a->key_size);
	if (a->value_size == 0)
		return set_error(err, err_len, EINVAL, "value size is 0");
	if (a->max_entries == 0)
		return set_error(err, err_len, EINVAL, "max_entries is 0");
	if (a->map_flags & ~CREATE_FLAGS)
		return set_error(err, err_len, EINVAL,
				 "map_flags 0x%x has bits bloom filters do not "
				 "take (allowed: 0x%x)",
				 a->map_flags, CREATE_FLAGS);
	if (a->map_extra & ~uint64_t(0xf))
		return set_error(err, err_len, EINVAL,
				 "map_extra 0x%llx: only its low 4 bits (the "
				 "number of hash functions) may be set",
				 (unsigned long long)a->map_extra);
	uint32_t k = uint32_t(a->map_extra & 0xf);
	if (k == 0)
		k = 5;
	// n * k / ln 2 bits, 7/5 for 1/ln 2, as the kernel computes it.
	uint64_t bits = uint64_t(a->max_entries) * k;
	uint64_t mask;
	if (bits > UINT32_MAX || (bits / 5) * 7 > (1ULL << 31)) {
		mask = UINT32_MAX;
		bits = 1ULL << 32;
	} else {
		bits = (bits / 5) * 7;
		uint64_t p = 64;
		while (p < bits)
			p <<= 1;
		bits = p;
		mask = bits - 1;
	}
	auto *mgr = static_cast<shm::segment_manager *>(a->segment_manager);
	void *mem = mgr->allocate(sizeof(bloom::state), std::nothrow);
	if (!mem)
		return set_error(err, err_len, ENOMEM, "the segment is full");
	const uint64_t bytes = bits / 8;
	void *words = mgr->allocate_aligned(bytes, 64, std::nothrow);
	if (!words) {
		mgr->deallocate(mem);
		return set_error(err, err_len, ENOMEM,
				 "the segment has no room for %llu bytes of bits",
				 (unsigned long long)bytes);
	}
	memset(words, 0, bytes);
	memset(mem, 0, sizeof(bloom::state));
	auto *s = static_cast<bloom::state *>(mem);
	s->value_size = a->value_size;
	s->max_entries = a->max_entries;
	s->map_flags = a->map_flags;
	s->hash_funcs = k;
	s->bit_mask = uint32_t(mask);
	s->bits_len = bytes;
	s->bits_off = static_cast<char *>(words) - reinterpret_cast<char *>(s);
	if (!(a->map_flags & BPF_F_ZERO_SEED) &&
	    getrandom(&s->seed, sizeof(s->seed), GRND_NONBLOCK) !=
		    sizeof(s->seed))
		s->seed = reinterpret_cast<uint64_t>(s) * 0x9e3779b97f4a7c15ULL;
	s->header.version = BLOOM_STATE_VERSION;
	s->header.magic = BLOOM_MAGIC;
	*out = s;
	return 0;
}

void bloom_destroy(void *segment_manager, void *sp)
{
	auto *mgr = static_cast<shm::segment_manager *>(segment_manager);
	auto *s = static_cast<bloom::state *>(sp);
	mgr->deallocate(s->words());
	s->header.magic = 0;
	mgr->deallocate(s);
}

// bpf_map_lookup_elem from a program: the verifier refuses it; NULL.
void *bloom_lookup(void *, const void *)
{
	return nullptr;
}

// BPF_MAP_LOOKUP_ELEM: value holds the value asked about.
int bloom_lookup_copy(void *s, const void *, void *value)
{
	return bloom::peek(static_cast<bloom::state *>(s), value);
}

int bloom_update(void *s, const void *, const void *value, uint64_t flags)
{
	return bloom::push(static_cast<bloom::state *>(s), value, flags);
}

int bloom_delete(void *, const void *)
{
	return -EOPNOTSUPP;
}

int bloom_get_next_key(void *, const void *, void *)
{
	return -EOPNOTSUPP;
}

// JSON export: the values pushed are not kept, only their bits, which no
// value replays; an exported filter has no entries (the package README
// says so).
int bloom_for_each_entry(void *, int (*)(void *, const void *, const void *),
			 void *)
{
	return 0;
}

const map_ops ops = {
	.size = sizeof(map_ops),
	.abi_version = MAP_OPS_ABI_VERSION,
	.layout_version = shm::LAYOUT_VERSION,
	.map_type = BPF_MAP_TYPE_BLOOM_FILTER,
	.type_name = "BPF_MAP_TYPE_BLOOM_FILTER",
	.provider = PROVIDER,
	.create = bloom_create,
	.destroy = bloom_destroy,
	.lookup = bloom_lookup,
	.lookup_copy = bloom_lookup_copy,
	.update = bloom_update,
	.delete_elem = bloom_delete,
	.get_next_key = bloom_get_next_key,
	.state_magic = BLOOM_MAGIC,
	.state_version = BLOOM_STATE_VERSION,
	.for_each_entry = bloom_for_each_entry,
};

} // namespace

const handlers::map_ops *bloom_filter_map_ops() noexcept
{
	return &ops;
}

} // namespace bpftime::maps_userspace
