// fd/fd_map.hpp: what the id-valued map types of this package share
// (prog_array_map.cpp, array_of_maps_map.cpp, hash_of_maps_map.cpp): a small
// state in front of an array or hash core, holding what the kernel keeps in
// struct bpf_map beside the elements: the owner program type of a prog array
// (bpf_prog_map_compatible) and the inner map template of a map-in-map
// (bpf_map_meta_alloc).
//
// Values are 4-byte registry ids, NO_ID in an empty array slot. The registry
// checks that an id holds a live object of the map's fd_kind before it calls
// fd_get_ptr (map_ops.hpp) and stores it; programs only read them. Locking:
// none of its own. The core's scheme applies to the ids (array: plain 4-byte
// stores, atomic on x86-64; hash: the core's stripe locks and lock-free
// reads); owner_type is set once by a compare-and-swap.
#pragma once

#include "array/array.hpp"
#include "htab/htab.hpp"
#include "map_common.hpp"

#include <bpftime/handlers/handler.hpp>

#include <atomic>
#include <cstddef>

namespace bpftime::maps_userspace::fd {

struct state {
	handlers::map_state_header header;
	// Prog array: the program type every stored program has, NO_ID until
	// the first one is stored.
	std::atomic<uint32_t> owner_type;
	// Map-in-map: the inner map template.
	uint32_t inner_type;
	uint32_t inner_key_size;
	uint32_t inner_value_size;
	uint32_t inner_max_entries;
	uint32_t inner_map_flags;
	int64_t core_off; // the array or hash core's state, from this struct

	template <class Core> Core *core() noexcept
	{
		return reinterpret_cast<Core *>(reinterpret_cast<char *>(this) +
						core_off);
	}
};
// Changing it bumps the state_version of each type built on it.
static_assert(sizeof(state) == 40);

// Allocates the front state and runs make_core (the core's create, which
// validates the attributes); frees the front again when that fails.
template <class Make>
int create(const handlers::map_create_args *a, uint32_t magic,
	   uint32_t version, void **out, char *err, size_t err_len,
	   Make make_core)
{
	auto *mgr = static_cast<shm::segment_manager *>(a->segment_manager);
	auto *s = static_cast<state *>(mgr->allocate(sizeof(state), std::nothrow));
	if (!s)
		return set_error(err, err_len, ENOMEM, "the segment is full");
	void *core = nullptr;
	if (int rc = make_core(&core); rc != 0) {
		mgr->deallocate(s);
		return rc;
	}
	s->owner_type.store(handlers::NO_ID, std::memory_order_relaxed);
	s->inner_type = a->inner_map_type;
	const bool have_inner =
		a->size >= offsetof(handlers::map_create_args, inner_map_flags) +
				   sizeof(uint32_t);
	s->inner_key_size = have_inner ? a->inner_key_size : 0;
	s->inner_value_size = have_inner ? a->inner_value_size : 0;
	s->inner_max_entries = have_inner ? a->inner_max_entries : 0;
	s->inner_map_flags = have_inner ? a->inner_map_flags : 0;
	s->core_off = static_cast<char *>(core) - reinterpret_cast<char *>(s);
	s->header.version = version;
	s->header.magic = magic;
	*out = s;
	return 0;
}

// The kernel's fd_array_map_alloc_check and the map-in-map part of
// bpf_map_meta_alloc, before the core's checks.
inline int check_fd_args(const handlers::map_create_args *a, bool map_in_map,
			 char *err, size_t err_len)
{
	using namespace bpftime::handlers;
	if (a->map_flags & (BPF_F_RDONLY_PROG | BPF_F_WRONLY_PROG))
		return set_error(err, err_len, EINVAL,
				 "map_flags 0x%x: BPF_F_RDONLY_PROG and "
				 "BPF_F_WRONLY_PROG are not for maps of ids",
				 a->map_flags);
	if (!map_in_map)
		return 0;
	if (a->inner_map_type == 0)
		return set_error(err, err_len, EINVAL,
				 "inner_map_fd: a map-in-map needs an inner "
				 "map as its template");
	switch (a->inner_map_type) {
	case BPF_MAP_TYPE_ARRAY_OF_MAPS:
	case BPF_MAP_TYPE_HASH_OF_MAPS:
		return set_error(err, err_len, EINVAL,
				 "inner_map_fd: the inner map is a map-in-map "
				 "itself (one level only)");
	case BPF_MAP_TYPE_PROG_ARRAY:
	case BPF_MAP_TYPE_CGROUP_ARRAY:
	case BPF_MAP_TYPE_STACK_TRACE:
		// No map_meta_equal in the kernel: ENOTSUPP (524).
		return set_error(err, err_len, 524,
				 "inner_map_fd: maps of type %u cannot be "
				 "inner maps",
				 a->inner_map_type);
	default:
		return 0;
	}
}

// The kernel's bpf_map_meta_equal, and array_map_meta_equal for arrays
// (max_entries must match unless the template has BPF_F_INNER_MAP): -EINVAL
// when the map cannot stand in for the template.
inline int inner_map_compatible(const state *s, const handlers::map_fd_object *o)
{
	using namespace bpftime::handlers;
	if (o->size < sizeof(map_fd_object))
		return -EINVAL;
	if (o->type != s->inner_type || o->key_size != s->inner_key_size ||
	    o->value_size != s->inner_value_size ||
	    o->map_flags != s->inner_map_flags)
		return -EINVAL;
	if ((s->inner_type == BPF_MAP_TYPE_ARRAY ||
	     s->inner_type == BPF_MAP_TYPE_PERCPU_ARRAY) &&
	    !(s->inner_map_flags & BPF_F_INNER_MAP) &&
	    o->max_entries != s->inner_max_entries)
		return -EINVAL;
	return 0;
}

// --- array-based id maps ------------------------------------------------

inline array::state *arr(void *s) noexcept
{
	return static_cast<state *>(s)->core<array::state>();
}

inline void array_destroy(void *segment_manager, void *sp)
{
	auto *mgr = static_cast<shm::segment_manager *>(segment_manager);
	auto *s = static_cast<state *>(sp);
	array::destroy(segment_manager, arr(s));
	s->header.magic = 0;
	mgr->deallocate(s);
}

inline void *array_lookup(void *s, const void *key)
{
	return array::lookup(arr(s), key);
}

// The kernel's map_fd_sys_lookup_elem: the id, ENOENT for an empty slot or
// an index past the end.
inline int array_lookup_copy(void *s, const void *key, void *value)
{
	const void *v = array::lookup(arr(s), key);
	uint32_t id = handlers::NO_ID;
	if (v)
		memcpy(&id, v, sizeof(id));
	if (id == handlers::NO_ID)
		return -ENOENT;
	memcpy(value, &id, sizeof(id));
	return 0;
}

// The kernel's bpf_fd_array_map_update_elem up to the fd: BPF_ANY only, an
// index inside the array (map_ops::check_fd_update).
inline int array_check_update(void *s, const void *key, uint64_t flags)
{
	if (flags != handlers::BPF_ANY)
		return -EINVAL;
	uint32_t index;
	memcpy(&index, key, sizeof(index));
	if (index >= arr(s)->max_entries)
		return -E2BIG;
	return 0;
}

inline int array_update(void *s, const void *key, const void *value,
			uint64_t flags)
{
	if (int rc = array_check_update(s, key, flags))
		return rc;
	uint32_t index;
	memcpy(&index, key, sizeof(index));
	// One 4-byte store: a program's tail call reads the old id or the
	// new one.
	__atomic_store_n(reinterpret_cast<uint32_t *>(arr(s)->slot(index)),
			 *static_cast<const uint32_t *>(value), __ATOMIC_RELEASE);
	return 0;
}

// The kernel's fd_array_map_delete_elem: E2BIG past the end, ENOENT when
// empty.
inline int array_delete(void *s, const void *key)
{
	uint32_t index;
	memcpy(&index, key, sizeof(index));
	if (index >= arr(s)->max_entries)
		return -E2BIG;
	auto *slot = reinterpret_cast<uint32_t *>(arr(s)->slot(index));
	if (__atomic_exchange_n(slot, handlers::NO_ID, __ATOMIC_ACQ_REL) ==
	    handlers::NO_ID)
		return -ENOENT;
	return 0;
}

inline int array_get_next_key(void *s, const void *key, void *next_key)
{
	return array::get_next_key(arr(s), key, next_key);
}

} // namespace bpftime::maps_userspace::fd
