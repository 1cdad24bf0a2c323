// fixture_maps.cpp: the test's prog array and per-CPU array (fixture_maps.hpp)
// on the array core.
#include "fixture_maps.hpp"

#include "array/array.hpp"

#include <bpftime/handlers/bpf_defs.hpp>
#include <bpftime/handlers/handler.hpp>
#include <bpftime/handlers/registry.hpp>
#include <bpftime/vm/helper_proto.hpp>

namespace fixture_maps {

std::atomic<uint32_t> put_calls{ 0 };
std::atomic<uint32_t> open_calls{ 0 }, close_calls{ 0 };

namespace {

using namespace bpftime;
using namespace bpftime::handlers;
namespace array = bpftime::maps_userspace::array;

constexpr uint32_t PROG_ARRAY_MAGIC = 0x50524f47; // "PROG"
constexpr uint32_t PERCPU_MAGIC = 0x50435055;     // "PCPU"

// --- prog array: 4-byte program ids, NO_ID when empty ----------------------

int prog_create(const map_create_args *a, void **out, char *err, size_t len)
{
	return array::create(a, array::params{ PROG_ARRAY_MAGIC, 1, 0, 0, 0xff },
			     out, err, len);
}
void *prog_lookup(void *s, const void *key)
{
	return array::lookup(static_cast<array::state *>(s), key);
}
int prog_lookup_copy(void *s, const void *key, void *value)
{
	auto *st = static_cast<array::state *>(s);
	void *v = array::lookup(st, key);
	uint32_t id = NO_ID;
	if (v)
		memcpy(&id, v, sizeof(id));
	if (id == NO_ID)
		return -ENOENT;
	memcpy(value, &id, sizeof(id));
	return 0;
}
int prog_update(void *s, const void *key, const void *value, uint64_t flags)
{
	return array::update(static_cast<array::state *>(s), key, value, flags);
}
int prog_delete(void *s, const void *key)
{
	auto *st = static_cast<array::state *>(s);
	uint32_t id = NO_ID;
	if (prog_lookup_copy(s, key, &id) != 0)
		return -ENOENT;
	return array::clear(st, key, 0xff);
}
// The kernel's prog_fd_array_get_ptr takes any program here: the type
// check (bpf_prog_map_compatible) is the real type's to make.
int prog_get_ptr(void *, const map_fd_object *obj)
{
	return obj->size >= sizeof(map_fd_object) ? 0 : -EINVAL;
}
void prog_put_ptr(void *, uint32_t)
{
	put_calls.fetch_add(1);
}

const map_ops prog_ops = {
	.size = sizeof(map_ops),
	.abi_version = MAP_OPS_ABI_VERSION,
	.layout_version = shm::LAYOUT_VERSION,
	.map_type = PROG_ARRAY_TYPE,
	.type_name = "test_prog_array",
	.provider = "native_test",
	.create = prog_create,
	.destroy = array::destroy,
	.lookup = prog_lookup,
	.lookup_copy = prog_lookup_copy,
	.update = prog_update,
	.delete_elem = prog_delete,
	.get_next_key = array::get_next_key,
	.state_magic = PROG_ARRAY_MAGIC,
	.state_version = 1,
	.fd_kind = MAP_FD_PROG,
	.fd_get_ptr = prog_get_ptr,
	.fd_put_ptr = prog_put_ptr,
};

// --- per-CPU array: one 8-byte aligned value per possible CPU --------------

int percpu_create(const map_create_args *a, void **out, char *err, size_t len)
{
	return array::create(a,
			     array::params{ PERCPU_MAGIC, 1,
					    percpu_value_size(a->value_size), 0,
					    0 },
			     out, err, len);
}
uint32_t percpu_user_value_size(const map_create_args *a)
{
	return percpu_value_size(a->value_size);
}
int percpu_lookup_copy(void *s, const void *key, void *value)
{
	return array::lookup_copy(static_cast<array::state *>(s), key, value);
}
int percpu_delete(void *, const void *)
{
	return -EINVAL;
}

// Nothing local to make: the point is who calls it and when.
int percpu_open(void *state, void **local, char *, size_t)
{
	open_calls.fetch_add(1);
	*local = state;
	return 0;
}
void percpu_close(void *)
{
	close_calls.fetch_add(1);
}

uint64_t percpu_helper(uint64_t r1, uint64_t, uint64_t, uint64_t, uint64_t)
{
	return r1 + 1000;
}
const vm::helper_proto percpu_helpers[] = { {
	.id = PERCPU_HELPER_ID,
	.name = "test_percpu_helper",
	.ret = vm::RET_INTEGER,
	.args = { vm::ARG_ANYTHING },
	.fn = percpu_helper,
} };

const map_ops percpu_ops = {
	.size = sizeof(map_ops),
	.abi_version = MAP_OPS_ABI_VERSION,
	.layout_version = shm::LAYOUT_VERSION,
	.map_type = PERCPU_ARRAY_TYPE,
	.type_name = "test_percpu_array",
	.provider = "native_test",
	.create = percpu_create,
	.destroy = array::destroy,
	.lookup = prog_lookup,
	.lookup_copy = percpu_lookup_copy,
	.update = prog_update,
	.delete_elem = percpu_delete,
	.get_next_key = array::get_next_key,
	.state_magic = PERCPU_MAGIC,
	.state_version = 1,
	.open = percpu_open,
	.close = percpu_close,
	.user_value_size = percpu_user_value_size,
	.helpers = percpu_helpers,
	.helper_count = 1,
};

} // namespace

const map_ops *prog_array_ops() noexcept
{
	return &prog_ops;
}
const map_ops *percpu_array_ops() noexcept
{
	return &percpu_ops;
}

} // namespace fixture_maps
