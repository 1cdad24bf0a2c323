// prog/cpu_slot.cpp: CPU slots owned by runs (bpftime/handlers/cpu_slot.hpp).
//
// Claim: the thread's current CPU's word first (uncontended unless a run
// there was preempted), then every other word once; each a compare-and-swap
// 0 -> tid. When all are held, the thread marks the word of its CPU
// CPU_SLOT_WAITERS and sleeps on it (a shared futex: the word is in the
// segment, the waiters in any process), with a timeout so that it also
// rechecks the other words and notices an owner that died. Release: an
// exchange to 0, and a wake of every sleeper when the word carried
// CPU_SLOT_WAITERS (they all scan again; there are at most as many as
// threads that run programs).
#include "prog/cpu_slot_table.hpp"

#include <bpftime/handlers/registry.hpp>

#include <cerrno>
#include <climits>
#include <ctime>
#include <linux/futex.h>
#include <sched.h>
#include <signal.h>
#include <sys/rseq.h>
#include <sys/syscall.h>
#include <unistd.h>

namespace bpftime::handlers {

constinit thread_local int32_t t_cpu_slot
	__attribute__((tls_model("initial-exec"))) = -1;

namespace {

// gettid(), once per thread: the owner value.
constinit thread_local uint32_t t_tid
	__attribute__((tls_model("initial-exec"))) = 0;

std::atomic<uint64_t> g_unowned{ 0 }, g_waits{ 0 };

uint32_t self_tid() noexcept
{
	if (!t_tid) [[unlikely]]
		t_tid = uint32_t(syscall(SYS_gettid));
	return t_tid;
}

// The CPU from glibc's rseq area (one load), sched_getcpu() without one.
int this_cpu() noexcept
{
	if (__rseq_size) {
		auto *rs = reinterpret_cast<volatile struct rseq *>(
			static_cast<char *>(__builtin_thread_pointer()) +
			__rseq_offset);
		int cpu = int(rs->cpu_id);
		if (cpu >= 0)
			return cpu;
	}
	return sched_getcpu();
}

bool try_take(cpu_slot &s, uint32_t tid) noexcept
{
	uint32_t free = 0;
	return s.owner.load(std::memory_order_relaxed) == 0 &&
	       s.owner.compare_exchange_strong(free, tid,
					       std::memory_order_acquire,
					       std::memory_order_relaxed);
}

// The owner's thread is gone: kill(tid, 0) finds any thread by its id, and
// ESRCH means none (EPERM: it exists, another user's).
bool owner_dead(uint32_t owner) noexcept
{
	const pid_t tid = pid_t(owner & ~CPU_SLOT_WAITERS);
	return tid > 0 && kill(tid, 0) != 0 && errno == ESRCH;
}

uint64_t now_ns() noexcept
{
	timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return uint64_t(ts.tv_sec) * 1'000'000'000u + uint64_t(ts.tv_nsec);
}

[[gnu::noinline]] int32_t claim_slow(const cpu_slot_table &t, uint32_t start,
				     uint32_t tid) noexcept
{
	const int saved_errno = errno;
	g_waits.fetch_add(1, std::memory_order_relaxed);
	const uint64_t deadline = now_ns() + CPU_SLOT_WAIT_NS;
	for (;;) {
		for (uint32_t i = 0; i < t.count; i++) {
			cpu_slot &s = t.slots[(start + i) % t.count];
			if (try_take(s, tid)) {
				errno = saved_errno;
				return int32_t((start + i) % t.count);
			}
			uint32_t v = s.owner.load(std::memory_order_relaxed);
			if (v && owner_dead(v) &&
			    s.owner.compare_exchange_strong(
				    v, tid, std::memory_order_acquire,
				    std::memory_order_relaxed)) {
				// Wake whoever slept on the dead owner's word.
				if (v & CPU_SLOT_WAITERS)
					syscall(SYS_futex, &s.owner, FUTEX_WAKE,
						INT_MAX, nullptr, nullptr, 0);
				errno = saved_errno;
				return int32_t((start + i) % t.count);
			}
		}
		const uint64_t now = now_ns();
		if (now >= deadline) {
			g_unowned.fetch_add(1, std::memory_order_relaxed);
			errno = saved_errno;
			return -1;
		}
		// Sleep on the word of this CPU until its owner releases it
		// (or 1 ms passes: another word may have been freed with no
		// sleeper marked on it).
		cpu_slot &s = t.slots[start];
		uint32_t v = s.owner.load(std::memory_order_relaxed);
		if (v == 0)
			continue;
		if (!(v & CPU_SLOT_WAITERS) &&
		    !s.owner.compare_exchange_strong(v, v | CPU_SLOT_WAITERS,
						     std::memory_order_relaxed))
			continue;
		const timespec ms = { 0, 1'000'000 };
		syscall(SYS_futex, &s.owner, FUTEX_WAIT, v | CPU_SLOT_WAITERS,
			&ms, nullptr, 0);
	}
}

} // namespace

int64_t cpu_slot_tls_offset() noexcept
{
	return reinterpret_cast<char *>(&t_cpu_slot) -
	       static_cast<char *>(__builtin_thread_pointer());
}

int32_t claim_cpu_slot(const cpu_slot_table &t) noexcept
{
	if (!t.count) [[unlikely]] {
		g_unowned.fetch_add(1, std::memory_order_relaxed);
		return -1;
	}
	const uint32_t tid = self_tid();
	int cpu = this_cpu();
	const uint32_t start = cpu >= 0 && uint32_t(cpu) < t.count ?
				       uint32_t(cpu) :
				       tid % t.count;
	int32_t slot = -1;
	if (try_take(t.slots[start], tid)) [[likely]]
		slot = int32_t(start);
	else
		slot = claim_slow(t, start, tid);
	t_cpu_slot = slot;
	return slot;
}

void release_cpu_slot(const cpu_slot_table &t, int32_t slot) noexcept
{
	t_cpu_slot = -1;
	cpu_slot &s = t.slots[slot];
	if (s.owner.exchange(0, std::memory_order_release) & CPU_SLOT_WAITERS)
		[[unlikely]] {
		const int saved_errno = errno;
		syscall(SYS_futex, &s.owner, FUTEX_WAKE, INT_MAX, nullptr,
			nullptr, 0);
		errno = saved_errno;
	}
}

cpu_slot_stats cpu_slot_counters() noexcept
{
	return { g_unowned.load(std::memory_order_relaxed),
		 g_waits.load(std::memory_order_relaxed) };
}

cpu_slot_table open_cpu_slots(shm::segment_manager *mgr) noexcept
{
	try {
		const uint32_t n = possible_cpus();
		cpu_slot *p = mgr->find_or_construct<cpu_slot>(CPU_SLOTS_NAME)[n]();
		auto found = mgr->find<cpu_slot>(CPU_SLOTS_NAME);
		if (!p || found.first != p)
			return {};
		return { p, uint32_t(found.second) };
	} catch (...) {
		return {};
	}
}

} // namespace bpftime::handlers
