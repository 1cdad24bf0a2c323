// kernel_array_map.cpp: BPFTIME_MAP_TYPE_KERNEL_USER_ARRAY, a kernel
// BPF_MAP_TYPE_ARRAY.
//
// With BPF_F_MMAPABLE each process maps the kernel's value area (its fd's
// mmap, the kernel's array_map_mmap) and every operation is a memory access:
// a lookup returns a pointer into the kernel's own value, so writes through
// it (and atomic adds) are seen by kernel programs at once, as they are
// between kernel programs. Without it, operations are bpf(2) calls and a
// lookup returns a per-thread copy, as the hash map does.
#include "kernel_map.hpp"

#include <bpftime/maps_shared/maps_shared.hpp>
#include <bpftime/shm/segment.hpp>

#include <cerrno>
#include <cstring>

namespace bpftime::maps_shared {
namespace {

using namespace bpftime::handlers;

constexpr uint32_t MAGIC = 0x4b415252; // "KARR"
constexpr uint32_t VERSION = 1;
constexpr uint64_t BPF_EXIST_FLAG = 2;
constexpr uint64_t BPF_F_LOCK_FLAG = 4;

int array_create(const map_create_args *a, void **out, char *err,
		 size_t err_len)
{
	return create(a, type_params{ MAGIC, VERSION, 2 /* ARRAY */ }, out,
		      err, err_len);
}

char *slot(local *l, const void *key)
{
	uint32_t i;
	memcpy(&i, key, sizeof(i));
	return i < l->max_entries ? l->mm + size_t(i) * l->stride : nullptr;
}

void *array_lookup(void *lp, const void *key)
{
	auto *l = static_cast<local *>(lp);
	if (l->mm)
		return slot(l, key);
	return syscall_lookup(lp, key);
}

int array_lookup_copy(void *lp, const void *key, void *value)
{
	auto *l = static_cast<local *>(lp);
	if (!l->mm)
		return syscall_lookup_copy(lp, key, value);
	char *p = slot(l, key);
	if (!p)
		return -ENOENT;
	memcpy(value, p, l->value_size);
	return 0;
}

// The kernel's map_update_elem and array_map_update_elem: BPF_F_LOCK is
// EINVAL (these maps have no BTF, so no bpf_spin_lock), other flags above
// BPF_EXIST too, an index past the end E2BIG, BPF_NOEXIST EEXIST (every
// element exists).
int array_update(void *lp, const void *key, const void *value, uint64_t flags)
{
	auto *l = static_cast<local *>(lp);
	if (!l->mm)
		return syscall_update(lp, key, value, flags);
	if ((flags & BPF_F_LOCK_FLAG) || flags > BPF_EXIST_FLAG)
		return -EINVAL;
	char *p = slot(l, key);
	if (!p)
		return -E2BIG;
	if (flags == 1 /* BPF_NOEXIST */)
		return -EEXIST;
	memcpy(p, value, l->value_size);
	return 0;
}

int array_delete(void *, const void *)
{
	return -EINVAL;
}

void *array_mmap_region(void *lp, uint64_t *len)
{
	auto *l = static_cast<local *>(lp);
	if (!l->mm)
		return nullptr;
	*len = l->mm_len;
	return l->mm;
}

const map_ops ops = {
	.size = sizeof(map_ops),
	.abi_version = MAP_OPS_ABI_VERSION,
	.layout_version = shm::LAYOUT_VERSION,
	.map_type = KERNEL_USER_ARRAY,
	.type_name = "BPFTIME_MAP_TYPE_KERNEL_USER_ARRAY",
	.provider = PROVIDER,
	.create = array_create,
	.destroy = destroy,
	.lookup = array_lookup,
	.lookup_copy = array_lookup_copy,
	.update = array_update,
	.delete_elem = array_delete,
	.get_next_key = syscall_next_key,
	.mmap_region = array_mmap_region,
	.state_magic = MAGIC,
	.state_version = VERSION,
	.open = open,
	.close = close,
};

} // namespace

const handlers::map_ops *kernel_array_map_ops() noexcept
{
	return &ops;
}

} // namespace bpftime::maps_shared
