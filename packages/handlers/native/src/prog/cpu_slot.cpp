// prog/cpu_slot.cpp: CPU slots owned by runs (bpftime/handlers/cpu_slot.hpp).
//
// Locked instructions cost 30-40 ns each on the machines this runs on, more
// than the runs themselves, so the common path has none. A run claims only
// the word of the CPU it runs on, in a restartable sequence (rseq(2), on
// the area glibc registers for every thread): "if the word is 0, store the
// tid" commits only if the thread was neither preempted nor migrated
// between the check and the store, so two claimers of one word, which can
// only be threads on that word's CPU, never both succeed, with plain
// stores. The owner releases with a plain store of 0 (it may have migrated
// meanwhile: no other thread writes a held word, but for the two cases
// below).
//
// When its CPU's word is held (its owner was preempted in the middle of its
// run), a claimer marks the word CPU_SLOT_WAITERS with a compare-and-swap
// and sleeps on it (a shared futex: the word is in the segment, the
// sleepers in any process) for at most 1 ms, then tries again on whatever
// CPU it is then. Its owner releases with an exchange when it finds the
// mark, and wakes the sleepers. (A mark set between the owner's check and
// its store is lost with the store: those sleepers wake after their 1 ms.)
// A word whose owner thread is gone (its process was killed in a run) is
// taken over with a compare-and-swap from that owner's value, never from
// 0, so it cannot race with a restartable claim. Words of other CPUs are
// never claimed: a compare-and-swap from 0 there could race with a plain
// claim.
//
// Without an rseq area (GLIBC_TUNABLES=glibc.pthread.rseq=0) runs claim no
// slot and go on without one, as before slots existed (counted).
#include "prog/cpu_slot_table.hpp"

#include <bpftime/handlers/registry.hpp>

#include <cerrno>
#include <climits>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <fcntl.h>
#include <linux/futex.h>
#include <pthread.h>
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

// The child of a fork() is a new thread with the forking thread's
// thread-locals: its tid must be asked again.
[[maybe_unused]] const int forget_tid_on_fork =
	pthread_atfork(nullptr, nullptr, [] { t_tid = 0; });

uint32_t self_tid() noexcept
{
	if (!t_tid) [[unlikely]]
		t_tid = uint32_t(syscall(SYS_gettid));
	return t_tid;
}

struct rseq *rseq_area() noexcept
{
	return reinterpret_cast<struct rseq *>(
		static_cast<char *>(__builtin_thread_pointer()) + __rseq_offset);
}

enum class claim_result { claimed, held, restarted };

// In one restartable sequence: if the thread still runs on `cpu` and the
// word is 0, store tid. The descriptor (struct rseq_cs: version, flags,
// start, length up to the committing store included, abort address) goes
// into rs->rseq_cs; the kernel sends the thread to the abort address, which
// is preceded by glibc's RSEQ_SIG, when it preempts, migrates or signals it
// inside [1, 2). x86-64 only, as the JIT.
claim_result rseq_claim(struct rseq *rs, uint32_t cpu, cpu_slot &slot,
			uint32_t tid) noexcept
{
	asm goto(".pushsection __rseq_cs, \"aw\"\n\t"
		 ".balign 32\n\t"
		 "3:\n\t"
		 ".long 0x0, 0x0\n\t"
		 ".quad 1f, (2f - 1f), 4f\n\t"
		 ".popsection\n\t"
		 "leaq 3b(%%rip), %%rax\n\t"
		 "movq %%rax, 8(%[rs])\n\t"
		 "1:\n\t"
		 "cmpl %[cpu], 4(%[rs])\n\t"
		 "jnz %l[restarted]\n\t"
		 "cmpl $0, (%[owner])\n\t"
		 "jnz %l[held]\n\t"
		 "movl %[tid], (%[owner])\n\t"
		 "2:\n\t"
		 ".pushsection __rseq_failure, \"ax\"\n\t"
		 // ud1 with the signature as its operand, as glibc's
		 // bits/rseq.h describes.
		 ".byte 0x0f, 0xb9, 0x3d\n\t"
		 ".long 0x53053053\n\t"
		 "4:\n\t"
		 "jmp %l[restarted]\n\t"
		 ".popsection\n\t"
		 :
		 : [rs] "r"(rs), [cpu] "r"(cpu), [owner] "r"(&slot.owner),
		   [tid] "r"(tid)
		 : "rax", "memory", "cc"
		 : restarted, held);
	return claim_result::claimed;
restarted:
	return claim_result::restarted;
held:
	return claim_result::held;
}
static_assert(RSEQ_SIG == 0x53053053);

// The owner's thread is gone: kill(tid, 0) finds any thread by its id, and
// ESRCH means none (EPERM: it exists, another user's).
bool owner_dead(uint32_t owner) noexcept
{
	const pid_t tid = pid_t(owner & ~CPU_SLOT_WAITERS);
	return tid > 0 && kill(tid, 0) != 0 && errno == ESRCH;
}

// The owner is stopped (SIGSTOP, a debugger): its run will not end soon.
// The state letter of /proc/<tid>/stat, after the command's parenthesis.
bool owner_stopped(uint32_t owner) noexcept
{
	char path[48], buf[512];
	snprintf(path, sizeof path, "/proc/%u/stat", owner & ~CPU_SLOT_WAITERS);
	const int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return false;
	const ssize_t n = read(fd, buf, sizeof buf - 1);
	close(fd);
	if (n <= 0)
		return false;
	buf[n] = 0;
	const char *p = strrchr(buf, ')');
	return p && p[1] == ' ' && (p[2] == 'T' || p[2] == 't');
}

uint64_t now_ns() noexcept
{
	timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return uint64_t(ts.tv_sec) * 1'000'000'000u + uint64_t(ts.tv_nsec);
}

[[gnu::noinline]] int32_t claim_slow(const cpu_slot_table &t, struct rseq *rs,
				     uint32_t tid) noexcept
{
	const int saved_errno = errno;
	uint64_t deadline = 0, stopped_check = 0;
	int32_t slot = -1;
	for (;;) {
		const uint32_t cpu = rs->cpu_id_start;
		if (cpu >= t.count) // not a possible CPU: nothing to own
			break;
		cpu_slot &s = t.slots[cpu];
		const claim_result r = rseq_claim(rs, cpu, s, tid);
		if (r == claim_result::claimed) {
			slot = int32_t(cpu);
			break;
		}
		if (r == claim_result::restarted)
			continue;
		uint32_t v = s.owner.load(std::memory_order_relaxed);
		if (v == 0)
			continue;
		if (owner_dead(v) &&
		    s.owner.compare_exchange_strong(v, tid,
						    std::memory_order_acquire,
						    std::memory_order_relaxed)) {
			// Whoever slept on the dead owner's word looks again.
			if (v & CPU_SLOT_WAITERS)
				syscall(SYS_futex, &s.owner, FUTEX_WAKE, INT_MAX,
					nullptr, nullptr, 0);
			slot = int32_t(cpu);
			break;
		}
		const uint64_t now = now_ns();
		if (!deadline) {
			g_waits.fetch_add(1, std::memory_order_relaxed);
			deadline = now + CPU_SLOT_WAIT_NS;
			stopped_check = now + CPU_SLOT_STOPPED_CHECK_NS;
		} else if (now >= deadline) {
			break;
		} else if (now >= stopped_check) {
			if (owner_stopped(v))
				break;
			stopped_check = now + CPU_SLOT_STOPPED_CHECK_NS;
		}
		if (!(v & CPU_SLOT_WAITERS) &&
		    !s.owner.compare_exchange_strong(v, v | CPU_SLOT_WAITERS,
						     std::memory_order_relaxed))
			continue;
		const timespec ms = { 0, 1'000'000 };
		syscall(SYS_futex, &s.owner, FUTEX_WAIT, v | CPU_SLOT_WAITERS,
			&ms, nullptr, 0);
	}
	if (slot < 0)
		g_unowned.fetch_add(1, std::memory_order_relaxed);
	errno = saved_errno;
	return slot;
}

} // namespace

int64_t cpu_slot_tls_offset() noexcept
{
	return reinterpret_cast<char *>(&t_cpu_slot) -
	       static_cast<char *>(__builtin_thread_pointer());
}

int32_t claim_cpu_slot(const cpu_slot_table &t) noexcept
{
	if (!t.count || __rseq_size == 0) [[unlikely]] {
		g_unowned.fetch_add(1, std::memory_order_relaxed);
		return -1;
	}
	const uint32_t tid = self_tid();
	struct rseq *rs = rseq_area();
	const uint32_t cpu = rs->cpu_id_start;
	int32_t slot;
	if (cpu < t.count &&
	    rseq_claim(rs, cpu, t.slots[cpu], tid) == claim_result::claimed)
		[[likely]]
		slot = int32_t(cpu);
	else
		slot = claim_slow(t, rs, tid);
	t_cpu_slot = slot;
	return slot;
}

void release_cpu_slot(const cpu_slot_table &t, int32_t slot) noexcept
{
	t_cpu_slot = -1;
	cpu_slot &s = t.slots[slot];
	if (s.owner.load(std::memory_order_relaxed) == t_tid) [[likely]] {
		s.owner.store(0, std::memory_order_release);
		return;
	}
	if (s.owner.exchange(0, std::memory_order_release) & CPU_SLOT_WAITERS) {
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
