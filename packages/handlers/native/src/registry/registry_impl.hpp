// registry_impl.hpp: the per-process side of a registry, shared by the
// sources of the handlers core (registry.cpp, map_instance.cpp, program.cpp,
// json_io.cpp). Not a public header.
#pragma once

#include <bpftime/handlers/program.hpp>
#include <bpftime/handlers/registry.hpp>

#include <atomic>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <tuple>

namespace bpftime::handlers {

// "ENOENT" for 2: the names the kernel's man pages use.
std::string errno_name(int e);

// Validates a map or program name the way the kernel's bpf_obj_name_cpy
// does: at most 15 bytes of letters, digits, '_' and '.'.
status check_obj_name(std::string_view what, std::string_view name);

// Why a map type cannot be used in this process, naming the package that
// provides it: "no implementation of BPF_MAP_TYPE_HASH is registered ...".
std::string missing_ops_reason(uint32_t map_type);

// The map_create_args of a spec: its attributes, named by spec.name (which
// must outlive the args). The registry's create adds the inner map's type
// and the segment manager, and names the map by its handler's copy.
map_create_args map_create_args_of(const map_spec &spec) noexcept;

// What create_btf() takes: a view of the caller's bytes, copied once, into
// the segment.
struct btf_data {
	std::span<const uint8_t> data;
};

// EPROTONOSUPPORT, prefixed with `what`, when the map_state_header at state
// is not the one ops speak (map_ops.hpp: state magic and version). Read by
// every process before it opens, destroys or recovers a map's state.
status check_map_state(const map_ops *ops, const void *state,
		       const std::string &what);

// The fd-valued map (map_ops::fd_kind == kind) among the registry's maps that
// holds id, described ("map 'jmp' (id 3) holds it"), or empty. Under the
// registry mutex (release_locked).
std::string fd_map_holding(registry::impl &r, handler_kind kind, uint32_t id);

struct registry::impl {
	shm::segment seg;
	shm::segment_manager *mgr = nullptr;
	registry_shared *shared = nullptr;
	slot *slots = nullptr;

	// Per-process caches, under `local`.
	std::mutex local;
	// This registry object's load (begin_load): nesting depth and the
	// number marking its handlers (0: none). Under `local`.
	uint32_t load_depth = 0;
	uint32_t load_serial = 0;
	std::vector<std::shared_ptr<map_instance>> maps; // by id
	std::map<std::tuple<uint32_t, uint64_t, int, bool>,
		 std::shared_ptr<program_instance>>
		progs; // (id, generation, backend, bounds_check)
	// Latest instance of each program id, for tail calls on the hot path.
	std::unique_ptr<std::atomic<const program_instance *>[]> prog_fast;
	// Instances handed out by cached_map(), for helpers on the hot path;
	// forget_local() moves such an instance to `retired` instead of
	// dropping it, since a running program may still use it.
	std::unique_ptr<std::atomic<const map_instance *>[]> map_fast;
	std::vector<std::shared_ptr<map_instance>> retired;

	explicit impl(shm::segment s) : seg(std::move(s))
	{
	}

	char *base() const noexcept
	{
		return reinterpret_cast<char *>(mgr);
	}
	template <class T> T *at(int64_t off) const noexcept
	{
		return reinterpret_cast<T *>(base() + off);
	}
	int64_t offset_of(const void *p) const noexcept
	{
		return static_cast<const char *>(p) - base();
	}

	// The handler at id if its slot holds kind k (EBADF empty, EINVAL
	// other kind). Lock-free; the caller must hold the registry mutex or
	// accept that a concurrent release may free what it reads.
	result<handler_object *> object_at(uint32_t id, handler_kind k,
					   const char *what) const;
	uint64_t word_at(uint32_t id) const noexcept
	{
		return slots[id].word.load(std::memory_order_acquire);
	}

	// The registry mutex, with recovery of what a dead holder left.
	class lock_guard {
	    public:
		explicit lock_guard(impl &r) : r_(&r)
		{
		}
		lock_guard(lock_guard &&o) noexcept : r_(o.r_)
		{
			o.r_ = nullptr;
		}
		~lock_guard();

	    private:
		impl *r_;
	};
	result<lock_guard> lock();
	void recover() noexcept;
	void recount() noexcept;

	// The pending record (handler.hpp), under the lock: begin names the
	// operation, note what it has built so far, end clears it.
	void begin_pending(pending_op op, uint32_t id, uint32_t map_type) noexcept;
	void note_pending(int64_t object, int64_t state, uint32_t stage) noexcept;
	void end_pending() noexcept;
	// Does [off, off + len) from the manager lie inside the segment?
	bool in_segment(int64_t off, uint64_t len) const noexcept;
	// Does off name something that can be a handler object (in the
	// segment, aligned, a known kind)?
	bool object_ok(int64_t off) const noexcept;
	// Frees a released handler's state and object, then clears the
	// pending record, as one allocator transaction (registry.cpp).
	void free_released(const map_ops *ops, int64_t state_off,
			   int64_t obj_off) noexcept;

	// Under the lock.
	result<uint32_t> pick_id(uint32_t wanted, const char *what);
	result<handle> publish(uint32_t id, handler_kind k, handler_object *obj);
	// The one create transaction (registry.cpp): T is the handler type,
	// Input its spec (map_spec, prog_spec, link_spec, perf_event_spec;
	// btf_data for btf_handler). Instantiated for those five pairs only.
	template <class T, class Input>
	result<handle> create_object(const Input &spec, uint32_t id);
	status add_link_faults_locked(handle h, uint64_t n);
	status release_locked(uint32_t id, uint64_t generation,
			      bool check_generation);
	result<handler_info> describe_locked(uint32_t id) const;
	// The object at off, as kind k, with all it refers to inside the
	// segment (registry.cpp); damaged(): the error naming it.
	bool object_whole(int64_t off, handler_kind k) const noexcept;
	std::string damaged(uint32_t id) const;
	void forget_local(uint32_t id);

	result<std::shared_ptr<map_instance>> map_instance_for(uint32_t id,
							       registry *owner);
};

} // namespace bpftime::handlers
