// queue_stack/owner_lock.cpp: owner_lock's slow paths (owner_lock.hpp).
#include "queue_stack/owner_lock.hpp"

#include <cerrno>
#include <climits>
#include <ctime>
#include <linux/futex.h>
#include <pthread.h>
#include <signal.h>
#include <sys/syscall.h>
#include <unistd.h>

namespace bpftime::maps_userspace::queue_stack {

namespace {

constinit thread_local uint32_t t_tid
	__attribute__((tls_model("initial-exec"))) = 0;

// The child of a fork() is a new thread with the forking thread's
// thread-locals: its tid must be asked again.
[[maybe_unused]] const int forget_tid_on_fork =
	pthread_atfork(nullptr, nullptr, [] { t_tid = 0; });

bool owner_dead(uint32_t v) noexcept
{
	const pid_t tid = pid_t(v & ~owner_lock::WAITERS);
	return tid > 0 && kill(tid, 0) != 0 && errno == ESRCH;
}

} // namespace

uint32_t owner_lock::self_tid() noexcept
{
	if (!t_tid) [[unlikely]]
		t_tid = uint32_t(syscall(SYS_gettid));
	return t_tid;
}

void owner_lock::lock_slow(uint32_t tid) noexcept
{
	const int saved_errno = errno;
	for (int i = 0; i < 100; i++) {
		__builtin_ia32_pause();
		uint32_t free = 0;
		if (word.load(std::memory_order_relaxed) == 0 &&
		    word.compare_exchange_strong(free, tid,
						 std::memory_order_acquire,
						 std::memory_order_relaxed)) {
			errno = saved_errno;
			return;
		}
	}
	for (;;) {
		uint32_t v = word.load(std::memory_order_relaxed);
		if (v == 0) {
			// Taken with the mark: others may sleep on it too.
			if (word.compare_exchange_strong(v, tid | WAITERS,
							 std::memory_order_acquire,
							 std::memory_order_relaxed))
				break;
			continue;
		}
		if (owner_dead(v)) {
			if (word.compare_exchange_strong(v, tid | WAITERS,
							 std::memory_order_acquire,
							 std::memory_order_relaxed))
				break;
			continue;
		}
		if (!(v & WAITERS) &&
		    !word.compare_exchange_strong(v, v | WAITERS,
						  std::memory_order_relaxed))
			continue;
		const timespec ms = { 0, 1'000'000 };
		syscall(SYS_futex, &word, FUTEX_WAIT, v | WAITERS, &ms, nullptr,
			0);
	}
	errno = saved_errno;
}

void owner_lock::unlock_slow() noexcept
{
	if (word.exchange(0, std::memory_order_release) & WAITERS) {
		const int saved_errno = errno;
		syscall(SYS_futex, &word, FUTEX_WAKE, INT_MAX, nullptr, nullptr,
			0);
		errno = saved_errno;
	}
}

} // namespace bpftime::maps_userspace::queue_stack
