// ringbuf/ringbuf.cpp: the cold parts of the ring buffer core (ringbuf.hpp):
// creation, the per-process alias, the lock's slow path, futex waits.
#include "ringbuf/ringbuf.hpp"

#include <bpftime/handlers/bpf_defs.hpp>
#include <bpftime/shm/segment.hpp>

#include <linux/futex.h>
#include <linux/membarrier.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <new>

namespace bpftime::maps_userspace::ringbuf {

using namespace bpftime::handlers;

namespace {

inline constexpr uint64_t CONTROL_PAGES = 3; // control, consumer, producer

uint8_t *block_of(void *state)
{
	return static_cast<uint8_t *>(state);
}

} // namespace

int check_attrs(const map_create_args *a, const char *type, char *err,
		size_t err_len)
{
	if (a->key_size != 0)
		return set_error(err, err_len, EINVAL,
				 "key size %u: %s maps take no key (0)",
				 a->key_size, type);
	if (a->value_size != 0)
		return set_error(err, err_len, EINVAL,
				 "value size %u: %s maps take no value (0)",
				 a->value_size, type);
	if (a->map_flags & ~BPF_F_NUMA_NODE)
		return set_error(err, err_len, EINVAL,
				 "map_flags 0x%x: %s maps take only "
				 "BPF_F_NUMA_NODE",
				 a->map_flags, type);
	uint32_t n = a->max_entries;
	if (n == 0 || (n & (n - 1)) != 0 || n % PAGE != 0)
		return set_error(err, err_len, EINVAL,
				 "max_entries %u: a %s's size must be a power "
				 "of two and a multiple of the page size (%llu)",
				 n, type, (unsigned long long)PAGE);
	return 0;
}

int create(const map_create_args *a, uint32_t magic, uint32_t version,
	   void **out, char *err, size_t err_len)
{
	auto *mgr = static_cast<shm::segment_manager *>(a->segment_manager);
	uint64_t len = CONTROL_PAGES * PAGE + a->max_entries;
	void *block = mgr->allocate_aligned(len, PAGE, std::nothrow);
	if (!block)
		return set_error(err, err_len, ENOMEM,
				 "the segment has no room for a ring of %u "
				 "bytes (%llu with its pages)",
				 a->max_entries, (unsigned long long)len);
	memset(block, 0, len);
	auto *c = static_cast<control *>(block);
	c->header.version = version;
	keep_create_args(c, a);
	c->mask = uint64_t(a->max_entries) - 1;
	c->header.magic = magic;
	*out = c;
	return 0;
}

void destroy(void *segment_manager, void *state)
{
	auto *mgr = static_cast<shm::segment_manager *>(segment_manager);
	static_cast<control *>(state)->header.magic = 0;
	mgr->deallocate(state);
}

int open(void *state, void **out, char *err, size_t err_len)
{
	auto *c = static_cast<control *>(state);
	uint64_t size = c->mask + 1;
	uint64_t head = CONTROL_PAGES * PAGE;
	size_t alias_len = head + 2 * size;
	// The alias starts at a multiple of its length rounded up to a power
	// of two (ring_of() masks a sample's address with it): reserve twice
	// that, keep the aligned part.
	uint32_t shift = 12;
	while ((uint64_t(1) << shift) < alias_len)
		shift++;
	size_t align = size_t(1) << shift;
	void *raw = mmap(nullptr, align + alias_len, PROT_NONE,
			 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (raw == MAP_FAILED)
		return set_error(err, err_len, errno,
				 "open: cannot reserve %zu bytes of address "
				 "space for the ring's alias",
				 align + alias_len);
	uintptr_t r = reinterpret_cast<uintptr_t>(raw);
	uintptr_t aligned = (r + align - 1) & ~uintptr_t(align - 1);
	if (aligned > r)
		munmap(raw, aligned - r);
	if (r + align + alias_len > aligned + alias_len)
		munmap(reinterpret_cast<void *>(aligned + alias_len),
		       r + align + alias_len - (aligned + alias_len));
	void *base = reinterpret_cast<void *>(aligned);
	auto *b = static_cast<uint8_t *>(base);
	void *first = mremap(state, 0, head + size, MREMAP_MAYMOVE | MREMAP_FIXED,
			     b);
	void *second = first == MAP_FAILED ?
			       MAP_FAILED :
			       mremap(block_of(state) + head, 0, size,
				      MREMAP_MAYMOVE | MREMAP_FIXED,
				      b + head + size);
	if (first == MAP_FAILED || second == MAP_FAILED) {
		int e = errno;
		munmap(base, alias_len);
		return set_error(err, err_len, e,
				 "open: cannot map the ring's data twice "
				 "(mremap of the segment's pages: %s)",
				 strerror(e));
	}
	register_light_commit();
	auto *l = new (std::nothrow) local{};
	if (!l) {
		munmap(base, alias_len);
		return set_error(err, err_len, ENOMEM, "open: out of memory");
	}
	l->ctl = reinterpret_cast<control *>(b);
	l->segment_state = state;
	l->consumer_pos = reinterpret_cast<std::atomic<uint64_t> *>(b + PAGE);
	l->producer_pos =
		reinterpret_cast<std::atomic<uint64_t> *>(b + 2 * PAGE);
	l->data = b + head;
	l->mask = c->mask;
	l->alias_len = alias_len;
	l->align_shift = shift;
	*out = l;
	return 0;
}

void close(void *lp)
{
	auto *l = static_cast<local *>(lp);
	munmap(l->ctl, l->alias_len);
	delete l;
}

void *mmap_region(void *lp, uint64_t *len)
{
	auto *l = static_cast<local *>(lp);
	*len = 2 * PAGE + l->mask + 1;
	return block_of(l->segment_state) + PAGE;
}


thread_local uint32_t cached_tid [[gnu::tls_model("initial-exec")]] = 0;

uint32_t fetch_tid() noexcept
{
	// A forked child starts with its parent's cached tid: forget it.
	static const int registered = pthread_atfork(
		nullptr, nullptr, [] { cached_tid = 0; });
	(void)registered;
	return uint32_t(syscall(SYS_gettid));
}

void lock_slow(std::atomic<uint32_t> &word, uint32_t tid) noexcept
{
	for (uint64_t spins = 1;; spins++) {
		uint32_t owner = word.load(std::memory_order_relaxed);
		if (owner == 0) {
			uint32_t expected = 0;
			if (word.compare_exchange_weak(expected, tid,
						       std::memory_order_acquire,
						       std::memory_order_relaxed))
				return;
			continue;
		}
		if (spins < 256) {
			__builtin_ia32_pause();
			continue;
		}
		// The owner holds the lock for a few instructions; after
		// this long it was preempted or it died.
		if (spins % 64 == 0 && kill(pid_t(owner), 0) != 0 &&
		    errno == ESRCH) {
			uint32_t expected = owner;
			if (word.compare_exchange_strong(
				    expected, tid, std::memory_order_acquire,
				    std::memory_order_relaxed))
				return;
		}
		sched_yield();
	}
}

bool light_commit = false;

namespace {
// The process that registered; a forked child has a new mm that is not
// registered, so it commits with the exchange until it registers itself.
pid_t registered_pid = 0;
} // namespace

void register_light_commit() noexcept
{
	static const int at_fork = pthread_atfork(nullptr, nullptr, [] {
		light_commit = false;
		registered_pid = 0;
	});
	(void)at_fork;
	pid_t me = getpid();
	if (registered_pid == me)
		return;
	registered_pid = me;
	light_commit = syscall(SYS_membarrier,
			       MEMBARRIER_CMD_REGISTER_GLOBAL_EXPEDITED, 0,
			       0) == 0;
}

bool heavy_fence() noexcept
{
	return syscall(SYS_membarrier, MEMBARRIER_CMD_GLOBAL_EXPEDITED, 0, 0) ==
	       0;
}

void wake(control *c) noexcept
{
	c->wake_seq.fetch_add(1, std::memory_order_seq_cst);
	c->wakeups.fetch_add(1, std::memory_order_relaxed);
	syscall(SYS_futex, reinterpret_cast<uint32_t *>(&c->wake_seq),
		FUTEX_WAKE, INT_MAX, nullptr, nullptr, 0);
}

bool reap_dead(local *l) noexcept
{
	uint64_t cons = l->consumer_pos->load(std::memory_order_acquire);
	uint64_t prod = l->producer_pos->load(std::memory_order_acquire);
	if (cons >= prod)
		return false;
	uint8_t *hdr = l->data + (cons & l->mask);
	auto *len = reinterpret_cast<std::atomic<uint32_t> *>(hdr);
	uint32_t v = len->load(std::memory_order_acquire);
	if (!(v & BUSY_BIT))
		return false;
	uint32_t who;
	memcpy(&who, hdr + 4, 4);
	pid_t tid = pid_t(who & TID_MASK);
	if (tid == 0 || kill(tid, 0) == 0 || errno != ESRCH)
		return false;
	uint32_t dead = (v & ~BUSY_BIT) | DISCARD_BIT;
	return len->compare_exchange_strong(v, dead, std::memory_order_acq_rel);
}

bool wait(local *l, int64_t timeout_ns, const std::atomic<bool> *stop) noexcept
{
	control *c = l->ctl;
	c->sleepers.fetch_add(1, std::memory_order_seq_cst);
	uint32_t seq = c->wake_seq.load(std::memory_order_seq_cst);
	bool fenced = heavy_fence();
	bool slept = false;
	if (!readable(l) && !(stop && stop->load(std::memory_order_seq_cst)) &&
	    !reap_dead(l)) {
		timespec ts{}, *tp = nullptr;
		if (!fenced && (timeout_ns < 0 || timeout_ns > 1000000))
			timeout_ns = 1000000;
		// A busy record at the consumer's position: its producer may
		// die before it commits, and nobody would wake us; look again
		// every 10 ms (a commit still wakes us at once).
		uint64_t cons = l->consumer_pos->load(std::memory_order_acquire);
		if (cons < l->producer_pos->load(std::memory_order_acquire) &&
		    (timeout_ns < 0 || timeout_ns > 10000000))
			timeout_ns = 10000000;
		if (timeout_ns >= 0) {
			ts.tv_sec = time_t(timeout_ns / 1000000000);
			ts.tv_nsec = long(timeout_ns % 1000000000);
			tp = &ts;
		}
		syscall(SYS_futex, reinterpret_cast<uint32_t *>(&c->wake_seq),
			FUTEX_WAIT, seq, tp, nullptr, 0);
		slept = true;
	}
	c->sleepers.fetch_sub(1, std::memory_order_seq_cst);
	return slept;
}

} // namespace bpftime::maps_userspace::ringbuf
