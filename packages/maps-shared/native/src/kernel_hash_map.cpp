// kernel_hash_map.cpp: BPFTIME_MAP_TYPE_KERNEL_USER_HASH, a kernel
// BPF_MAP_TYPE_HASH operated through bpf(2) on each process's fd.
//
// A lookup from a program returns a copy of the kernel's value in a buffer
// of the calling thread (kernel_map.hpp, BUFFER_SLOTS): writes through that
// pointer do NOT reach the kernel map; a program that changes a value calls
// bpf_map_update_elem (read, change, update: not atomic against kernel
// programs updating the same key, unlike __sync_fetch_and_add on a value in
// the kernel).
#include "kernel_map.hpp"

#include <bpftime/maps_shared/maps_shared.hpp>
#include <bpftime/shm/segment.hpp>

namespace bpftime::maps_shared {
namespace {

using namespace bpftime::handlers;

constexpr uint32_t MAGIC = 0x4b484153; // "KHAS"
constexpr uint32_t VERSION = 1;

int hash_create(const map_create_args *a, void **out, char *err,
		size_t err_len)
{
	return create(a, type_params{ MAGIC, VERSION, 1 /* HASH */ }, out, err,
		      err_len);
}

const map_ops ops = {
	.size = sizeof(map_ops),
	.abi_version = MAP_OPS_ABI_VERSION,
	.layout_version = shm::LAYOUT_VERSION,
	.map_type = KERNEL_USER_HASH,
	.type_name = "BPFTIME_MAP_TYPE_KERNEL_USER_HASH",
	.provider = PROVIDER,
	.create = hash_create,
	.destroy = destroy,
	.lookup = syscall_lookup,
	.lookup_copy = syscall_lookup_copy,
	.update = syscall_update,
	.delete_elem = syscall_delete,
	.get_next_key = syscall_next_key,
	.state_magic = MAGIC,
	.state_version = VERSION,
	.open = open,
	.close = close,
};

} // namespace

const handlers::map_ops *kernel_hash_map_ops() noexcept
{
	return &ops;
}

} // namespace bpftime::maps_shared
