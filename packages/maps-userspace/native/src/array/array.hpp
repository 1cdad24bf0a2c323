// array/array.hpp: the array core in the shared-memory segment, shared by
// every array-based map type of this package (the kernel's
// kernel/bpf/arraymap.c serves ARRAY, PERCPU_ARRAY, PROG_ARRAY,
// PERF_EVENT_ARRAY, CGROUP_ARRAY and ARRAY_OF_MAPS from one core the same
// way). A map type is a file on top (array_map.cpp) that checks its
// attributes, fills a `params`, and puts the functions below into its
// map_ops.
//
// Values are stored contiguously, each in an 8-byte aligned slot of `stride`
// bytes, all filled with params::fill at creation and never freed while the
// map exists. A lookup is a bounds check and a multiply; no lock is ever
// taken. An update copies the value in place, as the kernel does for values
// without a bpf_spin_lock: a reader racing with a writer may see a mix of old
// and new bytes, exactly as with a kernel array map; programs that need
// atomicity use atomic instructions on the value.
//
// BPF_F_MMAPABLE maps keep their values page-aligned, and mmap_region()
// returns them.
//
// Hooks for the types to come, so that each stays a small file:
//   - params::slot_size: the bytes each index stores and that lookup_copy and
//     update copy (per-CPU: handlers::percpu_value_size()); a program's
//     lookup() points at the start of the slot.
//   - params::fill: the byte every slot starts as: 0 for data, 0xff for
//     id-valued arrays (prog, perf event, map-in-map arrays), whose empty
//     slot is NO_ID; such a type answers lookup_copy of NO_ID with -ENOENT
//     and deletes by storing NO_ID (clear()). The registry checks and
//     resolves the ids (map_ops::fd_kind).
#pragma once

#include "map_common.hpp"

#include <bpftime/handlers/bpf_defs.hpp>
#include <bpftime/handlers/map_ops.hpp>
#include <bpftime/shm/segment.hpp>

#include <cstring>

namespace bpftime::maps_userspace::array {

// Everything is relative to the state itself: the segment maps at a
// different address in every process.
struct state {
	handlers::map_state_header header; // the type's magic and version
	uint32_t key_size;
	uint32_t value_size; // the kernel attribute
	uint32_t max_entries;
	uint32_t map_flags;
	uint32_t slot_size; // bytes copied in and out (params::slot_size)
	uint32_t stride;    // slot_size rounded up to 8
	uint64_t values_len;
	int64_t values_off; // from this struct

	uint8_t *values() noexcept
	{
		return reinterpret_cast<uint8_t *>(this) + values_off;
	}
	uint8_t *slot(uint32_t index) noexcept
	{
		return values() + size_t(index) * stride;
	}
};
// The layout of every array-based type's state: changing it bumps the
// state_version of each type built on this core.
static_assert(sizeof(state) == 48);

// What a type asks of the core at creation, after its own checks:
// core_params (map_common.hpp), then the byte every slot starts as.
struct params : core_params {
	uint8_t fill;
};

// The kernel's array_map_alloc_check and array_map_alloc. 0 and *out, or a
// negative errno with a message in err.
int create(const handlers::map_create_args *a, const params &p, void **out,
	   char *err, size_t err_len);
void destroy(void *segment_manager, void *s);
// 0, or EBADMSG with a message when the state does not hold together
// inside the segment.
int check_state(const void *s, char *err, size_t err_len);
// The kernel's array_map_get_next_key: an absent or out-of-range key starts
// at index 0, the last index ends with ENOENT.
int get_next_key(void *s, const void *key, void *next_key);
// Bulk read: the indexes after `after` (from 0 without one, or when it is
// past the end, as get_next_key), one copy each (values packed by
// slot_size).
int lookup_batch(void *s, const void *after, uint32_t max_count, void *keys,
		 void *values, uint32_t *count);
// map_ops::mmap_region: the values of a BPF_F_MMAPABLE map, else nullptr.
void *mmap_region(void *s, uint64_t *len);
// The kernel's array_map_direct_value_addr: only single-element arrays
// (global data sections) can be addressed directly.
int direct_value_addr(void *s, uint64_t *addr);

// The kernel's bpf_for_each_array_elem: every index in order, the key a
// u32 on this function's stack, the value in place; stops after the element
// cb returns non-zero for. Returns how many cb ran for.
int64_t for_each(void *s, handlers::map_elem_fn cb, void *ctx);
// The kernel's array_map_gen_lookup: MAP_INLINE_ARRAY over the slots.
int gen_lookup(void *s, handlers::map_inline_lookup *out);

// The slot of key in place, or nullptr (a program's lookup).
inline void *lookup(state *s, const void *key)
{
	uint32_t index;
	memcpy(&index, key, sizeof(index));
	if (index >= s->max_entries) [[unlikely]]
		return nullptr;
	return s->slot(index);
}

// Copies the slot of key; -ENOENT past the end.
inline int lookup_copy(state *s, const void *key, void *value)
{
	void *v = lookup(s, key);
	if (!v)
		return -ENOENT;
	memcpy(value, v, s->slot_size);
	return 0;
}

// The kernel's array_map_update_elem, check for check.
inline int update(state *s, const void *key, const void *value, uint64_t flags)
{
	using namespace bpftime::handlers;
	if ((flags & ~BPF_F_LOCK) > BPF_EXIST) [[unlikely]]
		return -EINVAL;
	uint32_t index;
	memcpy(&index, key, sizeof(index));
	if (index >= s->max_entries) [[unlikely]]
		return -E2BIG;
	if (flags & BPF_NOEXIST) [[unlikely]]
		return -EEXIST;
	if (flags & BPF_F_LOCK) [[unlikely]]
		return -EINVAL; // no bpf_spin_lock in the value
	memcpy(s->slot(index), value, s->slot_size);
	return 0;
}

// Refills the slot of key with `fill` (the delete of id-valued arrays);
// -ENOENT past the end.
inline int clear(state *s, const void *key, uint8_t fill)
{
	uint32_t index;
	memcpy(&index, key, sizeof(index));
	if (index >= s->max_entries)
		return -ENOENT;
	memset(s->slot(index), fill, s->slot_size);
	return 0;
}

} // namespace bpftime::maps_userspace::array
