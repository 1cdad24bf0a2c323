// array_map.cpp: BPF_MAP_TYPE_ARRAY in the shared-memory segment (the
// kernel's kernel/bpf/arraymap.c semantics).
//
// Values are stored contiguously, each in an 8-byte aligned slot of `stride`
// bytes, all zeroed at creation and never freed while the map exists. A
// lookup is a bounds check and a multiply; no lock is ever taken. An update
// copies the value in place, as the kernel does for values without a
// bpf_spin_lock: a reader racing with a writer may see a mix of old and new
// bytes, exactly as with a kernel array map; programs that need atomicity use
// atomic instructions on the value. Deleting is EINVAL: array elements always
// exist.
//
// BPF_F_MMAPABLE maps keep their values page-aligned, and mmap_region()
// returns them for direct access (in Node, a Buffer over the shared memory).
#include "map_common.hpp"

#include <bpftime/handlers/bpf_defs.hpp>
#include <bpftime/maps_userspace/maps_userspace.hpp>

#include <algorithm>
#include <cstring>

namespace bpftime::maps_userspace {
namespace {

using namespace bpftime::handlers;

constexpr uint32_t ARRAY_MAGIC = 0x41525259; // "ARRY"

// Everything is relative to the state itself: the segment maps at a
// different address in every process.
struct array_state {
	uint32_t magic;
	uint32_t key_size;
	uint32_t value_size;
	uint32_t max_entries;
	uint32_t map_flags;
	uint32_t stride; // value_size rounded up to 8
	uint64_t values_len;
	int64_t values_off; // from this struct
	uint64_t reserved;

	uint8_t *values() noexcept
	{
		return reinterpret_cast<uint8_t *>(this) + values_off;
	}
};
// Part of the registry layout: changing it bumps
// handlers::REGISTRY_LAYOUT_VERSION.
static_assert(sizeof(array_state) == 48);

// The kernel's ARRAY_CREATE_FLAG_MASK.
constexpr uint32_t CREATE_FLAGS = BPF_F_NUMA_NODE | BPF_F_MMAPABLE |
				  BPF_F_ACCESS_MASK | BPF_F_PRESERVE_ELEMS |
				  BPF_F_INNER_MAP;

int array_create(const map_create_args *a, void **out, char *err,
		 size_t err_len)
{
	if (a->key_size != 4)
		return set_error(err, err_len, EINVAL,
				 "key size %u: array keys are 4-byte indexes",
				 a->key_size);
	if (a->value_size == 0)
		return set_error(err, err_len, EINVAL, "value size is 0");
	if (a->max_entries == 0)
		return set_error(err, err_len, EINVAL, "max_entries is 0");
	if (a->map_flags & ~CREATE_FLAGS)
		return set_error(err, err_len, EINVAL,
				 "map_flags 0x%x has bits arrays do not take "
				 "(allowed: 0x%x)",
				 a->map_flags, CREATE_FLAGS);
	// No limit on value_size alone: the kernel dropped its KMALLOC_MAX_SIZE
	// check for arrays (a 6.18 kernel creates 4 MiB + 1 values); only the
	// total size below is bounded.
	uint32_t stride = (a->value_size + 7) & ~7u;
	uint64_t len = uint64_t(stride) * a->max_entries;
	// The kernel refuses arrays of 4 GiB and more with ENOMEM.
	if (len >= (1ULL << 32) - 4096)
		return set_error(err, err_len, ENOMEM,
				 "%u entries of %u bytes do not fit in 4 GiB",
				 a->max_entries, stride);
	auto *mgr = static_cast<shm::segment_manager *>(a->segment_manager);
	auto *s = static_cast<array_state *>(
		mgr->allocate(sizeof(array_state), std::nothrow));
	if (!s)
		return set_error(err, err_len, ENOMEM, "the segment is full");
	size_t align = (a->map_flags & BPF_F_MMAPABLE) ? 4096 : 64;
	uint64_t alloc_len = (a->map_flags & BPF_F_MMAPABLE) ?
				     (len + 4095) & ~uint64_t(4095) :
				     len;
	void *values = mgr->allocate_aligned(alloc_len, align, std::nothrow);
	if (!values) {
		mgr->deallocate(s);
		return set_error(err, err_len, ENOMEM,
				 "the segment has no room for %llu bytes of "
				 "values",
				 (unsigned long long)alloc_len);
	}
	memset(values, 0, alloc_len);
	s->magic = ARRAY_MAGIC;
	s->key_size = a->key_size;
	s->value_size = a->value_size;
	s->max_entries = a->max_entries;
	s->map_flags = a->map_flags;
	s->stride = stride;
	s->values_len = alloc_len;
	s->values_off = static_cast<char *>(values) - reinterpret_cast<char *>(s);
	s->reserved = 0;
	*out = s;
	return 0;
}

void array_destroy(void *segment_manager, void *state)
{
	auto *mgr = static_cast<shm::segment_manager *>(segment_manager);
	auto *s = static_cast<array_state *>(state);
	mgr->deallocate(s->values());
	s->magic = 0;
	mgr->deallocate(s);
}

void *array_lookup(void *state, const void *key)
{
	auto *s = static_cast<array_state *>(state);
	uint32_t index;
	memcpy(&index, key, sizeof(index));
	if (index >= s->max_entries) [[unlikely]]
		return nullptr;
	return s->values() + size_t(index) * s->stride;
}

int array_lookup_copy(void *state, const void *key, void *value)
{
	auto *s = static_cast<array_state *>(state);
	void *v = array_lookup(state, key);
	if (!v)
		return -ENOENT;
	memcpy(value, v, s->value_size);
	return 0;
}

// The kernel's array_map_update_elem, check for check.
int array_update(void *state, const void *key, const void *value,
		 uint64_t flags)
{
	auto *s = static_cast<array_state *>(state);
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
	memcpy(s->values() + size_t(index) * s->stride, value, s->value_size);
	return 0;
}

int array_delete(void *, const void *)
{
	return -EINVAL;
}

// The kernel's array_map_get_next_key: an absent or out-of-range key starts
// at index 0, the last index ends with ENOENT.
int array_get_next_key(void *state, const void *key, void *next_key)
{
	auto *s = static_cast<array_state *>(state);
	uint32_t index = 0;
	if (key)
		memcpy(&index, key, sizeof(index));
	uint32_t next;
	if (!key || index >= s->max_entries) {
		next = 0;
	} else {
		if (index == s->max_entries - 1)
			return -ENOENT;
		next = index + 1;
	}
	memcpy(next_key, &next, sizeof(next));
	return 0;
}

void *array_mmap_region(void *state, uint64_t *len)
{
	auto *s = static_cast<array_state *>(state);
	if (!(s->map_flags & BPF_F_MMAPABLE))
		return nullptr;
	*len = s->values_len;
	return s->values();
}

// The kernel's array_map_direct_value_addr: only single-element arrays
// (global data sections) can be addressed directly.
int array_direct_value_addr(void *state, uint64_t *addr)
{
	auto *s = static_cast<array_state *>(state);
	if (s->max_entries != 1)
		return -EOPNOTSUPP;
	*addr = reinterpret_cast<uint64_t>(s->values());
	return 0;
}

// Bulk read: the indexes after `after` (from 0 without one, or when it is
// past the end, as get_next_key), one copy each.
int array_lookup_batch(void *state, const void *after, uint32_t max_count,
		       void *keys, void *values, uint32_t *count)
{
	auto *s = static_cast<array_state *>(state);
	uint32_t first = 0;
	if (after) {
		uint32_t index;
		memcpy(&index, after, sizeof(index));
		first = index < s->max_entries ? index + 1 : 0;
	}
	uint32_t n = first < s->max_entries ?
			     std::min(max_count, s->max_entries - first) :
			     0;
	auto *ko = static_cast<uint8_t *>(keys);
	auto *vo = static_cast<uint8_t *>(values);
	for (uint32_t i = 0; i < n; i++) {
		uint32_t index = first + i;
		memcpy(ko + size_t(i) * 4, &index, 4);
		memcpy(vo + size_t(i) * s->value_size,
		       s->values() + size_t(index) * s->stride, s->value_size);
	}
	*count = n;
	return 0;
}

const map_ops ops = {
	.size = sizeof(map_ops),
	.abi_version = MAP_OPS_ABI_VERSION,
	.layout_version = shm::LAYOUT_VERSION,
	.map_type = BPF_MAP_TYPE_ARRAY,
	.type_name = "BPF_MAP_TYPE_ARRAY",
	.provider = "@bpftime/maps-userspace",
	.create = array_create,
	.destroy = array_destroy,
	.lookup = array_lookup,
	.lookup_copy = array_lookup_copy,
	.update = array_update,
	.delete_elem = array_delete,
	.get_next_key = array_get_next_key,
	.push = nullptr,
	.pop = nullptr,
	.peek = nullptr,
	.mmap_region = array_mmap_region,
	.poll = nullptr,
	.direct_value_addr = array_direct_value_addr,
	.lookup_batch = array_lookup_batch,
};

} // namespace

const handlers::map_ops *array_map_ops() noexcept
{
	return &ops;
}

} // namespace bpftime::maps_userspace
