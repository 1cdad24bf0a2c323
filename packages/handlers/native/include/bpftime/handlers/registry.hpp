// registry.hpp: the registry of programs, maps, links, perf events and BTF
// objects in shared memory, as one process sees it.
//
//   auto seg = bpftime::shm::segment::create({ .name = "demo" });
//   auto reg = bpftime::handlers::registry::create(std::move(*seg));
//   bpftime::maps_userspace::register_all();        // array, hash ...
//   bpftime::handlers::map_spec spec{ .type = BPF_MAP_TYPE_HASH, .key_size = 4,
//                                     .value_size = 8, .max_entries = 1024,
//                                     .name = "counts" };
//   auto h = (*reg)->create_map(spec);               // {id, generation}
//   auto m = (*reg)->map(h->id);                     // map_instance, this process
//   uint32_t k = 1; uint64_t v = 7;
//   (*m)->update(&k, &v, BPF_ANY);
//
// The registry lives in the segment (handler.hpp); a `registry` object is one
// process's view of it and holds the segment mapping. Ids are fd-like: the
// lowest free id, or one the caller chooses (the syscall-server mirrors the
// fd numbers of the process it serves).
//
// Threads: every method may be called from any thread. Mutations take the
// registry's robust process-shared mutex; lookups of a slot read its atomic
// word without a lock. Per-process caches (map instances, program instances)
// are under a process-local mutex. None of this is on a program's hot path:
// programs reach maps through map_instance pointers resolved at load time.
//
// Errors are the kernel's: EBADF for an id that holds nothing (or a stale
// handle), EINVAL for an id of the wrong kind or bad attributes, EMFILE when
// every id is in use, EEXIST for a chosen id that is taken, EBUSY when
// releasing a handler another one refers to, ENOMEM when the segment is full.
#pragma once

#include <bpftime/common/result.hpp>
#include <bpftime/handlers/bpf_defs.hpp>
#include <bpftime/handlers/handler.hpp>
#include <bpftime/handlers/map_ops.hpp>
#include <bpftime/shm/segment.hpp>
#include <bpftime/vm/insn.hpp>

#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <variant>
#include <vector>

namespace bpftime::handlers {

// --- plain specs (process memory, copyable) ------------------------------

struct map_spec {
	uint32_t type = 0;
	uint32_t key_size = 0;
	uint32_t value_size = 0;
	uint32_t max_entries = 0;
	uint32_t flags = 0;
	std::string name;
	uint32_t inner_map_id = NO_ID;
	uint32_t btf_id = NO_ID;
	uint32_t btf_key_type_id = 0;
	uint32_t btf_value_type_id = 0;
	uint32_t btf_vmlinux_value_type_id = 0;
	uint32_t numa_node = 0;
	uint32_t ifindex = 0;
	uint64_t map_extra = 0;
	// Filled in descriptors: BPF_MAP_FREEZE was applied. Ignored on create
	// (a map is created writable; map_instance::freeze() freezes it).
	bool frozen = false;
};

struct prog_spec {
	uint32_t type = 0;
	std::string name;
	std::string license;
	std::vector<vm::insn> insns;
	uint32_t expected_attach_type = 0;
	uint32_t attach_btf_id = 0;
	uint32_t prog_flags = 0;
	uint32_t kern_version = 0;
	// Map ids that BPF_PSEUDO_MAP_IDX / _IDX_VALUE instructions index (the
	// kernel's fd_array).
	std::vector<uint32_t> fd_array;
	// Filled in descriptors: every map the program uses, sorted. Ignored
	// on create (computed from the instructions).
	std::vector<uint32_t> map_ids;
};

struct link_spec {
	uint32_t prog_id = NO_ID;
	uint32_t target_id = NO_ID; // a perf_event handler, or NO_ID
	uint32_t attach_type = 0;
	uint32_t flags = 0;
	uint64_t cookie = 0;
	// Described only: runs of the program that a fault ended, counted by
	// the agents of every process (add_link_faults).
	uint64_t faults = 0;
};

struct perf_event_spec {
	perf_event_type type = perf_event_type::uprobe;
	// uprobe / uretprobe: the binary, the offset of the probe in it (or
	// relative to `symbol` when one is named), the process filter, the
	// USDT semaphore offset.
	std::string path;
	uint64_t offset = 0;
	std::string symbol;
	int32_t pid = -1;
	uint64_t ref_ctr_offset = 0;
	// syscall_tracepoint: the syscall number (-1: all), enter or exit.
	int32_t syscall_id = -1;
	bool syscall_exit = false;
	// custom: an event type of bpftime's own, by name, with a config word.
	std::string custom_name;
	uint64_t custom_config = 0;
};

struct btf_spec {
	std::vector<uint8_t> data;
};

using handler_spec =
	std::variant<map_spec, prog_spec, link_spec, perf_event_spec, btf_spec>;

struct handle {
	uint32_t id = NO_ID;
	uint64_t generation = 0;
	bool operator==(const handle &) const = default;
};

struct handler_info {
	handle h;
	handler_kind kind = handler_kind::empty;
	handler_spec spec;
};

// Who made a handler (handler_owner): registry::owners().
struct owner_info {
	handle h;
	handler_kind kind = handler_kind::empty;
	std::string name;
	int32_t pid = 0;	 // 0: unknown
	uint64_t start_time = 0; // clock ticks since boot
	bool in_load = false;	 // part of a load that has not committed
	bool alive = true;	 // the process runs (same pid and start time)
};

struct registry_options {
	uint32_t capacity = DEFAULT_MAX_FD_COUNT;
};

std::string_view kind_name(handler_kind k) noexcept;

// --- the map-ops registry (per process) ------------------------------------

// Registers the implementation of a map type in this process, and the
// helpers its table ships (map_ops::helpers, through register_helper).
// Idempotent for the same table; EEXIST when another table already provides
// the type or one of the helpers; EINVAL for a table that is malformed
// (size, null required functions, no state magic); EPROTONOSUPPORT for
// another ABI or segment layout version. The table must stay valid for the
// life of the process (a static).
status register_map_ops(const map_ops *ops);
// The ops of a map type in this process, or nullptr.
const map_ops *find_map_ops(uint32_t map_type) noexcept;
std::vector<const map_ops *> registered_map_ops();

// What a package declares it provides without being loaded here (Node reads
// the `bpftime.mapTypes` of the installed packages' package.json), so that
// "no implementation of BPF_MAP_TYPE_HASH" can name the package to load.
// handlers itself names no package. Any thread; the last declaration of a
// type wins.
void declare_map_type_provider(uint32_t map_type, std::string provider);

// The size of a value of such a map as user space reads and writes it
// (bpf(2), Node Buffers, JSON): the ops' user_value_size where the type has
// one (per-CPU maps), else value_size. The one place it is computed.
uint32_t map_user_value_size(const map_spec &spec) noexcept;
// The kernel's bpf_map_value_size for per-CPU maps: round_up(value_size, 8)
// x possible CPUs (possible_cpus()).
uint32_t percpu_value_size(uint32_t value_size) noexcept;
// The kernel's num_possible_cpus(): /sys/devices/system/cpu/possible, read
// once per process (else the configured processors).
uint32_t possible_cpus() noexcept;

class registry;

// One map as this process uses it: the implementation's functions, its state
// at this process's address, and the attributes. Programs get its address
// from the lddw resolver, so helpers dispatch without any table lookup.
// Owned by the registry's per-process cache; lives as long as the registry
// object or the last program instance that uses it.
struct map_instance {
	const map_ops *ops = nullptr;
	// What the ops get as `state`: what map_ops::open set in this process,
	// else the state in the segment.
	void *state = nullptr;
	uint32_t map_type = 0;
	uint32_t key_size = 0;
	uint32_t value_size = 0;
	// map_user_value_size(): the bytes of a value in lookup, update and
	// the batch forms (value_size except for per-CPU maps).
	uint32_t user_value_size = 0;
	// map_ops::fd_kind, copied here so that bpf_tail_call checks it
	// without reaching into the ops table.
	uint32_t fd_kind = 0;
	uint32_t max_entries = 0;
	uint32_t map_flags = 0;
	handle h;
	char name[16] = {};
	registry *owner = nullptr;
	// The map's handler in the segment, at this process's address: the
	// frozen flag and the writer count are read and written through it.
	map_handler *shared = nullptr;
	// map_ops::open succeeded: the destructor calls map_ops::close.
	bool opened = false;

	map_instance() = default;
	map_instance(const map_instance &) = delete;
	map_instance &operator=(const map_instance &) = delete;
	~map_instance();

	// Control-plane operations with the syscall's checks (access flags,
	// staleness) and messages naming the map: "map 'counts': update: E2BIG".
	// Sizes are the map's key_size and user_value_size. On an fd-valued map
	// (map_ops::fd_kind) update and update_batch take the registry mutex,
	// check each id (EBADF: holds nothing of that kind) and let the type
	// accept it (fd_get_ptr); update, delete and the batch forms hand the
	// ids they remove to fd_put_ptr.
	status lookup(const void *key, void *value) const;
	status update(const void *key, const void *value, uint64_t flags) const;
	status remove(const void *key) const;
	// BPF_MAP_LOOKUP_AND_DELETE_ELEM: map_ops::lookup_and_delete (a
	// queue's or stack's pop); ENOTSUPP for a type without it.
	status lookup_and_delete(const void *key, void *value) const;
	// key == nullptr: the first key. ENOENT after the last.
	status next_key(const void *key, void *next_key) const;
	// Up to max_count entries after `after` (nullptr: from the first key)
	// into keys/values (max_count * key_size / value_size bytes). Returns
	// the number copied; 0 at the end.
	result<uint32_t> lookup_batch(const void *after, uint32_t max_count,
				      void *keys, void *values) const;
	// Applies count updates (keys/values packed); stops at the first
	// failure, whose error names how many were applied.
	result<uint32_t> update_batch(const void *keys, const void *values,
				      uint32_t count, uint64_t flags) const;
	result<uint32_t> delete_batch(const void *keys, uint32_t count) const;
	// BPF_F_MMAPABLE maps: the value area; ring buffers (always, as the
	// kernel maps them): their consumer page, producer page and data; a
	// perf event array: its slots, for bpftime's consumers (EINVAL
	// otherwise). A writable
	// view of a frozen map is EPERM, as the kernel's bpf_map_mmap() refuses
	// VM_WRITE then; a read-only one (writable = false, the caller maps
	// or uses it read-only) is always given. Views are not tracked: a
	// writable view taken before freeze() stays writable (freeze() cannot
	// see it, where the kernel would return EBUSY for a live writable
	// mapping).
	result<std::span<uint8_t>> mmap_region(bool writable = true) const;
	// BPF_MAP_FREEZE (the kernel's map_freeze() in kernel/bpf/syscall.c):
	// from now on user space cannot write the map: update, delete and the
	// batch forms fail with EPERM ("map 'cfg' (id 3): update: EPERM (the
	// map is frozen)"), a writable mmap_region() too; lookups keep working
	// and programs may still write it unless it was created with
	// BPF_F_RDONLY_PROG. The flag lives in the segment: every process sees
	// it. Errors: EPERM when already frozen (as the kernel answers: a
	// frozen map gives user space no write permission) and for a
	// BPF_F_RDONLY map; EBUSY while a write from user space is in progress
	// or when another caller froze it between the check and the lock;
	// EBADF when released.
	status freeze() const;
	// Ring and perf buffers: hands every record committed so far to cb
	// (map_ops::consume); returns how many. EINVAL for a map type without
	// consume. One consumer per map at a time: the caller serialises.
	result<uint32_t> consume(map_record_fn cb, void *ctx) const;
	// Whether BPF_MAP_FREEZE was applied (by any process).
	bool frozen() const noexcept;
	// EBADF when the map was released (or the id reused) since.
	status check_live(const char *op) const;
	std::string describe() const; // "map 'counts' (id 3)"
};

struct instance_options;
class program_instance;

class registry {
    public:
	// EEXIST if the segment already holds a registry, EINVAL for a
	// capacity outside [1, MAX_FD_COUNT_LIMIT], ENOMEM when the slots do
	// not fit.
	static result<std::unique_ptr<registry>> create(shm::segment seg,
							registry_options opts = {});
	// ENOENT when the segment holds no registry, EBADMSG when the object is
	// not one. Releases what dead loaders left unfinished
	// (roll_back_dead_loads) unless roll_back is false (a command that only
	// lists them).
	static result<std::unique_ptr<registry>> open(shm::segment seg,
						      bool roll_back = true);
	static result<std::unique_ptr<registry>>
	open_or_create(shm::segment seg, registry_options opts = {});
	// capacity from BPFTIME_MAX_FD_COUNT (EINVAL when malformed).
	static result<registry_options> options_from_env();

	~registry();
	registry(const registry &) = delete;
	registry &operator=(const registry &) = delete;

	shm::segment &segment() noexcept;
	uint32_t capacity() const noexcept;
	// Bumped by every create and release: attached processes poll it to
	// pick up new links.
	uint64_t change_counter() const noexcept;
	uint32_t size() const noexcept; // live handlers

	// id == NO_ID: the lowest free id.
	result<handle> create_map(const map_spec &spec, uint32_t id = NO_ID);
	result<handle> create_prog(const prog_spec &spec, uint32_t id = NO_ID);
	result<handle> create_link(const link_spec &spec, uint32_t id = NO_ID);
	result<handle> create_perf_event(const perf_event_spec &spec,
					 uint32_t id = NO_ID);
	result<handle> create_btf(std::span<const uint8_t> data,
				  uint32_t id = NO_ID);

	// Frees the handler and, for a map, its contents. EBADF for a free id
	// or a stale handle; EBUSY while a program uses the map, a link uses
	// the program or perf event, or a map names it as inner map.
	status release(uint32_t id);
	status release(handle h);
	// Adds n to the link's fault count (link_spec::faults): the agent, for
	// runs of the link's program that a SIGSEGV or SIGBUS ended. EBADF for
	// an empty slot or a stale handle, EINVAL when h is not a link.
	status add_link_faults(handle h, uint64_t n);

	// A load: the handlers this registry object creates from begin_load()
	// until the matching end_load() are one transaction. A process that
	// dies in between leaves them marked (handler_owner::load), and the
	// next opener releases them all. Nests: only the outermost end_load
	// commits. end_load() after a failed load commits what the loader did
	// not release itself. EIO when the registry lock cannot be taken (the
	// handlers then stay marked until this process is gone).
	void begin_load();
	status end_load();
	// Who made each live handler, and whether that process still runs.
	result<std::vector<owner_info>> owners() const;
	// Releases the handlers of every unfinished load whose process is gone
	// (links, then programs and perf events, then maps), and returns what
	// it released.
	result<std::vector<owner_info>> roll_back_dead_loads();

	// Lock-free: what slot id holds now.
	handler_kind kind_of(uint32_t id) const noexcept;
	// EBADF when empty.
	result<handle> handle_of(uint32_t id) const;
	// Copies of the handler's description.
	result<handler_info> get(uint32_t id) const;
	std::vector<handler_info> list() const;

	// This process's instance of map `id` (EBADF, EINVAL for another kind,
	// EINVAL naming the package when no implementation of its type is
	// registered here).
	result<std::shared_ptr<map_instance>> map(uint32_t id);
	result<std::shared_ptr<map_instance>> map(handle h);

	// This process's instance of program `id`: verified, lddw resolved,
	// helpers bound, compiled (JIT). Cached per (id, generation, backend).
	result<std::shared_ptr<program_instance>>
	instantiate(uint32_t id, const instance_options &opts);
	// The cached instance of the program id holds now (same generation),
	// if any, for tail calls (lock-free).
	const program_instance *cached_program(uint32_t id) const noexcept;
	// This process's instance of the map id holds now, for helpers that
	// turn an id a map holds into a map (a map-in-map lookup from a
	// program). Lock-free once this process has the instance; the first
	// call makes it (registry::map()). nullptr when the id holds no map or
	// it cannot be opened. The instance stays valid until the registry
	// object goes, even when the map is released meanwhile, as a program
	// may still hold it (the kernel keeps it under RCU).
	const map_instance *cached_map(uint32_t id) noexcept;

	// JSON export and import of everything (json.hpp documents the format).
	result<std::string> export_json();
	status import_json(std::string_view text);

	struct impl;

    private:
	explicit registry(std::unique_ptr<impl> i);
	std::unique_ptr<impl> impl_;
	friend struct map_instance;
	friend class program_instance;
};

} // namespace bpftime::handlers
