// map_ops.hpp: the extension point through which map packages provide map
// types to the registry (bpftime's bpftime_register_map_ops, the kernel's
// struct bpf_map_ops).
//
// Every native addon is its own shared object with its own copy of the static
// cores it links, so the contract between a map package and the registry is a
// plain C struct of function pointers, not a C++ interface: it crosses shared
// object boundaries and compiler versions. It carries its own size (like
// libbpf's OPTS structs): a registry built with a newer, longer struct reads
// the fields an older provider did not have as null, and a provider built with
// a longer struct is accepted as long as the fields it added are unknown here
// only. `abi_version` changes only when an existing field changes meaning.
//
//   static const bpftime::handlers::map_ops my_ops = {
//       .size = sizeof(bpftime::handlers::map_ops),
//       .abi_version = bpftime::handlers::MAP_OPS_ABI_VERSION,
//       .layout_version = bpftime::shm::LAYOUT_VERSION,
//       .map_type = 1500, .type_name = "my_map", .provider = "my-package",
//       .create = ..., .destroy = ..., .lookup = ..., ...
//   };
//   bpftime::handlers::register_map_ops(&my_ops);   // C++ (agent, tools)
//   // Node: export the table as an External tagged MAP_OPS_TYPE_TAG and pass
//   // it to registerMapOps() of @bpftime/handlers.
//
// The implementation's state lives in the shared-memory segment and must be
// position independent: offsets only, since every process maps the segment at
// a different address. The registry stores where the state is; each process
// hands the functions its own address of it.
//
// Which process and thread calls what:
//   create, destroy   the control plane, under the registry's mutex
//   lookup, update, delete_elem, get_next_key, push, pop, peek
//                     any thread of any process at any time, concurrently,
//                     including from programs (helpers): they must be safe
//                     for that, never allocate process memory, never throw,
//                     never block for long
//   lookup_copy       the control plane (bpf(BPF_MAP_LOOKUP_ELEM), Node)
//
// Errors are negative errno values, the kernel's for the same case (ENOENT,
// EEXIST, E2BIG, EINVAL ...).
#pragma once

#include <cstddef>
#include <cstdint>

namespace bpftime::handlers {

inline constexpr uint32_t MAP_OPS_ABI_VERSION = 1;

// What a create function receives: the kernel's BPF_MAP_CREATE attributes
// after the registry's generic checks (name, access flags, references).
struct map_create_args {
	uint32_t size; // sizeof(map_create_args) of the registry
	uint32_t map_type;
	uint32_t key_size;
	uint32_t value_size;
	uint32_t max_entries;
	uint32_t map_flags;
	uint32_t inner_map_type; // map-in-map: the inner map's type, else 0
	uint32_t reserved;
	uint64_t map_extra;
	const char *name;      // NUL-terminated, at most 15 bytes
	void *segment_manager; // bpftime::shm::segment_manager *
};

struct map_ops {
	uint32_t size;           // sizeof(map_ops) of the provider's build
	uint32_t abi_version;    // MAP_OPS_ABI_VERSION
	uint32_t layout_version; // bpftime::shm::LAYOUT_VERSION of the provider
	uint32_t map_type;       // kernel BPF_MAP_TYPE_* or a bpftime extension
	const char *type_name;   // "BPF_MAP_TYPE_HASH"
	const char *provider;    // "@bpftime/maps-userspace"

	// Validates the attributes (the kernel's map_alloc_check) and builds the
	// state in the segment. Returns 0 and sets *state, or a negative errno
	// with a message in err (err_len bytes, NUL-terminated).
	int (*create)(const map_create_args *args, void **state, char *err,
		      size_t err_len);
	// Frees everything create allocated. Never fails.
	void (*destroy)(void *segment_manager, void *state);

	// The value of key in place, or nullptr (the kernel's map_lookup_elem
	// from a program). The pointer stays valid while the map exists.
	void *(*lookup)(void *state, const void *key);
	// Copies the value of key into value; -ENOENT when absent. The copy is
	// of one consistent value even while others update it.
	int (*lookup_copy)(void *state, const void *key, void *value);
	// flags: BPF_ANY, BPF_NOEXIST, BPF_EXIST (and BPF_F_LOCK).
	int (*update)(void *state, const void *key, const void *value,
		      uint64_t flags);
	int (*delete_elem)(void *state, const void *key);
	// The key after key (key == nullptr or absent: the first key);
	// -ENOENT after the last key.
	int (*get_next_key)(void *state, const void *key, void *next_key);

	// Optional: nullptr when the map type has no such operation.
	int (*push)(void *state, const void *value, uint64_t flags);
	int (*pop)(void *state, void *value);
	int (*peek)(void *state, void *value);
	// The memory a BPF_F_MMAPABLE map exposes; *len gets its length.
	void *(*mmap_region)(void *state, uint64_t *len);
	// Waits until there is data to consume (ringbuf). 0 when ready,
	// -ETIMEDOUT after timeout_ms (negative: forever).
	int (*poll)(void *state, int timeout_ms);
	// The kernel's map_direct_value_addr: the address of the value that
	// BPF_PSEUDO_MAP_VALUE refers to (global data in an array map), or a
	// negative errno (-EOPNOTSUPP when the map has none).
	int (*direct_value_addr)(void *state, uint64_t *addr);
	// Optional bulk read (bpf(BPF_MAP_LOOKUP_BATCH), Node's entries()):
	// copies up to max_count entries that follow `after` in get_next_key's
	// order (after == nullptr: from the first) into keys and values, packed,
	// and sets *count; *count < max_count only at the end. An `after` that
	// was deleted meanwhile continues at the entries that followed it as
	// well as the map can tell (the hash map: the next bucket). 0 or a
	// negative errno. Without it the registry walks get_next_key and
	// lookup_copy.
	int (*lookup_batch)(void *state, const void *after, uint32_t max_count,
			    void *keys, void *values, uint32_t *count);
};

// The napi_type_tag that an External holding a `const map_ops *` carries, so
// that the registry of another addon never reads a foreign pointer.
inline constexpr uint64_t MAP_OPS_TYPE_TAG_LOWER = 0x6270667469d5e101ULL;
inline constexpr uint64_t MAP_OPS_TYPE_TAG_UPPER = 0x4d41504f50533031ULL;

} // namespace bpftime::handlers
