// bloom/bloom.hpp: BPF_MAP_TYPE_BLOOM_FILTER (the kernel's
// kernel/bpf/bloom_filter.c): a bit array sized as the kernel sizes it
// (max_entries x hash functions x 7/5 bits, rounded up to a power of two, at
// least 64), map_extra's low 4 bits hash functions (0: 5). A push sets the
// value's bits, a peek answers 0 when they are all set, -ENOENT otherwise:
// never a false negative, false positives at the rate the size gives.
//
// Lock-free: a push sets each bit with an atomic OR, a peek reads them; a
// peek racing a push of the same value may miss it, as with the kernel's
// set_bit/test_bit. Nothing to recover after a process is killed.
#pragma once

#include "map_common.hpp"

#include <bpftime/handlers/map_ops.hpp>

#include <atomic>
#include <cstdint>

namespace bpftime::maps_userspace::bloom {

struct state {
	handlers::map_state_header header; // the type's magic and version
	uint32_t value_size;
	uint32_t max_entries;
	uint32_t map_flags;
	uint32_t hash_funcs;
	uint32_t bit_mask; // bits - 1
	uint32_t reserved;
	uint64_t seed;
	uint64_t bits_len; // bytes
	int64_t bits_off;  // from this struct: std::atomic<uint64_t> words

	std::atomic<uint64_t> *words() noexcept
	{
		return reinterpret_cast<std::atomic<uint64_t> *>(
			reinterpret_cast<char *>(this) + bits_off);
	}
};
// Changing it bumps the state_version.
static_assert(sizeof(state) == 56);

// The kernel's bloom_map_push_elem: flags must be BPF_ANY.
int push(state *s, const void *value, uint64_t flags);
// The kernel's bloom_map_peek_elem.
int peek(state *s, const void *value);

} // namespace bpftime::maps_userspace::bloom
