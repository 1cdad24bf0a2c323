// lru_hash_map.cpp: BPF_MAP_TYPE_LRU_HASH (the kernel's htab_lru_map_ops):
// the LRU hash core (lru/lru.hpp), whose header describes the eviction
// policy, the per-CPU lists of BPF_F_NO_COMMON_LRU and the locking.
#include "lru/lru.hpp"

#include <bpftime/handlers/bpf_defs.hpp>
#include <bpftime/maps_userspace/maps_userspace.hpp>

namespace bpftime::maps_userspace {
namespace {

using namespace bpftime::handlers;

constexpr uint32_t LRU_HASH_MAGIC = 0x4c525548; // "LRUH"
// The layout of lru::state and htab::state. 1: the first versioned state.
constexpr uint32_t LRU_HASH_STATE_VERSION = 1;

int lru_hash_create(const map_create_args *a, void **out, char *err,
		    size_t err_len)
{
	return lru::create(a,
			   lru::params{ LRU_HASH_MAGIC, LRU_HASH_STATE_VERSION,
					false },
			   out, err, err_len);
}

void *lru_hash_lookup(void *s, const void *key)
{
	return lru::lookup(static_cast<lru::state *>(s), key);
}

int lru_hash_lookup_copy(void *s, const void *key, void *value)
{
	return htab::lookup_copy(static_cast<lru::state *>(s)->table(), key,
				 value);
}

int lru_hash_update(void *s, const void *key, const void *value,
		    uint64_t flags)
{
	return lru::update(static_cast<lru::state *>(s), key, value, flags,
			   false);
}

int lru_hash_delete(void *s, const void *key)
{
	return lru::remove(static_cast<lru::state *>(s), key);
}

int lru_hash_lookup_and_delete(void *s, const void *key, void *value)
{
	return lru::lookup_and_delete(static_cast<lru::state *>(s), key, value);
}

const map_ops ops = {
	.size = sizeof(map_ops),
	.abi_version = MAP_OPS_ABI_VERSION,
	.layout_version = shm::LAYOUT_VERSION,
	.map_type = BPF_MAP_TYPE_LRU_HASH,
	.type_name = "BPF_MAP_TYPE_LRU_HASH",
	.provider = PROVIDER,
	.create = lru_hash_create,
	.destroy = lru::destroy,
	.lookup = lru_hash_lookup,
	.lookup_copy = lru_hash_lookup_copy,
	.update = lru_hash_update,
	.delete_elem = lru_hash_delete,
	.get_next_key = lru::get_next_key,
	.lookup_batch = lru::lookup_batch,
	.state_magic = LRU_HASH_MAGIC,
	.state_version = LRU_HASH_STATE_VERSION,
	.lookup_and_delete = lru_hash_lookup_and_delete,
};

} // namespace

const handlers::map_ops *lru_hash_map_ops() noexcept
{
	return &ops;
}

} // namespace bpftime::maps_userspace
