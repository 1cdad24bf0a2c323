// prog_array_map.cpp: BPF_MAP_TYPE_PROG_ARRAY (the kernel's prog_array_map_ops
// in kernel/bpf/arraymap.c): program ids by index, the targets of
// bpf_tail_call. The vm runs the tail call (at most MAX_TAIL_CALL_CNT = 33
// chained on one thread, the kernel's limit) and the registry resolves the
// id at the time of the call (handlers' program.cpp, resolve_tail_call), so
// an update made by any process is seen by the next call in every process.
//
// Every program stored must have the type of the first one (the kernel's
// bpf_prog_map_compatible): EINVAL otherwise.
#include "fd/fd_map.hpp"

#include <bpftime/maps_userspace/maps_userspace.hpp>

namespace bpftime::maps_userspace {
namespace {

using namespace bpftime::handlers;

constexpr uint32_t PROG_ARRAY_MAGIC = 0x50524f47; // "PROG"
// The layout of fd::state over array::state. 1: the first.
constexpr uint32_t PROG_ARRAY_STATE_VERSION = 1;

// The kernel's ARRAY_CREATE_FLAG_MASK, less what only plain arrays take
// (array_map_alloc_check: BPF_F_MMAPABLE and BPF_F_INNER_MAP are for
// BPF_MAP_TYPE_ARRAY, BPF_F_PRESERVE_ELEMS for perf event arrays).
constexpr uint32_t CREATE_FLAGS = BPF_F_NUMA_NODE | BPF_F_ACCESS_MASK;

int prog_array_create(const map_create_args *a, void **out, char *err,
		      size_t err_len)
{
	if (int rc = fd::check_fd_args(a, false, err, err_len))
		return rc;
	return fd::create(a, PROG_ARRAY_MAGIC, PROG_ARRAY_STATE_VERSION, out, err,
			  err_len, [&](void **core) {
				  return array::create(
					  a,
					  array::params{ PROG_ARRAY_MAGIC,
							 PROG_ARRAY_STATE_VERSION,
							 0, CREATE_FLAGS, 0xff },
					  core, err, err_len);
			  });
}

// The first program stored fixes the array's program type.
int prog_array_get_ptr(void *sp, const map_fd_object *o)
{
	if (o->size < sizeof(map_fd_object))
		return -EINVAL;
	auto *s = static_cast<fd::state *>(sp);
	uint32_t owner = NO_ID;
	if (s->owner_type.compare_exchange_strong(owner, o->type))
		return 0;
	return owner == o->type ? 0 : -EINVAL;
}

const map_ops ops = {
	.size = sizeof(map_ops),
	.abi_version = MAP_OPS_ABI_VERSION,
	.layout_version = shm::LAYOUT_VERSION,
	.map_type = BPF_MAP_TYPE_PROG_ARRAY,
	.type_name = "BPF_MAP_TYPE_PROG_ARRAY",
	.provider = PROVIDER,
	.create = prog_array_create,
	.destroy = fd::array_destroy,
	.lookup = fd::array_lookup,
	.lookup_copy = fd::array_lookup_copy,
	.update = fd::array_update,
	.delete_elem = fd::array_delete,
	.get_next_key = fd::array_get_next_key,
	.state_magic = PROG_ARRAY_MAGIC,
	.state_version = PROG_ARRAY_STATE_VERSION,
	.fd_kind = MAP_FD_PROG,
	.fd_get_ptr = prog_array_get_ptr,
	.check_fd_update = fd::array_check_update,
};

} // namespace

const handlers::map_ops *prog_array_map_ops() noexcept
{
	return &ops;
}

} // namespace bpftime::maps_userspace
