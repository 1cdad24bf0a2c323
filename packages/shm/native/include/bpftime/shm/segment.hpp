// segment.hpp: the named shared-memory segment that holds bpftime's registry.
//
// Layout of the file (/dev/shm/<name>):
//
//   [0, 4096)        segment_header: magic, layout version, sizes, creator
//   [4096, size)     a Boost.Interprocess managed buffer: allocator and
//                    named-object index, protected by robust mutexes
//
// The header is ours and sits before anything Boost interprets, so a file of
// the same name that is not a bpftime segment, or one of another layout
// version, is recognised and refused before a single byte of it is trusted.
//
//   auto seg = bpftime::shm::segment::create({ .name = "demo", .size = 1 << 20 });
//   if (!seg) die(seg.error().message);
//   auto *counter = seg->construct<uint64_t>("counter", 0);
//   // another process:
//   auto other = bpftime::shm::segment::open("demo");
//   uint64_t *same = other->find<uint64_t>("counter");
//
// Everything stored in the segment must be position independent (offset_ptr,
// offsets, no raw pointers or virtual functions): it maps at a different
// address in every process.
#pragma once

#include <bpftime/common/result.hpp>
#include <bpftime/shm/robust_mutex.hpp>

#include <boost/interprocess/allocators/allocator.hpp>
#include <boost/interprocess/indexes/iset_index.hpp>
#include <boost/interprocess/managed_external_buffer.hpp>
#include <boost/interprocess/mem_algo/rbtree_best_fit.hpp>

#include <atomic>
#include <cstdint>
#include <memory>
#include <new>
#include <string>
#include <string_view>
#include <utility>

namespace bpftime::shm {

// "BPFTIME\0" read as a little-endian u64.
inline constexpr uint64_t SEGMENT_MAGIC = 0x00454d4954465042ULL;
// Bumped by any change to a structure stored in the segment, in any package:
// processes of different layouts must never share a segment.
// 2: the allocator's mutex is recursive; the header records allocator
// deaths and the allocator journal. 3: the journal keeps several records.
inline constexpr uint32_t LAYOUT_VERSION = 3;
inline constexpr uint64_t HEADER_SIZE = 4096;
inline constexpr const char *DEFAULT_SEGMENT_NAME = "bpftime_maps_shm";
inline constexpr uint64_t DEFAULT_SEGMENT_MB = 20;
// Below this the allocator's own bookkeeping does not fit.
inline constexpr uint64_t MIN_SEGMENT_SIZE = 64 * 1024;
inline constexpr uint64_t MAX_SEGMENT_SIZE = 1ULL << 40;

enum class segment_state : uint32_t {
	initialising = 0, // creator is still building the managed buffer
	ready = 1,
};

struct segment_header {
	uint64_t magic;
	uint32_t layout_version;
	uint32_t header_size;
	uint64_t segment_size; // whole file, header included
	int32_t creator_pid;
	std::atomic<uint32_t> state; // segment_state; written last by the creator
	uint64_t created_at_ns;       // CLOCK_REALTIME
	// Deaths of a process inside the allocator (or the named-object
	// index) since they were last checked: Boost's free-block tree cannot
	// be repaired after an interrupted change, so a segment with deaths
	// is checked (segment::check_allocator) before it is used again.
	// Zero in segments made before the field: the bytes were reserved and
	// zeroed, which reads as "none".
	std::atomic<uint32_t> allocator_deaths;
	// The allocator journal (segment.cpp): where it is, from the start of
	// the file, and how many blocks it can describe; 0 when the segment
	// has none (made before it).
	uint32_t journal_blocks;
	int64_t journal_offset;
	uint8_t reserved[HEADER_SIZE - 56];
};
static_assert(sizeof(segment_header) == HEADER_SIZE);
static_assert(std::atomic<uint32_t>::is_always_lock_free);

// Boost's best-fit allocator, whose frees first name their block in the
// allocator journal (segment.cpp). Boost links a freed block into its
// free-block tree before it marks the block free: a process killed between
// the two leaves a block that still reads as allocated, its owner's first
// bytes overwritten by tree links; the journal puts them back only because it
// knows which block was being freed. Same layout as its base.
class journaled_best_fit
	: public boost::interprocess::rbtree_best_fit<robust_mutex_family> {
	using base = boost::interprocess::rbtree_best_fit<robust_mutex_family>;

    public:
	using base::base;
	void deallocate(void *addr);
};
static_assert(sizeof(journaled_best_fit) ==
	      sizeof(boost::interprocess::rbtree_best_fit<robust_mutex_family>));

using managed_buffer = boost::interprocess::basic_managed_external_buffer<
	char, journaled_best_fit, boost::interprocess::iset_index>;
using segment_manager = managed_buffer::segment_manager;
template <class T>
using allocator = boost::interprocess::allocator<T, segment_manager>;

// Whether [p, p + len) lies in the same segment mapping of this process as
// anchor (false when anchor is in none): for a map type checking the offsets
// its state holds before following them.
bool same_mapping(const void *anchor, const void *p, uint64_t len) noexcept;

struct segment_options {
	std::string name = DEFAULT_SEGMENT_NAME;
	uint64_t size = DEFAULT_SEGMENT_MB << 20; // bytes, header included
	// File permission bits; owner-only by default so other users can
	// neither read the maps nor inject programs.
	unsigned mode = 0600;
};

struct segment_stats {
	uint64_t size; // managed part
	uint64_t free;
	uint64_t used;
	uint64_t named_objects;
};

struct segment_info {
	std::string name;
	uint32_t layout_version;
	uint64_t size;
	int32_t creator_pid;
	uint64_t created_at_ns;
};

// Name of the global segment and its size from BPFTIME_GLOBAL_SHM_NAME and
// BPFTIME_SHM_MEMORY_MB, falling back to the defaults. EINVAL when a set
// variable is not a valid name or size.
result<segment_options> options_from_env();

// EINVAL for names shm_open cannot take portably: empty, over 255 bytes,
// containing '/' or NUL.
status validate_name(std::string_view name);

class segment {
    public:
	// EEXIST if a segment of that name exists, EINVAL for a bad name or a
	// size outside [MIN_SEGMENT_SIZE, MAX_SEGMENT_SIZE], ENOSPC when
	// /dev/shm cannot hold it. The memory is reserved up front, so a full
	// tmpfs never turns into SIGBUS inside a target process later.
	static result<segment> create(const segment_options &opts);
	// ENOENT if missing, EBADMSG if the file is not a bpftime segment (bad
	// magic, truncated, inconsistent sizes), EPROTONOSUPPORT for another
	// layout version, EAGAIN while its creator is still initialising it,
	// EACCES without permission. The file is never modified.
	static result<segment> open(std::string_view name);
	// Opens when it exists, creates otherwise (racing creators are fine).
	static result<segment> open_or_create(const segment_options &opts);
	// ENOENT if missing. Processes that have it mapped keep their mapping.
	static status remove(std::string_view name);
	static bool exists(std::string_view name);

	segment(segment &&) noexcept;
	segment &operator=(segment &&) noexcept;
	~segment();

	const std::string &name() const noexcept;
	segment_info info() const noexcept;
	segment_stats stats() const noexcept;
	const segment_header &header() const noexcept;
	segment_manager *manager() const noexcept;
	// When a process died inside the allocator (header.allocator_deaths),
	// checks it in a child process on a private copy of the segment: the
	// free-block tree walked, then every size allocated and freed until
	// the segment is full, within a second. Clears the count when it
	// passes; EBADMSG naming the damage when it does not (the segment is
	// then unusable: remove it). The segment itself is not written except
	// for that count.
	status check_allocator() const noexcept;

	// Holds the allocator's mutex from construction to destruction, so
	// that every allocation and free made meanwhile by this thread is one
	// change: a process killed before the destructor has all of them
	// undone by the allocator journal at the next allocation by anyone
	// (segment.cpp). Other processes' allocations wait meanwhile. For a
	// registry's create and release. The journal puts back the first 32
	// bytes of a block that the undone transaction freed, not the rest
	// (Boost writes no further into a freed block): a transaction that
	// frees a block it did not allocate must allocate nothing after, and
	// what it writes into such blocks before freeing them it names with
	// also_undo.
	class allocator_transaction {
	    public:
		explicit allocator_transaction(const segment &s);
		// The same, from code that has only the segment's manager
		// (a map type growing its state).
		explicit allocator_transaction(segment_manager *mgr);
		~allocator_transaction();
		// The bytes [record, record + len) of the segment, as they are
		// now, are written back too when the transaction is undone:
		// the caller's own record of what it is doing, and whatever a
		// destructor writes into a block before freeing it, so that
		// they and the allocations change together. Up to 8 records
		// and 1024 bytes per transaction. False when the segment has
		// no journal, or it cannot hold this transaction or this
		// record. Call before changing the bytes, while nothing else
		// has been allocated or freed by the transaction.
		bool also_undo(const void *record, size_t len) noexcept;
		// also_undo of the allocated block at `block` (a pointer the
		// allocator returned), whole or its first max_len bytes.
		bool also_undo_block(const void *block, size_t max_len) noexcept;
		allocator_transaction(const allocator_transaction &) = delete;
		allocator_transaction &
		operator=(const allocator_transaction &) = delete;

	    private:
		robust_recursive_mutex *m_;
	};
	// Whether the file this process maps is still the segment's, whole:
	// EIDRM when /dev/shm/<name> was removed, ESTALE when it is another
	// file now, EBADMSG when it was truncated (reading the mapping past
	// the file's end raises SIGBUS). For a process that must stop using
	// the segment before it faults (the agent's watcher, each poll); a
	// truncation after the check is not seen until the next one.
	status check_file() const noexcept;
	// Does [p, p+len) lie inside this process's mapping of the segment?
	bool contains(const void *p, uint64_t len) const noexcept;
	void *base() const noexcept;

	// Named objects. EEXIST when the name is taken, ENOMEM when the segment
	// is full.
	template <class T, class... Args>
	result<T *> construct(const char *name, Args &&...args) noexcept
	{
		try {
			T *p = manager()->template construct<T>(
				name, std::nothrow)(std::forward<Args>(args)...);
			if (p)
				return p;
			if (manager()->template find<T>(name).first)
				return fail(EEXIST, "segment '" + name_ +
							    "': object '" + name +
							    "' exists");
			return no_room_for(name);
		} catch (const std::bad_alloc &) {
			return no_room_for(name);
		} catch (const std::exception &e) {
			return construct_failed(EINVAL, name, e);
		}
	}
	template <class T, class... Args>
	result<T *> find_or_construct(const char *name, Args &&...args) noexcept
	{
		try {
			T *p = manager()->template find_or_construct<T>(
				name, std::nothrow)(std::forward<Args>(args)...);
			if (p)
				return p;
			return no_room_for(name);
		} catch (const std::exception &e) {
			return construct_failed(ENOMEM, name, e);
		}
	}
	// nullptr when absent.
	template <class T> T *find(const char *name) const noexcept
	{
		return manager()->template find<T>(name).first;
	}
	// ENOENT when absent.
	template <class T> status destroy(const char *name) noexcept
	{
		if (manager()->template destroy<T>(name))
			return {};
		return fail(ENOENT, "segment '" + name_ + "': object '" +
					    name + "' not found");
	}

	struct mapping;

    private:
	// The failures of construct() and find_or_construct(), named by the
	// segment and the object.
	failure no_room_for(const char *name) const
	{
		return fail(ENOMEM, "segment '" + name_ +
					    "': no room for object '" + name +
					    "'");
	}
	failure construct_failed(int code, const char *name,
				 const std::exception &e) const
	{
		return fail(code, "segment '" + name_ + "': construct '" +
					  name + "': " + e.what());
	}

	explicit segment(std::shared_ptr<mapping> m) noexcept;
	std::shared_ptr<mapping> map_;
	std::string name_;

    public:
	// The mapping stays alive as long as any holder of this pointer does
	// (e.g. a Node Buffer that views segment memory).
	std::shared_ptr<void> keep_alive() const noexcept;
};

} // namespace bpftime::shm
