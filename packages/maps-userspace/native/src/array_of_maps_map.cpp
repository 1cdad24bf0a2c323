// array_of_maps_map.cpp: BPF_MAP_TYPE_ARRAY_OF_MAPS (the kernel's
// array_of_maps_map_ops in kernel/bpf/arraymap.c): map ids by index. Every
// map stored must match the inner map given at creation (fd/fd_map.hpp,
// inner_map_compatible: the kernel's bpf_map_meta_equal). A program's
// bpf_map_lookup_elem returns the inner map itself, which it hands to the
// next map helper (handlers' helpers.cpp resolves the id to this process's
// instance of the map).
#include "fd/fd_map.hpp"

#include <bpftime/maps_userspace/maps_userspace.hpp>

namespace bpftime::maps_userspace {
namespace {

using namespace bpftime::handlers;

constexpr uint32_t ARRAY_OF_MAPS_MAGIC = 0x414f464d; // "AOFM"
// The layout of fd::state over array::state. 1: the first.
constexpr uint32_t ARRAY_OF_MAPS_STATE_VERSION = 1;

constexpr uint32_t CREATE_FLAGS = BPF_F_NUMA_NODE | BPF_F_ACCESS_MASK;

int array_of_maps_create(const map_create_args *a, void **out, char *err,
			 size_t err_len)
{
	if (int rc = fd::check_fd_args(a, true, err, err_len))
		return rc;
	return fd::create(a, ARRAY_OF_MAPS_MAGIC, ARRAY_OF_MAPS_STATE_VERSION,
			  out, err, err_len, [&](void **core) {
				  return array::create(
					  a,
					  array::params{ ARRAY_OF_MAPS_MAGIC,
							 ARRAY_OF_MAPS_STATE_VERSION,
							 0, CREATE_FLAGS, 0xff },
					  core, err, err_len);
			  });
}

int array_of_maps_get_ptr(void *sp, const map_fd_object *o)
{
	return fd::inner_map_compatible(static_cast<fd::state *>(sp), o);
}

const map_ops ops = {
	.size = sizeof(map_ops),
	.abi_version = MAP_OPS_ABI_VERSION,
	.layout_version = shm::LAYOUT_VERSION,
	.map_type = BPF_MAP_TYPE_ARRAY_OF_MAPS,
	.type_name = "BPF_MAP_TYPE_ARRAY_OF_MAPS",
	.provider = PROVIDER,
	.create = array_of_maps_create,
	.destroy = fd::array_destroy,
	.lookup = fd::array_lookup,
	.lookup_copy = fd::array_lookup_copy,
	.update = fd::array_update,
	.delete_elem = fd::array_delete,
	.get_next_key = fd::array_get_next_key,
	.state_magic = ARRAY_OF_MAPS_MAGIC,
	.state_version = ARRAY_OF_MAPS_STATE_VERSION,
	.fd_kind = MAP_FD_MAP,
	.fd_get_ptr = array_of_maps_get_ptr,
	.check_fd_update = fd::array_check_update,
};

} // namespace

const handlers::map_ops *array_of_maps_map_ops() noexcept
{
	return &ops;
}

} // namespace bpftime::maps_userspace
