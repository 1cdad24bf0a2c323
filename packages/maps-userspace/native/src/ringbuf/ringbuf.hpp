// ringbuf/ringbuf.hpp: the ring buffer core in the shared-memory segment,
// shared by BPF_MAP_TYPE_RINGBUF (ringbuf_map.cpp: programs produce, user
// space consumes) and BPF_MAP_TYPE_USER_RINGBUF (user_ringbuf_map.cpp: user
// space produces, programs drain), as the kernel's kernel/bpf/ringbuf.c
// serves both from struct bpf_ringbuf.
//
// Layout, one page-aligned block of the segment (so that its file offsets
// are page-aligned too, and the syscall-server can mmap the segment file at
// them for libbpf):
//
//   page 0      control: map_state_header, attributes, the producer lock,
//               the wake-up futex word, counters (bpftime's own; the kernel
//               keeps these in struct bpf_ringbuf, unmapped)
//   page 1      consumer page: u64 consumer_pos at offset 0
//   page 2      producer page: u64 producer_pos at offset 0, pending_pos at 8
//   page 3...   data, max_entries bytes (a power of two, page multiple)
//
// Pages 1 onwards are the kernel's mmap layout of a ring buffer map
// (libbpf's ring_buffer__add maps page 1 read-write and pages 2... read-only
// with the data twice). Records are the kernel's: an 8-byte header (u32 len
// with BPF_RINGBUF_BUSY_BIT and BPF_RINGBUF_DISCARD_BIT, u32 pg_off) then the
// sample, each record rounded up to 8 bytes; a record may wrap past the end
// of the data.
//
// Per process, open() (map_ops::open) maps the block a second time at an
// address of its own with the data pages twice in a row (mremap with
// old_size 0 aliases the segment's shared pages): a record that wraps is
// contiguous there, as in the kernel's vmap, so a program writes its record
// with no bounds arithmetic and a consumer hands out samples in place. The
// alias starts at a multiple of its length rounded up to a power of two, so
// bpf_ringbuf_submit finds the ring from a sample by masking its address.
// The header's second word, the kernel's pg_off (which only the kernel reads;
// libbpf ignores it), holds that power's log2 less 12 (5 bits) and the
// producer's tid (27 bits): a consumer that finds the record at its position
// still busy after its producer died marks it discarded and goes on.
//
// Producers (any thread of any process) reserve under a spin lock in the
// control page, as the kernel reserves under rb->spinlock: the lock covers
// the space check, the header write and the producer_pos store, a few
// instructions. The lock word holds the owner's tid; a waiter that has spun
// for long checks whether the owner still exists and takes the lock over
// when it died (SIGKILL inside reserve). Commit (submit, discard) takes no
// lock: it flips the busy bit with one store (see light_commit).
// A producer killed between reserve and submit leaves its record busy; a
// consumer waiting at it checks the tid in its header and, once that thread
// is gone, discards the record (reap_dead) and reads on.
//
// Wake-ups: a consumer with nothing to read registers as a sleeper and
// sleeps on a futex word of the control page (FUTEX_WAIT on shared memory,
// not FUTEX_PRIVATE: it works across processes). A commit wakes it under
// the kernel's rule (bpf_ringbuf_commit): when the consumer has caught up to
// this record, unless BPF_RB_NO_WAKEUP; always with BPF_RB_FORCE_WAKEUP. The
// futex syscall is made only when a sleeper is registered.
#pragma once

#include "map_common.hpp"

#include <bpftime/handlers/map_ops.hpp>

#include <atomic>
#include <cstdint>
#include <cstring>

namespace bpftime::maps_userspace::ringbuf {

inline constexpr uint64_t PAGE = 4096;
// The state magics of the two types on this core (their map_ops carry
// them); the consumer API checks a mapped region against them.
inline constexpr uint32_t RINGBUF_MAGIC = 0x52494e47;      // "RING"
inline constexpr uint32_t USER_RINGBUF_MAGIC = 0x55524e47; // "URNG"
// The layout of control and its pages. 1: the first.
inline constexpr uint32_t STATE_VERSION = 1;
// The kernel's uapi constants (include/uapi/linux/bpf.h).
inline constexpr uint32_t BUSY_BIT = 1u << 31;    // BPF_RINGBUF_BUSY_BIT
inline constexpr uint32_t DISCARD_BIT = 1u << 30; // BPF_RINGBUF_DISCARD_BIT
inline constexpr uint32_t HDR_SZ = 8;             // BPF_RINGBUF_HDR_SZ
inline constexpr uint64_t RB_NO_WAKEUP = 1;       // BPF_RB_NO_WAKEUP
inline constexpr uint64_t RB_FORCE_WAKEUP = 2;    // BPF_RB_FORCE_WAKEUP
inline constexpr uint64_t RB_AVAIL_DATA = 0;      // BPF_RB_AVAIL_DATA
inline constexpr uint64_t RB_RING_SIZE = 1;
inline constexpr uint64_t RB_CONS_POS = 2;
inline constexpr uint64_t RB_PROD_POS = 3;
// The kernel's RINGBUF_MAX_RECORD_SZ (UINT_MAX / 4) and the largest data
// area bpf_ringbuf_alloc accepts (RINGBUF_MAX_DATA_SZ, 64 GiB less 3 pages
// there; bounded to what a u32 max_entries can say here).
inline constexpr uint64_t MAX_RECORD_SZ = 0xffffffffu / 4;

// Page 0. Everything at fixed offsets from it: the segment maps at a
// different address in every process.
struct control {
	handlers::map_state_header header;
	uint32_t key_size;
	uint32_t value_size;
	uint32_t max_entries; // the data size
	uint32_t map_flags;
	uint64_t mask; // max_entries - 1
	// 0, or the tid of the producer inside reserve.
	std::atomic<uint32_t> lock;
	// The futex word sleepers wait on; bumped by each wake-up.
	std::atomic<uint32_t> wake_seq;
	// Consumers between "nothing to read" and the end of their wait.
	std::atomic<uint32_t> sleepers;
	uint32_t pad1;
	// Counters for tests and stats, never read on the hot path.
	std::atomic<uint64_t> wakeups; // futex wakes producers made
	// USER_RINGBUF: 0, or the tid of the thread inside
	// bpf_user_ringbuf_drain (the kernel's rb->busy).
	std::atomic<uint32_t> drain_owner;
	uint32_t pad2;
	// consumer_pos as a producer last read it, under the lock: producers
	// read the consumer's cache line only when this one says the ring is
	// full.
	uint64_t cons_cache;
};
static_assert(sizeof(control) == 72);
static_assert(std::atomic<uint64_t>::is_always_lock_free);

// This process's view of one ring (what open() returns as `local`): the
// alias [control][consumer][producer][data][data again].
struct local {
	control *ctl;        // in the alias (the same pages as the segment's)
	void *segment_state; // the state in the segment (for destroy, mmap)
	std::atomic<uint64_t> *consumer_pos;
	std::atomic<uint64_t> *producer_pos;
	uint8_t *data; // 2 * (mask + 1) bytes readable and writable
	uint64_t mask;
	size_t alias_len;
	uint32_t align_shift; // log2 of the alias' alignment
};

inline constexpr uint32_t TID_BITS = 27;
inline constexpr uint32_t TID_MASK = (1u << TID_BITS) - 1;

// Creation for both ring types after the type's own attribute checks: the
// block of pages in the segment, zeroed. 0 and *out, or -ENOMEM.
int create(const handlers::map_create_args *a, uint32_t magic,
	   uint32_t version, void **out, char *err, size_t err_len);
void destroy(void *segment_manager, void *state);
// map_ops::open and close: the per-process alias.
int open(void *state, void **local, char *err, size_t err_len);
void close(void *local);
// map_ops::mmap_region: pages 1... of the segment's block (the kernel's mmap
// offset 0 is the consumer page), 2 pages + data long.
void *mmap_region(void *local, uint64_t *len);
// The kernel's attribute checks for ring buffers (ringbuf_map_alloc): key
// and value sizes 0, max_entries a power of two and a page multiple, no
// flags but BPF_F_NUMA_NODE. 0 or -EINVAL/-E2BIG with a message.
int check_attrs(const handlers::map_create_args *a, const char *type,
		char *err, size_t err_len);

// --- producer side (programs: RINGBUF; user space: USER_RINGBUF) -------------

// The calling thread's tid, the lock owner's name. gettid() is a system
// call, so it is kept per thread; initial-exec TLS, because the general
// dynamic model of a shared library costs a __tls_get_addr call on every
// reserve.
uint32_t fetch_tid() noexcept;
extern thread_local uint32_t cached_tid [[gnu::tls_model("initial-exec")]];
inline uint32_t current_tid() noexcept
{
	uint32_t t = cached_tid;
	if (t == 0) [[unlikely]]
		t = cached_tid = fetch_tid();
	return t;
}

// A spin lock word holding its owner's tid (0: free), for producers of
// this core and perf buffers. Taken for a few instructions; a waiter spins,
// then yields, and takes the lock over from an owner that no longer exists
// (killed inside reserve).
void lock_slow(std::atomic<uint32_t> &word, uint32_t tid) noexcept;

inline void lock(std::atomic<uint32_t> &word, uint32_t tid) noexcept
{
	uint32_t expected = 0;
	if (word.compare_exchange_strong(expected, tid,
					 std::memory_order_acquire,
					 std::memory_order_relaxed)) [[likely]]
		return;
	lock_slow(word, tid);
}

inline void unlock(std::atomic<uint32_t> &word) noexcept
{
	word.store(0, std::memory_order_release);
}

// The kernel's __bpf_ringbuf_reserve: the sample of a new busy record of
// `size` bytes, or nullptr when the ring has no room (or size is too large).
inline void *reserve(local *l, uint64_t size, uint32_t tid) noexcept
{
	if (size > MAX_RECORD_SZ) [[unlikely]]
		return nullptr;
	uint64_t len = (size + HDR_SZ + 7) & ~uint64_t(7);
	if (len > l->mask + 1) [[unlikely]]
		return nullptr;
	lock(l->ctl->lock, tid);
	uint64_t prod = l->producer_pos->load(std::memory_order_relaxed);
	uint64_t next = prod + len;
	// Records after the consumer are still being read or still busy; the
	// kernel's check is the same (new_prod_pos - cons_pos > mask), on a
	// fresh consumer_pos when the cached one says full.
	if (next - l->ctl->cons_cache > l->mask + 1) [[unlikely]] {
		uint64_t cons = l->consumer_pos->load(std::memory_order_acquire);
		l->ctl->cons_cache = cons;
		if (next - cons > l->mask + 1) {
			unlock(l->ctl->lock);
			return nullptr;
		}
	}
	uint8_t *hdr = l->data + (prod & l->mask);
	uint32_t who = ((l->align_shift - 12) << TID_BITS) | (tid & TID_MASK);
	reinterpret_cast<std::atomic<uint32_t> *>(hdr)->store(
		uint32_t(size) | BUSY_BIT, std::memory_order_relaxed);
	memcpy(hdr + 4, &who, 4);
	l->producer_pos->store(next, std::memory_order_release);
	unlock(l->ctl->lock);
	return hdr + HDR_SZ;
}

// The asymmetric fence between committing producers and a consumer going
// to sleep (a Dekker pattern: the producer stores the record and then
// reads `sleepers`, the consumer increments `sleepers` and then reads the
// record). Producers of a process that registered with
// membarrier(MEMBARRIER_CMD_REGISTER_GLOBAL_EXPEDITED) (open() does, once
// per process) commit with a plain release store; the consumer, before it
// sleeps, runs membarrier(MEMBARRIER_CMD_GLOBAL_EXPEDITED), a full barrier
// on every CPU running such a process, which stands in for the producers'
// fence. Elsewhere producers commit with an atomic exchange, as the kernel.
extern bool light_commit; // this process registered
void register_light_commit() noexcept;
// The consumer's side. False when membarrier failed: the caller then
// sleeps with a short timeout, so that a wake-up it missed costs a delay
// and never a hang.
bool heavy_fence() noexcept;

// A sleeper exists: bump the futex word and wake everyone on it.
void wake(control *c) noexcept;

// The control page of the ring a sample from reserve() lies in (the
// kernel's bpf_ringbuf_restore_from_rec): the sample's address rounded down
// to the alias' alignment, which the header carries.
inline control *ring_of(void *sample) noexcept
{
	uint8_t *hdr = static_cast<uint8_t *>(sample) - HDR_SZ;
	uint32_t who;
	memcpy(&who, hdr + 4, 4);
	uint32_t shift = (who >> TID_BITS) + 12;
	return reinterpret_cast<control *>(reinterpret_cast<uintptr_t>(hdr) &
					   ~((uintptr_t(1) << shift) - 1));
}

// The record at consumer_pos is busy and its producer thread no longer
// exists: marks it discarded (a compare-and-swap, so that a commit that
// comes after all wins) and returns true. One kill(tid, 0) system call.
bool reap_dead(local *l) noexcept;

// The kernel's bpf_ringbuf_commit: clears the busy bit (and sets the discard
// bit) with one exchange, then wakes a sleeping consumer by the kernel's
// rule.
inline void commit(void *sample, uint64_t flags, bool discard) noexcept
{
	uint8_t *hdr = static_cast<uint8_t *>(sample) - HDR_SZ;
	control *c = ring_of(sample);
	auto *len = reinterpret_cast<std::atomic<uint32_t> *>(hdr);
	uint32_t v = len->load(std::memory_order_relaxed) & ~BUSY_BIT;
	if (discard)
		v |= DISCARD_BIT;
	// Pairs with a consumer's sleepers increment before its last look at
	// the record (see wait() and light_commit).
	if (light_commit) [[likely]] {
		len->store(v, std::memory_order_release);
		std::atomic_signal_fence(std::memory_order_seq_cst);
	} else {
		len->exchange(v, std::memory_order_seq_cst);
	}
	auto *base = reinterpret_cast<uint8_t *>(c);
	uint64_t mask = c->mask;
	uint64_t rec_pos = uint64_t(hdr - (base + 3 * PAGE)) & mask;
	auto *cons = reinterpret_cast<std::atomic<uint64_t> *>(base + PAGE);
	if ((flags & (RB_NO_WAKEUP | RB_FORCE_WAKEUP)) == RB_NO_WAKEUP ||
	    c->sleepers.load(std::memory_order_relaxed) == 0) [[likely]]
		return;
	if ((flags & RB_FORCE_WAKEUP) ||
	    (cons->load(std::memory_order_relaxed) & mask) == rec_pos)
		wake(c);
}

// --- consumer side ------------------------------------------------------------

// One record's length in the ring (header included), from its header word.
inline uint64_t record_len(uint32_t hdr_len) noexcept
{
	return ((hdr_len & ~(BUSY_BIT | DISCARD_BIT)) + HDR_SZ + 7) &
	       ~uint64_t(7);
}

// libbpf's ringbuf_process_ring: hands each committed record after
// consumer_pos to fn (not discarded ones), in order, advancing consumer_pos
// after each; stops at a busy record, at the producer position, after
// `max` records, or when fn returns non-zero (after that record). Returns
// the records handed. One consumer per ring at a time.
//
// consumer_pos is published every 64 records and on return rather than after
// each record (libbpf's way), so that producers, who read it, do not pull
// its cache line away for every record.
template <class Fn>
uint64_t drain(local *l, uint64_t max, Fn &&fn)
{
	uint64_t n = 0, unpublished = 0;
	uint64_t cons = l->consumer_pos->load(std::memory_order_acquire);
	auto done = [&] {
		if (unpublished)
			l->consumer_pos->store(cons, std::memory_order_release);
		return n;
	};
	for (;;) {
		uint64_t prod = l->producer_pos->load(std::memory_order_acquire);
		if (cons >= prod)
			return done();
		while (cons < prod) {
			uint8_t *hdr = l->data + (cons & l->mask);
			uint32_t len =
				reinterpret_cast<std::atomic<uint32_t> *>(hdr)
					->load(std::memory_order_acquire);
			if (len & BUSY_BIT)
				return done();
			cons += record_len(len);
			int stop = 0;
			if (!(len & DISCARD_BIT)) {
				stop = fn(hdr + HDR_SZ,
					  uint64_t(len & ~DISCARD_BIT));
				n++;
			}
			if (++unpublished == 64) {
				l->consumer_pos->store(cons,
						       std::memory_order_release);
				unpublished = 0;
			}
			if (stop || n >= max)
				return done();
		}
	}
}

// Whether a committed record waits after consumer_pos.
inline bool readable(local *l) noexcept
{
	uint64_t cons = l->consumer_pos->load(std::memory_order_seq_cst);
	uint64_t prod = l->producer_pos->load(std::memory_order_seq_cst);
	if (cons >= prod)
		return false;
	uint32_t len = reinterpret_cast<std::atomic<uint32_t> *>(
			       l->data + (cons & l->mask))
			       ->load(std::memory_order_seq_cst);
	return !(len & BUSY_BIT);
}

// Sleeps until a producer wakes the ring's consumers or timeout_ns pass
// (< 0: no timeout), unless a record is readable already. Returns true when
// it slept (a wake-up, a timeout or a signal), false when there was data or
// *stop was set (checked after the futex word is read, so that a stop
// followed by wake() is never missed).
bool wait(local *l, int64_t timeout_ns,
	  const std::atomic<bool> *stop = nullptr) noexcept;

} // namespace bpftime::maps_userspace::ringbuf
