// hash_of_maps_map.cpp: BPF_MAP_TYPE_HASH_OF_MAPS (the kernel's
// htab_of_maps_map_ops in kernel/bpf/hashtab.c): map ids by any key, on the
// hash core (htab/htab.hpp, whose locking applies). Inner maps are checked
// against the template as for ARRAY_OF_MAPS (fd/fd_map.hpp), and a program's
// lookup returns the inner map.
#include "fd/fd_map.hpp"

#include <bpftime/maps_userspace/maps_userspace.hpp>

namespace bpftime::maps_userspace {
namespace {

using namespace bpftime::handlers;

constexpr uint32_t HASH_OF_MAPS_MAGIC = 0x484f464d; // "HOFM"
// The layout of fd::state over htab::state. 1: the first.
constexpr uint32_t HASH_OF_MAPS_STATE_VERSION = 1;

// The kernel's HTAB_CREATE_FLAG_MASK less the LRU flag.
constexpr uint32_t CREATE_FLAGS = BPF_F_NO_PREALLOC | BPF_F_NUMA_NODE |
				  BPF_F_ACCESS_MASK | BPF_F_ZERO_SEED;

htab::state *core(void *s)
{
	return static_cast<fd::state *>(s)->core<htab::state>();
}

int hash_of_maps_create(const map_create_args *a, void **out, char *err,
			size_t err_len)
{
	if (int rc = fd::check_fd_args(a, true, err, err_len))
		return rc;
	return fd::create(a, HASH_OF_MAPS_MAGIC, HASH_OF_MAPS_STATE_VERSION,
			  out, err, err_len, [&](void **c) {
				  return htab::create(
					  a,
					  htab::params{ HASH_OF_MAPS_MAGIC,
							HASH_OF_MAPS_STATE_VERSION,
							0, CREATE_FLAGS },
					  c, err, err_len);
			  });
}

void hash_of_maps_destroy(void *segment_manager, void *sp)
{
	auto *mgr = static_cast<shm::segment_manager *>(segment_manager);
	auto *s = static_cast<fd::state *>(sp);
	htab::destroy(segment_manager, core(s));
	s->header.magic = 0;
	mgr->deallocate(s);
}

void *hash_of_maps_lookup(void *s, const void *key)
{
	return htab::lookup(core(s), key);
}

int hash_of_maps_lookup_copy(void *s, const void *key, void *value)
{
	return htab::lookup_copy(core(s), key, value);
}

int hash_of_maps_update(void *s, const void *key, const void *value,
			uint64_t flags)
{
	return htab::update(core(s), key, value, flags);
}

int hash_of_maps_delete(void *s, const void *key)
{
	return htab::remove(core(s), key);
}

int hash_of_maps_get_next_key(void *s, const void *key, void *next_key)
{
	return htab::get_next_key(core(s), key, next_key);
}

int hash_of_maps_get_ptr(void *sp, const map_fd_object *o)
{
	return fd::inner_map_compatible(static_cast<fd::state *>(sp), o);
}

const map_ops ops = {
	.size = sizeof(map_ops),
	.abi_version = MAP_OPS_ABI_VERSION,
	.layout_version = shm::LAYOUT_VERSION,
	.map_type = BPF_MAP_TYPE_HASH_OF_MAPS,
	.type_name = "BPF_MAP_TYPE_HASH_OF_MAPS",
	.provider = PROVIDER,
	.create = hash_of_maps_create,
	.destroy = hash_of_maps_destroy,
	.lookup = hash_of_maps_lookup,
	.lookup_copy = hash_of_maps_lookup_copy,
	.update = hash_of_maps_update,
	.delete_elem = hash_of_maps_delete,
	.get_next_key = hash_of_maps_get_next_key,
	.state_magic = HASH_OF_MAPS_MAGIC,
	.state_version = HASH_OF_MAPS_STATE_VERSION,
	.fd_kind = MAP_FD_MAP,
	.fd_get_ptr = hash_of_maps_get_ptr,
};

} // namespace

const handlers::map_ops *hash_of_maps_map_ops() noexcept
{
	return &ops;
}

} // namespace bpftime::maps_userspace
