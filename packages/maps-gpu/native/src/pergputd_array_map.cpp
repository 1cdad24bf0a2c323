// pergputd_array_map.cpp: BPFTIME_MAP_TYPE_PERGPUTD_ARRAY, an array with a
// value slot per GPU thread (map_extra: how many threads), in device memory.
// A kernel's thread reads and writes its own slot (device.cuh, by
// bpftime_gpu_thread_index()); user space reads and writes every thread's
// value of an index at once, threads x round_up(value_size, 8) bytes, as
// the kernel's per-CPU arrays give user space every CPU's.
//
// A host program has no GPU thread: its lookup finds nothing and its update
// is EOPNOTSUPP; it reads the values as user space does.
#include "gpu_map.hpp"

#include <bpftime/handlers/bpf_defs.hpp>
#include <bpftime/maps_gpu/maps_gpu.hpp>
#include <bpftime/shm/segment.hpp>

#include <cerrno>

namespace bpftime::maps_gpu {
namespace {

using namespace bpftime::handlers;

constexpr uint32_t MAGIC = 0x47505441; // "GPTA"
constexpr uint32_t VERSION = 1;
constexpr const char *TYPE_NAME = "BPFTIME_MAP_TYPE_PERGPUTD_ARRAY";
// One index's values must fit a user-space value (a u32 size in bpf(2)).
constexpr uint64_t MAX_USER_VALUE = 1ull << 31;

int pta_check(const map_create_args *a, char *err, size_t err_len)
{
	if (int r = array::check_attrs(a, "per-thread GPU array", err, err_len))
		return r;
	if (a->map_extra == 0 || a->map_extra > UINT32_MAX)
		return set_error(err, err_len, EINVAL,
				 "map_extra %llu: a per-thread GPU array's "
				 "map_extra is its number of GPU threads "
				 "(1 to 2^32-1)",
				 (unsigned long long)a->map_extra);
	uint64_t user = uint64_t((a->value_size + 7) & ~7u) * a->map_extra;
	if (user > MAX_USER_VALUE)
		return set_error(err, err_len, E2BIG,
				 "%llu threads x %u-byte values: one index "
				 "holds %llu bytes, above 2 GiB",
				 (unsigned long long)a->map_extra,
				 a->value_size, (unsigned long long)user);
	return 0;
}

int pta_create(const map_create_args *a, void **out, char *err,
	       size_t err_len)
{
	if (int r = pta_check(a, err, err_len))
		return r;
	uint64_t user = uint64_t((a->value_size + 7) & ~7u) * a->map_extra;
	return create(a, type_params{ MAGIC, VERSION, TYPE_NAME },
		      uint32_t(a->map_extra), user * a->max_entries, out, err,
		      err_len);
}

uint32_t pta_user_value_size(const map_create_args *a)
{
	return uint32_t(uint64_t((a->value_size + 7) & ~7u) * a->map_extra);
}

void *pta_lookup(void *, const void *)
{
	return nullptr;
}

int pta_prog_update(void *, const void *, const void *, uint64_t)
{
	return -EOPNOTSUPP;
}

const map_ops ops = {
	.size = sizeof(map_ops),
	.abi_version = MAP_OPS_ABI_VERSION,
	.layout_version = shm::LAYOUT_VERSION,
	.map_type = PERGPUTD_ARRAY,
	.type_name = TYPE_NAME,
	.provider = PROVIDER,
	.create = pta_create,
	.destroy = destroy,
	.lookup = pta_lookup,
	.lookup_copy = array::lookup_copy,
	.update = array::update,
	.delete_elem = array::delete_elem,
	.get_next_key = array::get_next_key,
	.lookup_batch = array::lookup_batch,
	.state_magic = MAGIC,
	.state_version = VERSION,
	.open = open,
	.close = close,
	.user_value_size = pta_user_value_size,
	.prog_update = pta_prog_update,
};

} // namespace

const handlers::map_ops *pergputd_array_map_ops() noexcept
{
	return &ops;
}

} // namespace bpftime::maps_gpu
