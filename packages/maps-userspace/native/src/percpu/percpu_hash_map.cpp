// percpu_hash_map.cpp: BPF_MAP_TYPE_PERCPU_HASH (the kernel's
// kernel/bpf/hashtab.c, htab_percpu_map_ops): the hash table core
// (htab/htab.hpp, its lock-free lookups and striped robust locks) with one
// value per possible CPU in each element (percpu.hpp).
//
// A program's update writes only its CPU's value (the kernel's
// htab_percpu_map_update_elem with onallcpus false): in place when the key
// exists, as the kernel does under the bucket lock, else a new element whose
// other CPUs' values are zero. User space reads and writes every CPU's.
#include "htab/htab.hpp"
#include "map_common.hpp"
#include "percpu/percpu.hpp"

#include <bpftime/handlers/bpf_defs.hpp>
#include <bpftime/maps_userspace/maps_userspace.hpp>

namespace bpftime::maps_userspace {
namespace {

using namespace bpftime::handlers;

constexpr uint32_t PERCPU_HASH_MAGIC = 0x50434853; // "PCHS"
// The layout of htab::state. 1: the first versioned state.
constexpr uint32_t PERCPU_HASH_STATE_VERSION = 1;

// The kernel's HTAB_CREATE_FLAG_MASK.
constexpr uint32_t CREATE_FLAGS = BPF_F_NO_PREALLOC | BPF_F_NO_COMMON_LRU |
				  BPF_F_NUMA_NODE | BPF_F_ACCESS_MASK |
				  BPF_F_ZERO_SEED;

int percpu_hash_create(const map_create_args *a, void **out, char *err,
		       size_t err_len)
{
	const bool valid = !(a->map_flags & ~CREATE_FLAGS) && a->key_size &&
			   a->value_size && a->max_entries;
	if (valid && (a->map_flags & BPF_F_NO_COMMON_LRU))
		return set_error(err, err_len, EINVAL,
				 "BPF_F_NO_COMMON_LRU is for LRU hash maps");
	// htab_map_alloc_check: a per-CPU value is limited to
	// PCPU_MIN_UNIT_SIZE (32 KiB).
	if (valid && a->value_size > (32u << 10))
		return set_error(err, err_len, E2BIG,
				 "value size %u is above the 32768 bytes of a "
				 "per-CPU value",
				 a->value_size);
	return htab::create(a,
			    htab::params{ PERCPU_HASH_MAGIC,
					  PERCPU_HASH_STATE_VERSION,
					  percpu_value_size(a->value_size),
					  CREATE_FLAGS },
			    out, err, err_len);
}

void *percpu_hash_lookup(void *sp, const void *key)
{
	auto *s = static_cast<htab::state *>(sp);
	void *v = htab::lookup(s, key);
	if (!v)
		return nullptr;
	int cpu = percpu::program_cpu();
	if (cpu < 0) [[unlikely]]
		cpu = percpu::current_cpu_slow();
	return static_cast<uint8_t *>(v) +
	       (cpu < 0 ? 0 : percpu::cpu_offset(cpu, s->value_size, s->slot_size));
}

int percpu_hash_lookup_copy(void *s, const void *key, void *value)
{
	return htab::lookup_copy(static_cast<htab::state *>(s), key, value);
}

int percpu_hash_update(void *s, const void *key, const void *value,
		       uint64_t flags)
{
	return htab::update(static_cast<htab::state *>(s), key, value, flags);
}

// A new element from a program: its CPU's value, zero elsewhere (the
// kernel's pcpu_init_value).
void fill_this_cpu(htab::state *s, uint32_t, uint8_t *slot, const void *value,
		   void *)
{
	memset(slot, 0, s->slot_size);
	memcpy(slot + percpu::this_cpu_offset(s->value_size, s->slot_size),
	       value, s->value_size);
}

int percpu_hash_prog_update(void *sp, const void *key, const void *value,
			    uint64_t flags)
{
	auto *s = static_cast<htab::state *>(sp);
	if ((flags & ~BPF_F_LOCK) > BPF_EXIST || (flags & BPF_F_LOCK))
		[[unlikely]] return -EINVAL;
	static constexpr htab::hooks hk{ .fill_value = fill_this_cpu };
	if ((flags & 3) == BPF_NOEXIST)
		return htab::update(s, key, value, flags, hk);
	for (;;) {
		if (void *v = htab::lookup(s, key)) {
			memcpy(static_cast<uint8_t *>(v) +
				       percpu::this_cpu_offset(s->value_size,
							       s->slot_size),
			       value, s->value_size);
			return 0;
		}
		if ((flags & 3) == BPF_EXIST)
			return -ENOENT;
		// Insert only if still absent: a key another thread inserted
		// meanwhile keeps its other CPUs' values, and is written in
		// place on the next turn.
		int r = htab::update(s, key, value, BPF_NOEXIST, hk);
		if (r != -EEXIST)
			return r;
	}
}

int percpu_hash_delete(void *s, const void *key)
{
	return htab::remove(static_cast<htab::state *>(s), key);
}

int percpu_hash_lookup_and_delete(void *s, const void *key, void *value)
{
	return htab::lookup_and_delete(static_cast<htab::state *>(s), key,
				       value);
}

const map_ops ops = {
	.size = sizeof(map_ops),
	.abi_version = MAP_OPS_ABI_VERSION,
	.layout_version = shm::LAYOUT_VERSION,
	.map_type = BPF_MAP_TYPE_PERCPU_HASH,
	.type_name = "BPF_MAP_TYPE_PERCPU_HASH",
	.provider = PROVIDER,
	.create = percpu_hash_create,
	.destroy = htab::destroy,
	.lookup = percpu_hash_lookup,
	.lookup_copy = percpu_hash_lookup_copy,
	.update = percpu_hash_update,
	.delete_elem = percpu_hash_delete,
	.get_next_key = htab::get_next_key,
	.lookup_batch = htab::lookup_batch,
	.state_magic = PERCPU_HASH_MAGIC,
	.state_version = PERCPU_HASH_STATE_VERSION,
	.user_value_size = percpu::user_value_size,
	.lookup_and_delete = percpu_hash_lookup_and_delete,
	.prog_update = percpu_hash_prog_update,
	.bind_runtime = percpu::bind_runtime,
};

} // namespace

void *percpu::percpu_hash_slot(void *state, const void *key)
{
	return htab::lookup(static_cast<htab::state *>(state), key);
}

const handlers::map_ops *percpu_hash_map_ops() noexcept
{
	return &ops;
}

} // namespace bpftime::maps_userspace
