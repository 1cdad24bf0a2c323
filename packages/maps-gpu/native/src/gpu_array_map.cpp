// gpu_array_map.cpp: BPFTIME_MAP_TYPE_GPU_ARRAY, an array in device memory,
// and the operations the array family shares (gpu_map.hpp, array::).
//
// Host operations are copies between device memory and the caller's buffer
// on the process's stream, waited for. A lookup from a host program returns
// a copy in a buffer of the calling thread, so a program's store through it
// does not reach the device (it would need the value mapped; device memory
// is not).
#include "gpu_map.hpp"

#include <bpftime/handlers/bpf_defs.hpp>
#include <bpftime/maps_gpu/maps_gpu.hpp>
#include <bpftime/shm/segment.hpp>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <vector>

namespace bpftime::maps_gpu {
namespace array {

using namespace bpftime::handlers;

namespace {

// Device bytes of one index, and the bytes user space reads and writes.
uint64_t row_bytes(const local *l)
{
	return l->map_type == PERGPUTD_ARRAY ? uint64_t(l->stride) * l->threads :
					       l->stride;
}
uint64_t user_bytes(const local *l)
{
	return l->map_type == PERGPUTD_ARRAY ? uint64_t(l->stride) * l->threads :
					       l->value_size;
}

uint32_t index_of(const void *key)
{
	uint32_t i;
	memcpy(&i, key, sizeof(i));
	return i;
}

} // namespace

// The kernel's array_map_alloc_check, less what device memory cannot do:
// BPF_F_MMAPABLE (the values are not in host memory) is EINVAL here.
int check_attrs(const map_create_args *a, const char *type, char *err,
		size_t err_len)
{
	if (a->key_size != 4)
		return set_error(err, err_len, EINVAL,
				 "key size %u: a %s's key is a u32 index (4)",
				 a->key_size, type);
	if (a->value_size == 0 || a->max_entries == 0)
		return set_error(err, err_len, EINVAL,
				 "value size %u, max_entries %u: a %s needs "
				 "both above 0",
				 a->value_size, a->max_entries, type);
	if (a->value_size > KMALLOC_MAX_SIZE)
		return set_error(err, err_len, E2BIG,
				 "value size %u: above the kernel's limit "
				 "(%u)",
				 a->value_size, KMALLOC_MAX_SIZE);
	if (a->map_flags & ~(BPF_F_ACCESS_MASK | BPF_F_NUMA_NODE))
		return set_error(err, err_len, EINVAL,
				 "map_flags 0x%x: a %s takes only the access "
				 "flags and BPF_F_NUMA_NODE (its values are "
				 "device memory: no BPF_F_MMAPABLE)",
				 a->map_flags, type);
	return 0;
}

int lookup_copy(void *lp, const void *key, void *value)
{
	auto *l = static_cast<local *>(lp);
	uint32_t i = index_of(key);
	if (i >= l->max_entries)
		return -ENOENT;
	return copy_to_host(l, value, i * row_bytes(l), user_bytes(l));
}

// The kernel's array_map_update_elem: flags above BPF_EXIST (BPF_F_LOCK
// included: no spin locks here) EINVAL, an index past the end E2BIG,
// BPF_NOEXIST EEXIST (every element exists).
int update(void *lp, const void *key, const void *value, uint64_t flags)
{
	auto *l = static_cast<local *>(lp);
	if (flags > BPF_EXIST)
		return -EINVAL;
	uint32_t i = index_of(key);
	if (i >= l->max_entries)
		return -E2BIG;
	if (flags == BPF_NOEXIST)
		return -EEXIST;
	return copy_to_device(l, i * row_bytes(l), value, user_bytes(l));
}

int delete_elem(void *, const void *)
{
	return -EINVAL;
}

// The kernel's array_map_get_next_key.
int get_next_key(void *lp, const void *key, void *next)
{
	auto *l = static_cast<local *>(lp);
	uint32_t i = key ? index_of(key) : UINT32_MAX;
	uint32_t n;
	if (!key || i >= l->max_entries)
		n = 0;
	else if (i == l->max_entries - 1)
		return -ENOENT;
	else
		n = i + 1;
	memcpy(next, &n, sizeof(n));
	return 0;
}

// One device-to-host copy for the whole range (the point of batching a
// device map), repacked when values are not stride apart in user space.
int lookup_batch(void *lp, const void *after, uint32_t max_count, void *keys,
		 void *values, uint32_t *count)
{
	auto *l = static_cast<local *>(lp);
	uint32_t start = 0;
	if (after) {
		uint32_t a = index_of(after);
		start = a >= l->max_entries ? 0 : a + 1;
	}
	uint32_t n = l->max_entries - start;
	if (n > max_count)
		n = max_count;
	*count = 0;
	if (n == 0)
		return 0;
	uint64_t row = row_bytes(l), user = user_bytes(l);
	if (row == user) {
		if (int r = copy_to_host(l, values, start * row, n * row))
			return r;
	} else {
		std::vector<uint8_t> tmp;
		try {
			tmp.resize(n * row);
		} catch (...) {
			return -ENOMEM;
		}
		if (int r = copy_to_host(l, tmp.data(), start * row, n * row))
			return r;
		auto *v = static_cast<uint8_t *>(values);
		for (uint32_t k = 0; k < n; k++)
			memcpy(v + k * user, tmp.data() + k * row, user);
	}
	auto *k = static_cast<uint8_t *>(keys);
	for (uint32_t j = 0; j < n; j++) {
		uint32_t idx = start + j;
		memcpy(k + j * 4, &idx, 4);
	}
	*count = n;
	return 0;
}

} // namespace array

namespace {

using namespace bpftime::handlers;

constexpr uint32_t MAGIC = 0x47415252; // "GARR"
constexpr uint32_t VERSION = 1;
constexpr const char *TYPE_NAME = "BPFTIME_MAP_TYPE_GPU_ARRAY";

int gpu_array_create(const map_create_args *a, void **out, char *err,
		     size_t err_len)
{
	if (int r = array::check_attrs(a, "GPU array", err, err_len))
		return r;
	if (a->map_extra != 0)
		return set_error(err, err_len, EINVAL,
				 "map_extra %llu: a GPU array takes none (0)",
				 (unsigned long long)a->map_extra);
	uint64_t bytes = uint64_t((a->value_size + 7) & ~7u) * a->max_entries;
	return create(a, type_params{ MAGIC, VERSION, TYPE_NAME }, 0, bytes,
		      out, err, err_len);
}

// From a host program: a copy in the calling thread's buffer.
void *gpu_array_lookup(void *lp, const void *key)
{
	auto *l = static_cast<local *>(lp);
	uint32_t i;
	memcpy(&i, key, sizeof(i));
	if (i >= l->max_entries)
		return nullptr;
	void *buf = thread_buffer(l);
	return copy_to_host(l, buf, uint64_t(i) * l->stride, l->value_size) ==
			       0 ?
		       buf :
		       nullptr;
}

const map_ops ops = {
	.size = sizeof(map_ops),
	.abi_version = MAP_OPS_ABI_VERSION,
	.layout_version = shm::LAYOUT_VERSION,
	.map_type = GPU_ARRAY,
	.type_name = TYPE_NAME,
	.provider = PROVIDER,
	.create = gpu_array_create,
	.destroy = destroy,
	.lookup = gpu_array_lookup,
	.lookup_copy = array::lookup_copy,
	.update = array::update,
	.delete_elem = array::delete_elem,
	.get_next_key = array::get_next_key,
	.lookup_batch = array::lookup_batch,
	.state_magic = MAGIC,
	.state_version = VERSION,
	.open = open,
	.close = close,
};

} // namespace

const handlers::map_ops *gpu_array_map_ops() noexcept
{
	return &ops;
}

} // namespace bpftime::maps_gpu
