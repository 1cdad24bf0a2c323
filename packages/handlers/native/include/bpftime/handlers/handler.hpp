// handler.hpp: what the registry stores in the shared-memory segment.
//
// Layout (all in the segment of bpftime::shm, found by name):
//
//   "bpftime.handlers.registry"  registry_shared: capacity, the registry's
//                                robust mutex, the change counter, the
//                                recovery record, the offset of the slots
//   slots[capacity]              one 16-byte slot per fd-like id
//   handler_object (one each)    std::variant of the five handler types
//   map state                    owned by the map type's implementation,
//                                behind its map_state_header (map_ops.hpp)
//
// A slot's `word` holds the handler kind in its low 8 bits and the slot's
// generation above. Readers load it (acquire) without any lock, then follow
// `object`; writers change slots only under registry_shared::mutex and publish
// a slot by storing `word` last (release), so a reader sees either nothing or
// a complete handler. The generation grows with every create, so a handle
// {id, generation} kept across a release and a reuse of the id is detected as
// stale.
//
// Every type here is either trivially copyable or a Boost container with the
// segment allocator, offset-based, with its size asserted: changing any of
// them bumps REGISTRY_LAYOUT_VERSION.
#pragma once

#include <bpftime/handlers/attach_kinds.hpp>
#include <bpftime/shm/robust_mutex.hpp>
#include <bpftime/shm/segment.hpp>

#include <boost/interprocess/containers/string.hpp>
#include <boost/interprocess/containers/vector.hpp>

#include <atomic>
#include <cstdint>
#include <optional>
#include <string_view>
#include <type_traits>
#include <variant>

namespace bpftime::handlers {

using shm_string = boost::interprocess::basic_string<
	char, std::char_traits<char>, shm::allocator<char>>;
template <class T>
using shm_vector = boost::interprocess::vector<T, shm::allocator<T>>;

// No handler: an absent inner map, BTF object or link target.
inline constexpr uint32_t NO_ID = 0xffffffffu;
// bpftime's DEFAULT_MAX_FD_COUNT.
inline constexpr uint32_t DEFAULT_MAX_FD_COUNT = 6144;
inline constexpr uint32_t MAX_FD_COUNT_LIMIT = 1u << 20;

inline constexpr const char *REGISTRY_OBJECT_NAME = "bpftime.handlers.registry";
// "BPFREGIS"
inline constexpr uint64_t REGISTRY_MAGIC = 0x5349474552465042ULL;
// Version of the handler table: every structure in this file (each size
// asserted). Bumped by any change to one of them: a process of another
// version refuses the registry (EPROTONOSUPPORT) instead of reading it. Map
// states are not covered: each map type versions its own state
// (map_state_header, map_ops::state_version; packages/shm/README.md has the
// rule).
// 2: map_handler gained the frozen flag and the count of writers
// (BPF_MAP_FREEZE).
// 3: map states no longer covered by this version; the states of
// @bpftime/maps-userspace gained their map_state_header, so segments written
// under 2 are refused here rather than by each map.
// 4: link_handler gained the count of runs a fault ended (faults).
// 5: handler_object gained its owner (the creating process, its load).
inline constexpr uint32_t REGISTRY_LAYOUT_VERSION = 5;

enum class handler_kind : uint8_t {
	empty = 0,
	map = 1,
	prog = 2,
	link = 3,
	perf_event = 4,
	btf = 5,
};

// The kernel's BPF_MAP_CREATE attributes, as the registry keeps them.
struct map_attr {
	uint32_t map_type;
	uint32_t key_size;
	uint32_t value_size;
	uint32_t max_entries;
	uint32_t map_flags;
	uint32_t inner_map_id; // NO_ID unless map-in-map
	uint32_t btf_id;       // BTF handler id or NO_ID
	uint32_t btf_key_type_id;
	uint32_t btf_value_type_id;
	uint32_t btf_vmlinux_value_type_id;
	uint32_t numa_node;
	uint32_t map_ifindex;
	uint64_t map_extra;
	char name[16]; // BPF_OBJ_NAME_LEN, NUL-terminated
};
static_assert(sizeof(map_attr) == 72);
static_assert(std::is_trivially_copyable_v<map_attr>);

struct map_handler {
	map_attr attr;
	// The implementation's state, as an offset from the segment manager
	// (the same in every process).
	int64_t state_offset;
	// BPF_MAP_FREEZE (the kernel's map->frozen): 1 once user space may no
	// longer write the map, 0 before; never cleared while the map lives.
	// Accessed through std::atomic_ref, by every process: written by
	// map_instance::freeze() under registry_shared::mutex, read without it.
	uint32_t frozen;
	// Writes from user space in progress (the kernel's map->writecnt as
	// bpf_map_write_active_inc() keeps it for BPF_MAP_UPDATE_ELEM and the
	// other syscall-side writes): freeze() fails with EBUSY while it is not
	// 0. Programs' writes are not counted. Through std::atomic_ref.
	uint32_t writers;
};
static_assert(sizeof(map_handler) == 88);
static_assert(std::is_trivially_copyable_v<map_handler>);
static_assert(alignof(map_handler) == 8);

struct prog_handler {
	explicit prog_handler(const shm::allocator<char> &a)
		: license(a), insns(a), fd_array(a), map_ids(a)
	{
	}
	uint32_t prog_type = 0;
	uint32_t expected_attach_type = 0;
	uint32_t attach_btf_id = 0;
	uint32_t prog_flags = 0;
	uint32_t kern_version = 0;
	char name[16] = {};
	shm_string license;
	shm_vector<uint64_t> insns;     // raw 8-byte instructions
	shm_vector<uint32_t> fd_array;  // map ids for BPF_PSEUDO_MAP_IDX
	shm_vector<uint32_t> map_ids;   // every map the program uses, sorted
};
static_assert(sizeof(prog_handler) == 168);

struct link_handler {
	uint32_t prog_id;
	uint32_t target_id; // a perf_event handler, or NO_ID
	uint32_t attach_type;
	uint32_t flags;
	uint64_t cookie; // bpf_get_attach_cookie()
	// Runs of the link's program that a SIGSEGV or SIGBUS ended, in every
	// process (the agent adds its count: registry::add_link_faults).
	uint64_t faults;
};
static_assert(sizeof(link_handler) == 32);

struct perf_event_handler {
	explicit perf_event_handler(const shm::allocator<char> &a)
		: path(a), symbol(a), custom_name(a)
	{
	}
	uint32_t type = 0; // perf_event_type (attach_kinds.hpp)
	int32_t pid = -1;  // -1: every process
	uint64_t offset = 0;
	uint64_t ref_ctr_offset = 0;
	int32_t syscall_id = -1; // -1: every system call
	uint32_t syscall_exit = 0;
	uint64_t custom_config = 0;
	shm_string path;
	shm_string symbol;
	shm_string custom_name;
};
static_assert(sizeof(perf_event_handler) == 136);

struct btf_handler {
	explicit btf_handler(const shm::allocator<char> &a) : data(a)
	{
	}
	shm_vector<uint8_t> data;
};
static_assert(sizeof(btf_handler) == 32);

using handler_variant = std::variant<map_handler, prog_handler, link_handler,
				     perf_event_handler, btf_handler>;

// The process that created a handler, and the load it belongs to until that
// load commits (registry::begin_load, end_load): a loader that dies before
// committing leaves handlers whose load is not 0 and whose process is gone,
// which the next opener releases (registry::roll_back_dead_loads). A pid alone
// could be reused: the process's start time (field 22 of /proc/<pid>/stat,
// clock ticks since boot) tells a new process from the old one. pid 0: made
// by no known process (never rolled back).
struct handler_owner {
	int32_t pid;
	uint32_t load; // 0: not in an unfinished load
	uint64_t start_time;
};
static_assert(sizeof(handler_owner) == 16);

struct handler_object {
	handler_variant value;
	handler_owner owner;
};
static_assert(sizeof(handler_object) == 192);

struct slot {
	std::atomic<uint64_t> word;  // kind | generation << 8
	std::atomic<int64_t> object; // handler_object, offset from manager
};
static_assert(sizeof(slot) == 16);
static_assert(std::atomic<uint64_t>::is_always_lock_free);

constexpr uint64_t slot_word(handler_kind k, uint64_t generation)
{
	return uint64_t(k) | generation << 8;
}
constexpr handler_kind word_kind(uint64_t w)
{
	return handler_kind(w & 0xff);
}
constexpr uint64_t word_generation(uint64_t w)
{
	return w >> 8;
}

// What a creator or releaser was doing, so that the next holder of the mutex
// can finish or undo it when the previous one died (lock_state::recovered).
// A release's frees are one allocator transaction too, whose last write
// clears the record (registry.cpp, free_released).
// create_txn: a create whose allocations are one allocator transaction
// (shm::segment::allocator_transaction): a creator killed in it has them all
// undone by the allocator, so recovery frees nothing. It becomes create once
// the transaction has committed, before the handler is published.
enum class pending_op : uint32_t {
	none = 0,
	create = 1,
	release = 2,
	create_txn = 3,
};

struct pending_record {
	uint32_t op;    // pending_op
	uint32_t id;
	uint32_t stage; // create: 1 object built, 2 map state built; release: 1 unpublished
	uint32_t map_type;
	int64_t object; // handler_object offset, 0 if none
	int64_t state;  // map state offset, 0 if none
};
static_assert(sizeof(pending_record) == 32);

struct registry_shared {
	uint64_t magic;
	uint32_t capacity;
	uint32_t layout_version; // REGISTRY_LAYOUT_VERSION
	int64_t slots_offset; // from the segment manager
	shm::robust_mutex mutex; // every mutation of slots and handlers
	std::atomic<uint64_t> change_counter;
	std::atomic<uint32_t> live;
	uint32_t reserved1;
	pending_record pending; // under mutex
};
static_assert(sizeof(registry_shared) == 112);

} // namespace bpftime::handlers
