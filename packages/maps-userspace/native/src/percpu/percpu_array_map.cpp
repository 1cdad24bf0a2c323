// percpu_array_map.cpp: BPF_MAP_TYPE_PERCPU_ARRAY (the kernel's
// kernel/bpf/arraymap.c, percpu_array_map_ops): the array core with one
// value per possible CPU in each slot (percpu.hpp). No lock: a program
// writes its CPU's value in place, user space copies whole slots, as the
// kernel (a reader racing a writer of the same value sees a mix of bytes).
//
// Also the helper bpf_map_lookup_percpu_elem for every per-CPU type.
#include "array/array.hpp"
#include "map_common.hpp"
#include "percpu/percpu.hpp"

#include <bpftime/handlers/bpf_defs.hpp>
#include <bpftime/maps_userspace/maps_userspace.hpp>
#include <bpftime/vm/helper_proto.hpp>

namespace bpftime::maps_userspace {
namespace {

using namespace bpftime::handlers;

constexpr uint32_t PERCPU_ARRAY_MAGIC = 0x50434152; // "PCAR"
// The layout of array::state. 1: the first versioned state.
constexpr uint32_t PERCPU_ARRAY_STATE_VERSION = 1;

// The kernel's ARRAY_CREATE_FLAG_MASK, less what per-CPU arrays refuse
// (array_map_alloc_check: BPF_F_MMAPABLE only for plain arrays).
constexpr uint32_t CREATE_FLAGS = BPF_F_NUMA_NODE | BPF_F_ACCESS_MASK |
				  BPF_F_PRESERVE_ELEMS | BPF_F_INNER_MAP;

int percpu_array_create(const map_create_args *a, void **out, char *err,
			size_t err_len)
{
	// array_map_alloc_check: a per-CPU value is limited to
	// PCPU_MIN_UNIT_SIZE (32 KiB), E2BIG above.
	if (a->key_size == 4 && a->value_size > (32u << 10) &&
	    a->max_entries && !(a->map_flags & ~CREATE_FLAGS))
		return set_error(err, err_len, E2BIG,
				 "value size %u is above the 32768 bytes of a "
				 "per-CPU value",
				 a->value_size);
	return array::create(
		a,
		array::params{ PERCPU_ARRAY_MAGIC, PERCPU_ARRAY_STATE_VERSION,
			       percpu_value_size(a->value_size), CREATE_FLAGS,
			       0 },
		out, err, err_len);
}

[[gnu::noinline]] void *percpu_array_lookup_slow(array::state *s,
						 uint32_t index)
{
	return s->slot(index) +
	       percpu::this_cpu_offset(s->value_size, s->slot_size);
}

void *percpu_array_lookup(void *sp, const void *key)
{
	auto *s = static_cast<array::state *>(sp);
	uint32_t index;
	memcpy(&index, key, sizeof(index));
	if (index >= s->max_entries) [[unlikely]]
		return nullptr;
	int cpu = percpu::program_cpu();
	if (cpu < 0) [[unlikely]]
		return percpu_array_lookup_slow(s, index);
	return s->slot(index) +
	       percpu::cpu_offset(cpu, s->value_size, s->slot_size);
}

int percpu_array_lookup_copy(void *s, const void *key, void *value)
{
	return array::lookup_copy(static_cast<array::state *>(s), key, value);
}

// User space: every CPU's value.
int percpu_array_update(void *s, const void *key, const void *value,
			uint64_t flags)
{
	return array::update(static_cast<array::state *>(s), key, value,
			     flags);
}

// A program: the running CPU's value only (the kernel's
// array_map_update_elem on a per-CPU array from a program).
int percpu_array_prog_update(void *sp, const void *key, const void *value,
			     uint64_t flags)
{
	auto *s = static_cast<array::state *>(sp);
	if ((flags & ~BPF_F_LOCK) > BPF_EXIST) [[unlikely]]
		return -EINVAL;
	uint32_t index;
	memcpy(&index, key, sizeof(index));
	if (index >= s->max_entries) [[unlikely]]
		return -E2BIG;
	if (flags & BPF_NOEXIST) [[unlikely]]
		return -EEXIST;
	if (flags & BPF_F_LOCK) [[unlikely]]
		return -EINVAL;
	memcpy(s->slot(index) +
		       percpu::this_cpu_offset(s->value_size, s->slot_size),
	       value, s->value_size);
	return 0;
}

// The kernel's percpu_array_map_gen_lookup: the array's slot of the index,
// plus the run's CPU times the value stride (the JIT reads the CPU slot the
// way run_slot() does).
int percpu_array_gen_lookup(void *sp, map_inline_lookup *out)
{
	auto *s = static_cast<array::state *>(sp);
	int rc = array::gen_lookup(s, out);
	if (rc != 0)
		return rc;
	out->kind = MAP_INLINE_PERCPU_ARRAY;
	out->cpu_stride = percpu::value_stride(s->value_size);
	return 0;
}

int percpu_array_delete(void *, const void *)
{
	return -EINVAL;
}

uint64_t h_lookup_percpu_elem(uint64_t map, uint64_t key, uint64_t cpu,
			      uint64_t, uint64_t)
{
	auto *m = reinterpret_cast<const map_instance *>(map);
	const void *k = reinterpret_cast<const void *>(key);
	void *slot = nullptr;
	uint32_t slot_size;
	switch (m->map_type) {
	case BPF_MAP_TYPE_PERCPU_ARRAY:
		slot = percpu::percpu_array_slot(m->state, k);
		break;
	case BPF_MAP_TYPE_PERCPU_HASH:
		slot = percpu::percpu_hash_slot(m->state, k);
		break;
	case BPF_MAP_TYPE_LRU_PERCPU_HASH:
		slot = percpu::lru_percpu_hash_slot(m->state, k);
		break;
	default:
		return 0;
	}
	slot_size = m->user_value_size;
	return reinterpret_cast<uint64_t>(
		percpu::cpu_value(slot, m->value_size, slot_size, cpu));
}

const vm::helper_proto helpers[] = { {
	.id = vm::BPF_FUNC_map_lookup_percpu_elem,
	.name = "map_lookup_percpu_elem",
	.ret = vm::RET_PTR_TO_MAP_VALUE_OR_NULL,
	.args = { vm::ARG_CONST_MAP_PTR, vm::ARG_PTR_TO_MAP_KEY,
		  vm::ARG_ANYTHING },
	.fn = h_lookup_percpu_elem,
} };

const map_ops ops = {
	.size = sizeof(map_ops),
	.abi_version = MAP_OPS_ABI_VERSION,
	.layout_version = shm::LAYOUT_VERSION,
	.map_type = BPF_MAP_TYPE_PERCPU_ARRAY,
	.type_name = "BPF_MAP_TYPE_PERCPU_ARRAY",
	.provider = PROVIDER,
	.create = percpu_array_create,
	.destroy = array::destroy,
	.lookup = percpu_array_lookup,
	.lookup_copy = percpu_array_lookup_copy,
	.update = percpu_array_update,
	.delete_elem = percpu_array_delete,
	.get_next_key = array::get_next_key,
	.lookup_batch = array::lookup_batch,
	.state_magic = PERCPU_ARRAY_MAGIC,
	.state_version = PERCPU_ARRAY_STATE_VERSION,
	.user_value_size = percpu::user_value_size,
	.helpers = helpers,
	.helper_count = 1,
	.gen_lookup = percpu_array_gen_lookup,
	.prog_update = percpu_array_prog_update,
	.bind_runtime = percpu::bind_runtime,
};

} // namespace

int percpu::current_cpu_slow() noexcept
{
	return sched_getcpu();
}

std::atomic<int64_t> percpu::cpu_slot_tls_offset{
	handlers::cpu_slot_tls_offset()
};

void percpu::bind_runtime(const handlers::map_runtime *rt)
{
	if (rt && rt->size >= offsetof(handlers::map_runtime,
				       cpu_slot_tls_offset) +
				      sizeof(rt->cpu_slot_tls_offset))
		cpu_slot_tls_offset.store(rt->cpu_slot_tls_offset,
					  std::memory_order_relaxed);
}

void *percpu::percpu_array_slot(void *state, const void *key)
{
	return array::lookup(static_cast<array::state *>(state), key);
}

const handlers::map_ops *percpu_array_map_ops() noexcept
{
	return &ops;
}

} // namespace bpftime::maps_userspace
