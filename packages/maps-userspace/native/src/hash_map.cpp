// hash_map.cpp: BPF_MAP_TYPE_HASH (the kernel's kernel/bpf/hashtab.c
// semantics), for any number of threads in any number of processes at once:
// the hash table core (htab/htab.hpp) with the kernel's attribute checks for
// plain hash maps. The algorithm and its guarantees are described there.
#include "htab/htab.hpp"
#include "map_common.hpp"

#include <bpftime/handlers/bpf_defs.hpp>
#include <bpftime/maps_userspace/maps_userspace.hpp>

namespace bpftime::maps_userspace {
namespace {

using namespace bpftime::handlers;

constexpr uint32_t HASH_MAGIC = 0x48415348; // "HASH"
// The layout of htab::state. 1: the first versioned state.
constexpr uint32_t HASH_STATE_VERSION = 1;

// The kernel's HTAB_CREATE_FLAG_MASK.
constexpr uint32_t CREATE_FLAGS = BPF_F_NO_PREALLOC | BPF_F_NO_COMMON_LRU |
				  BPF_F_NUMA_NODE | BPF_F_ACCESS_MASK |
				  BPF_F_ZERO_SEED;

int hash_create(const map_create_args *a, void **out, char *err, size_t err_len)
{
	// The kernel's htab_map_alloc_check: in the mask, but only for LRU.
	// The core checks sizes and the mask first; this comes after them.
	if ((a->map_flags & BPF_F_NO_COMMON_LRU) &&
	    !(a->map_flags & ~CREATE_FLAGS) && a->key_size && a->value_size &&
	    a->max_entries)
		return set_error(err, err_len, EINVAL,
				 "BPF_F_NO_COMMON_LRU is for LRU hash maps");
	return htab::create(a,
			    htab::params{ HASH_MAGIC, HASH_STATE_VERSION, 0,
					  CREATE_FLAGS },
			    out, err, err_len);
}

void *hash_lookup(void *state, const void *key)
{
	return htab::lookup(static_cast<htab::state *>(state), key);
}

int hash_lookup_copy(void *state, const void *key, void *value)
{
	return htab::lookup_copy(static_cast<htab::state *>(state), key, value);
}

int hash_update(void *state, const void *key, const void *value, uint64_t flags)
{
	return htab::update(static_cast<htab::state *>(state), key, value, flags);
}

int hash_delete(void *state, const void *key)
{
	return htab::remove(static_cast<htab::state *>(state), key);
}

int hash_lookup_and_delete(void *state, const void *key, void *value)
{
	return htab::lookup_and_delete(static_cast<htab::state *>(state), key,
				       value);
}

// The state is used in place; it is checked first.
int hash_open(void *state, void **local, char *err, size_t err_len)
{
	if (int r = htab::check_state(state, err, err_len))
		return r;
	*local = state;
	return 0;
}

const map_ops ops = {
	.size = sizeof(map_ops),
	.abi_version = MAP_OPS_ABI_VERSION,
	.layout_version = shm::LAYOUT_VERSION,
	.map_type = BPF_MAP_TYPE_HASH,
	.type_name = "BPF_MAP_TYPE_HASH",
	.provider = PROVIDER,
	.create = hash_create,
	.destroy = htab::destroy,
	.lookup = hash_lookup,
	.lookup_copy = hash_lookup_copy,
	.update = hash_update,
	.delete_elem = hash_delete,
	.get_next_key = htab::get_next_key,
	.lookup_batch = htab::lookup_batch,
	.state_magic = HASH_MAGIC,
	.state_version = HASH_STATE_VERSION,
	.open = hash_open,
	.for_each = htab::for_each,
	.lookup_and_delete = hash_lookup_and_delete,
};

} // namespace

const handlers::map_ops *hash_map_ops() noexcept
{
	return &ops;
}

} // namespace bpftime::maps_userspace
