// lru_percpu_hash_map.cpp: BPF_MAP_TYPE_LRU_PERCPU_HASH (the kernel's
// htab_lru_percpu_map_ops): the LRU hash core (lru/lru.hpp) with one value
// per possible CPU in each element (percpu/percpu.hpp). A program reads and
// writes its CPU's value; user space every CPU's.
#include "lru/lru.hpp"
#include "percpu/percpu.hpp"

#include <bpftime/handlers/bpf_defs.hpp>
#include <bpftime/maps_userspace/maps_userspace.hpp>

namespace bpftime::maps_userspace {
namespace {

using namespace bpftime::handlers;

constexpr uint32_t LRU_PERCPU_HASH_MAGIC = 0x4c525550; // "LRUP"
// The layout of lru::state and htab::state. 1: the first versioned state.
constexpr uint32_t LRU_PERCPU_HASH_STATE_VERSION = 1;

int lru_percpu_create(const map_create_args *a, void **out, char *err,
		      size_t err_len)
{
	return lru::create(a,
			   lru::params{ LRU_PERCPU_HASH_MAGIC,
					LRU_PERCPU_HASH_STATE_VERSION, true },
			   out, err, err_len);
}

void *lru_percpu_lookup(void *sp, const void *key)
{
	auto *s = static_cast<lru::state *>(sp);
	void *v = lru::lookup(s, key);
	if (!v)
		return nullptr;
	htab::state *t = s->table();
	return static_cast<uint8_t *>(v) +
	       percpu::this_cpu_offset(t->value_size, t->slot_size);
}

int lru_percpu_lookup_copy(void *s, const void *key, void *value)
{
	return htab::lookup_copy(static_cast<lru::state *>(s)->table(), key,
				 value);
}

int lru_percpu_update(void *s, const void *key, const void *value,
		      uint64_t flags)
{
	return lru::update(static_cast<lru::state *>(s), key, value, flags,
			   false);
}

int lru_percpu_prog_update(void *s, const void *key, const void *value,
			   uint64_t flags)
{
	return lru::update(static_cast<lru::state *>(s), key, value, flags,
			   true);
}

int lru_percpu_delete(void *s, const void *key)
{
	return lru::remove(static_cast<lru::state *>(s), key);
}

int lru_percpu_lookup_and_delete(void *s, const void *key, void *value)
{
	return lru::lookup_and_delete(static_cast<lru::state *>(s), key, value);
}

const map_ops ops = {
	.size = sizeof(map_ops),
	.abi_version = MAP_OPS_ABI_VERSION,
	.layout_version = shm::LAYOUT_VERSION,
	.map_type = BPF_MAP_TYPE_LRU_PERCPU_HASH,
	.type_name = "BPF_MAP_TYPE_LRU_PERCPU_HASH",
	.provider = PROVIDER,
	.create = lru_percpu_create,
	.destroy = lru::destroy,
	.lookup = lru_percpu_lookup,
	.lookup_copy = lru_percpu_lookup_copy,
	.update = lru_percpu_update,
	.delete_elem = lru_percpu_delete,
	.get_next_key = lru::get_next_key,
	.lookup_batch = lru::lookup_batch,
	.state_magic = LRU_PERCPU_HASH_MAGIC,
	.state_version = LRU_PERCPU_HASH_STATE_VERSION,
	.user_value_size = percpu::user_value_size,
	.lookup_and_delete = lru_percpu_lookup_and_delete,
	.prog_update = lru_percpu_prog_update,
	.bind_runtime = percpu::bind_runtime,
};

} // namespace

void *percpu::lru_percpu_hash_slot(void *state, const void *key)
{
	// bpf_map_lookup_percpu_elem marks the element as a lookup does.
	return lru::lookup(static_cast<lru::state *>(state), key);
}

const handlers::map_ops *lru_percpu_hash_map_ops() noexcept
{
	return &ops;
}

} // namespace bpftime::maps_userspace
