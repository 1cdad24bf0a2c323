// map_ops.hpp: the extension point through which map packages provide map
// types to the registry (bpftime's bpftime_register_map_ops, the kernel's
// struct bpf_map_ops).
//
// A map package is built apart from the registry (its own package, perhaps
// another version or compiler), and in a target process its code may sit in
// another shared object, so the contract between a map package and the
// registry is a plain C struct of function pointers, not a C++ interface: it
// crosses shared object boundaries and compiler versions. It carries its own size (like
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
//       .state_magic = MY_MAGIC, .state_version = 1,
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
//   open, close       each process, once per map: open when the process first
//                     makes its map_instance of the map (registry::map(), a
//                     program's instantiation), close when the last holder of
//                     that instance drops it (the registry object closes, the
//                     map is released, the last program using it goes). Never
//                     under the segment's registry mutex; the registry's
//                     process-local cache mutex may be held, so neither may
//                     call back into the registry
//   lookup, update, delete_elem, get_next_key
//                     any thread of any process at any time, concurrently,
//                     including from programs (helpers): they must be safe
//                     for that, never allocate process memory, never throw,
//                     never block for long
//   lookup_copy, lookup_batch, mmap_region, direct_value_addr, consume
//                     the control plane (bpf(2) commands, Node, program
//                     instantiation)
//   fd_get_ptr, fd_put_ptr
//                     the control plane, under the registry's mutex
//   user_value_size   any thread, any time; pure
//
// State version: every map type keeps its state in the segment behind a
// map_state_header (magic + version) and declares the pair in its ops. A
// process opening a map whose header carries another magic or version than
// the registered ops speak refuses it with EPROTONOSUPPORT naming the map
// ("map 'counts' (id 3): open: state version 3 of BPF_MAP_TYPE_HASH, this
// build speaks 2"), and does not destroy it on release: a segment written by
// another build is never read as this one's layout. A type bumps its
// state_version whenever its state's layout changes; nothing else does.
//
// Errors are negative errno values, the kernel's for the same case (ENOENT,
// EEXIST, E2BIG, EINVAL ...).
#pragma once

#include <cstddef>
#include <cstdint>

namespace bpftime::vm {
struct helper_proto; // bpftime/vm/helper_proto.hpp
}

namespace bpftime::handlers {

// 2: push, pop, peek and poll were removed (nothing called them); open,
// close, fd_get_ptr, fd_put_ptr, user_value_size, helpers, consume and the
// state magic and version were added.
inline constexpr uint32_t MAP_OPS_ABI_VERSION = 2;

// The first 8 bytes of every map type's state in the segment. create writes
// it; the registry reads it (and only it) before it hands the state to open.
struct map_state_header {
	uint32_t magic;   // map_ops::state_magic
	uint32_t version; // map_ops::state_version
};
static_assert(sizeof(map_state_header) == 8);

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
	// Map-in-map (inner_map_type != 0): the rest of the inner map's
	// attributes, the template every map stored later is checked against
	// (the kernel's bpf_map_meta_alloc copies them). A provider reads them
	// only when `size` covers them.
	uint32_t inner_key_size;
	uint32_t inner_value_size;
	uint32_t inner_max_entries;
	uint32_t inner_map_flags;
};

// The kind of registry object whose ids an fd-valued map stores (the values
// of a prog array are program ids, of a map-in-map map ids, of a perf event
// array perf event ids). Numbered as handlers::handler_kind.
enum map_fd_kind : uint32_t {
	MAP_FD_NONE = 0, // ordinary values
	MAP_FD_MAP = 1,
	MAP_FD_PROG = 2,
	MAP_FD_PERF_EVENT = 4,
};

// The object user space stores into an fd-valued map, as fd_get_ptr sees
// it: the registry has checked that the id holds an object of the map's
// fd_kind. For a map: map_type, key_size, value_size, max_entries,
// map_flags of the inner map (for the kernel's bpf_map_meta_equal); for a
// program: its prog_type in `type` (the kernel's bpf_prog_map_compatible).
struct map_fd_object {
	uint32_t size; // sizeof(map_fd_object) of the registry
	uint32_t id;
	uint64_t generation;
	uint32_t type; // map type, program type, perf_event_type
	uint32_t key_size;
	uint32_t value_size;
	uint32_t max_entries;
	uint32_t map_flags;
	uint32_t reserved;
};

// One record of a ring or perf buffer, handed to consume's callback: valid
// only during the call. Return 0 to go on, non-zero to stop after this one.
using map_record_fn = int (*)(void *ctx, const void *data, uint64_t size);

// One element handed to for_each's callback: the key and the value in
// place (what a program's lookup would return). Return 0 to go on, non-zero
// to stop after this element.
using map_elem_fn = uint64_t (*)(void *ctx, const void *key, void *value);

// How the JIT may emit a program's bpf_map_lookup_elem of one map inline
// (the kernel's map_gen_lookup), filled by map_ops::gen_lookup. The address
// is in this process; the JIT bakes it into the code of a program that holds
// the map.
enum map_inline_kind : uint32_t {
	// index = *(u32 *)key; index < max_entries ? base + index * stride : 0
	MAP_INLINE_ARRAY = 1,
	// As MAP_INLINE_ARRAY, plus cpu * cpu_stride for the CPU the thread
	// runs on (per-CPU arrays): cpu is what sched_getcpu() returns, read
	// by the JIT from glibc's rseq area. Where glibc registered none, the
	// helper is called.
	MAP_INLINE_PERCPU_ARRAY = 2,
};
struct map_inline_lookup {
	uint32_t size; // sizeof(map_inline_lookup) of the caller
	uint32_t kind; // map_inline_kind
	uint64_t base;
	uint32_t stride;
	uint32_t max_entries;
	uint32_t cpu_stride;
	uint32_t reserved;
};

struct map_ops {
	uint32_t size;           // sizeof(map_ops) of the provider's build
	uint32_t abi_version;    // MAP_OPS_ABI_VERSION
	uint32_t layout_version; // bpftime::shm::LAYOUT_VERSION of the provider
	uint32_t map_type;       // kernel BPF_MAP_TYPE_* or a bpftime extension
	const char *type_name;   // "BPF_MAP_TYPE_HASH"
	const char *provider;    // the package: "@bpftime/maps-userspace"

	// Validates the attributes (the kernel's map_alloc_check) and builds the
	// state in the segment, starting with its map_state_header. Returns 0
	// and sets *state, or a negative errno with a message in err (err_len
	// bytes, NUL-terminated).
	int (*create)(const map_create_args *args, void **state, char *err,
		      size_t err_len);
	// Frees everything create allocated, given the state in the segment
	// (never what open returned). Never fails. It runs inside an allocator
	// transaction (shm::segment::allocator_transaction): a death undoes its
	// frees and its writes to the first 512 bytes of the state's block, and
	// the registry calls it again on the same state; in its other blocks it
	// must only free, never clear the offsets it frees by.
	void (*destroy)(void *segment_manager, void *state);

	// Below, `state` is what open set (the state in the segment when the
	// type has no open).

	// The value of key in place, or nullptr (the kernel's map_lookup_elem
	// from a program). The pointer stays valid while the map exists.
	void *(*lookup)(void *state, const void *key);
	// Copies the value of key (user_value_size bytes) into value; -ENOENT
	// when absent. The copy is of one consistent value even while others
	// update it.
	int (*lookup_copy)(void *state, const void *key, void *value);
	// flags: BPF_ANY, BPF_NOEXIST, BPF_EXIST (and BPF_F_LOCK).
	int (*update)(void *state, const void *key, const void *value,
		      uint64_t flags);
	int (*delete_elem)(void *state, const void *key);
	// The key after key (key == nullptr or absent: the first key);
	// -ENOENT after the last key.
	int (*get_next_key)(void *state, const void *key, void *next_key);

	// Optional from here: nullptr when the map type has no such operation.

	// The memory a BPF_F_MMAPABLE map exposes; *len gets its length.
	// Caller: map_instance::mmap_region().
	void *(*mmap_region)(void *state, uint64_t *len);
	// The kernel's map_direct_value_addr: the address of the value that
	// BPF_PSEUDO_MAP_VALUE refers to (global data in an array map), or a
	// negative errno (-EOPNOTSUPP when the map has none). Caller: program
	// instantiation (the lddw resolver).
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

	// --- map_ops v2 (MAP_OPS_ABI_VERSION 2) ---------------------------

	// What create wrote into the state's map_state_header. Required: a
	// table with state_magic 0 is refused by register_map_ops.
	uint32_t state_magic;
	uint32_t state_version;

	// Per-process local state (a kernel fd, a CUDA mapping). open gets the
	// state in the segment at this process's address and sets *local to
	// what this process passes as `state` to every other function (the
	// state itself when there is nothing local); 0 or a negative errno
	// with a message in err. close gets that *local back when the
	// process's map_instance goes (the registry object closes, the map is
	// released, the last program using it goes). Both optional: without
	// open the state in the segment is passed; without close nothing is
	// called.
	int (*open)(void *state, void **local, char *err, size_t err_len);
	void (*close)(void *local);

	// fd-valued maps (the kernel's map_fd_get_ptr / map_fd_put_ptr): values
	// are 4-byte ids of registry objects of kind fd_kind (MAP_FD_NONE for
	// ordinary maps). Before user space stores an id (update, update
	// batch), the registry takes its mutex, checks that the id holds a live
	// object of that kind (EBADF otherwise) and calls fd_get_ptr, which
	// may refuse it (EINVAL: a program of another type than the array's
	// others, an inner map whose attributes differ from the template).
	// After an id left the map through user space (overwritten, deleted),
	// fd_put_ptr gets it. While an fd-valued map holds an id, releasing
	// that object fails with EBUSY naming the map (the kernel keeps it
	// alive by a reference instead). Programs read the ids; the registry
	// resolves them at the time of use (bpf_tail_call in program.cpp), so
	// an update made by any process is seen by every process at once.
	uint32_t fd_kind;
	int (*fd_get_ptr)(void *state, const map_fd_object *obj);
	void (*fd_put_ptr)(void *state, uint32_t id);

	// The size of a value as user space reads and writes it (bpf(2)
	// lookups, updates, batches; Node's Buffers), when it is not
	// value_size: per-CPU maps answer round_up(value_size, 8) x possible
	// CPUs, as the kernel's bpf_map_value_size (handlers::
	// percpu_value_size() computes it). Only handlers::map_user_value_size()
	// calls it.
	uint32_t (*user_value_size)(const map_create_args *args);

	// Helpers the map package provides for its types (ringbuf output, perf
	// event output ...): helper_count prototypes (id, kernel name, argument
	// and return kinds that the verifier reads, function), the one
	// description of each helper. register_map_ops registers
	// each with handlers::register_helper (the same id from the same table
	// twice is fine; an id another table or the standard set provides is
	// EEXIST and registers nothing of the table). The array must stay
	// valid for the life of the process (a static).
	const bpftime::vm::helper_proto *helpers;
	uint32_t helper_count;

	// Ring and perf buffers (BPF_MAP_TYPE_RINGBUF, _PERF_EVENT_ARRAY): hands
	// every record committed so far to cb, in order, each once, and returns
	// how many it handed, or a negative errno. A record is consumed (its
	// space given back to producers) when cb returns; a non-zero return
	// from cb stops after that record. Caller: map_instance::consume(), on
	// the consumer's thread; at most one consumer per map at a time (the
	// caller serialises), producers (programs in any process) run
	// concurrently. Never waits for data.
	int (*consume)(void *state, map_record_fn cb, void *ctx);

	// --- appended to v2: read only when `size` covers them --------------

	// The kernel's map_for_each_callback (bpf_for_each_map_elem): calls
	// cb once for each element, in get_next_key's order, with the key and
	// the value in place, until cb returns non-zero; returns how many
	// elements cb was called for. Caller: a program's helper, any thread,
	// any process: the same rules as lookup. Without it the helper walks
	// get_next_key and lookup (one key buffer on its stack).
	int64_t (*for_each)(void *state, map_elem_fn cb, void *ctx);
	// The kernel's map_gen_lookup: describes lookup so that the JIT emits
	// it inline in a program that uses the map (map_inline_lookup); 0, or
	// -EOPNOTSUPP when lookup cannot be inlined (the helper is called).
	// Caller: program instantiation, with the state this process uses.
	int (*gen_lookup)(void *state, map_inline_lookup *out);
	// fd-valued maps: the checks of an update the kernel makes before it
	// looks at the fd (bpf_fd_array_map_update_elem: flags, then the
	// index), so that an update wrong in both ways fails as in the kernel.
	// Called by the registry before it checks the id; 0 or a negative
	// errno. Null: the id is checked first (maps of maps by hash, as the
	// kernel's bpf_fd_htab_map_update_elem).
	int (*check_fd_update)(void *state, const void *key, uint64_t flags);
	// BPF_MAP_LOOKUP_AND_DELETE_ELEM (the kernel's map_pop_elem for queues
	// and stacks, where key is nullptr): copies the value of key
	// (user_value_size bytes) and removes it in one step; -ENOENT when
	// absent or empty. Optional: without it the command is -ENOTSUPP, as
	// the kernel answers for types that lack it. Caller: the control plane.
	int (*lookup_and_delete)(void *state, const void *key, void *value);

	// bpf_map_update_elem from a program, where it differs from update
	// (per-CPU maps: value_size bytes into the running CPU's slot only,
	// where user space writes every CPU's). Optional: register_map_ops
	// fills it with update, so the helper calls it without a test.
	int (*prog_update)(void *state, const void *key, const void *value,
			   uint64_t flags);

	// JSON export of a type whose contents get_next_key cannot walk (a
	// queue or a stack has no keys): hands cb every entry (key_size bytes
	// of key, user_value_size bytes of value) in the order in which
	// updates with BPF_ANY, one by one, rebuild the same contents (what
	// import does); a non-zero return from cb stops and is returned.
	// Optional: without it export walks get_next_key. Caller: the control
	// plane, under the registry mutex.
	int (*for_each_entry)(void *state,
			      int (*cb)(void *ctx, const void *key,
					const void *value),
			      void *ctx);

	// Told, when the table is registered, what of the registering
	// process's runtime the type reads on its hot paths (map_runtime).
	// A map package may be another shared object than the registry (a
	// Node addon of its own), with its own copies of the registry's
	// thread-locals. Optional; called again at each registration.
	void (*bind_runtime)(const struct map_runtime *rt);
};

// What bind_runtime receives.
struct map_runtime {
	uint32_t size; // sizeof(map_runtime) of the registry
	uint32_t reserved;
	// The offset from the thread pointer of the int32 holding the CPU
	// slot the calling thread's run owns, or -1 (handlers::t_cpu_slot,
	// cpu_slot.hpp): per-CPU types index their values by it.
	int64_t cpu_slot_tls_offset;
};

// The napi_type_tag that an External holding a `const map_ops *` carries, so
// that the registry of another addon never reads a foreign pointer.
inline constexpr uint64_t MAP_OPS_TYPE_TAG_LOWER = 0x6270667469d5e101ULL;
inline constexpr uint64_t MAP_OPS_TYPE_TAG_UPPER = 0x4d41504f50533031ULL;

} // namespace bpftime::handlers
