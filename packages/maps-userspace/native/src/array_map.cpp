// array_map.cpp: BPF_MAP_TYPE_ARRAY (the kernel's kernel/bpf/arraymap.c
// semantics): the array core (array/array.hpp) with data values. Deleting is
// EINVAL: array elements always exist.
#include "array/array.hpp"
#include "map_common.hpp"

#include <bpftime/handlers/bpf_defs.hpp>
#include <bpftime/maps_userspace/maps_userspace.hpp>

namespace bpftime::maps_userspace {
namespace {

using namespace bpftime::handlers;

constexpr uint32_t ARRAY_MAGIC = 0x41525259; // "ARRY"
// The layout of array::state. 1: the first versioned state.
constexpr uint32_t ARRAY_STATE_VERSION = 1;

// The kernel's ARRAY_CREATE_FLAG_MASK.
constexpr uint32_t CREATE_FLAGS = BPF_F_NUMA_NODE | BPF_F_MMAPABLE |
				  BPF_F_ACCESS_MASK | BPF_F_PRESERVE_ELEMS |
				  BPF_F_INNER_MAP;

int array_create(const map_create_args *a, void **out, char *err,
		 size_t err_len)
{
	return array::create(a,
			     array::params{ ARRAY_MAGIC, ARRAY_STATE_VERSION, 0,
					    CREATE_FLAGS, 0 },
			     out, err, err_len);
}

void *array_lookup(void *state, const void *key)
{
	return array::lookup(static_cast<array::state *>(state), key);
}

int array_lookup_copy(void *state, const void *key, void *value)
{
	return array::lookup_copy(static_cast<array::state *>(state), key,
				  value);
}

int array_update(void *state, const void *key, const void *value,
		 uint64_t flags)
{
	return array::update(static_cast<array::state *>(state), key, value,
			     flags);
}

int array_delete(void *, const void *)
{
	return -EINVAL;
}

// The state is used in place; it is checked first.
int array_open(void *state, void **local, char *err, size_t err_len)
{
	if (int r = array::check_state(state, err, err_len))
		return r;
	*local = state;
	return 0;
}

const map_ops ops = {
	.size = sizeof(map_ops),
	.abi_version = MAP_OPS_ABI_VERSION,
	.layout_version = shm::LAYOUT_VERSION,
	.map_type = BPF_MAP_TYPE_ARRAY,
	.type_name = "BPF_MAP_TYPE_ARRAY",
	.provider = PROVIDER,
	.create = array_create,
	.destroy = array::destroy,
	.lookup = array_lookup,
	.lookup_copy = array_lookup_copy,
	.update = array_update,
	.delete_elem = array_delete,
	.get_next_key = array::get_next_key,
	.mmap_region = array::mmap_region,
	.direct_value_addr = array::direct_value_addr,
	.lookup_batch = array::lookup_batch,
	.state_magic = ARRAY_MAGIC,
	.state_version = ARRAY_STATE_VERSION,
	.open = array_open,
	.for_each = array::for_each,
	.gen_lookup = array::gen_lookup,
};

} // namespace

const handlers::map_ops *array_map_ops() noexcept
{
	return &ops;
}

} // namespace bpftime::maps_userspace
