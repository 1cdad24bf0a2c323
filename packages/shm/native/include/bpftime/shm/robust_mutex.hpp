// robust_mutex.hpp: process-shared mutexes that survive the death of their
// owner.
//
// They live inside a shared-memory segment and are used by every process that
// maps it. A process killed while holding one (SIGKILL, crash) must not wedge
// the others: the next locker is told the previous owner died
// (lock_state::recovered), gets the lock, and is responsible for repairing
// whatever the dead owner left half-done. This is the pthread robust-mutex
// protocol (PTHREAD_MUTEX_ROBUST; EOWNERDEAD then pthread_mutex_consistent).
//
// The classes also satisfy Boost.Interprocess's mutex concept (lock, unlock,
// try_lock, timed_lock), so the segment's own allocator is protected by them
// too (robust_mutex_family).
#pragma once

#include <bpftime/common/result.hpp>

#include <boost/date_time/posix_time/posix_time_types.hpp>
#include <cstdint>
#include <pthread.h>

namespace bpftime::shm {

enum class lock_state {
	acquired,  // normal acquisition
	recovered, // the previous owner died holding it; state may need repair
};

template <bool Recursive> class basic_robust_mutex {
    public:
	basic_robust_mutex() noexcept;
	~basic_robust_mutex();
	basic_robust_mutex(const basic_robust_mutex &) = delete;
	basic_robust_mutex &operator=(const basic_robust_mutex &) = delete;

	// EDEADLK: the calling thread already holds a non-recursive mutex.
	// ENOTRECOVERABLE: a previous recovery was abandoned (never happens
	// with these classes, which always mark the mutex consistent).
	result<lock_state> lock_checked() noexcept;
	// ETIMEDOUT when not acquired within timeout_ns.
	result<lock_state> lock_for(uint64_t timeout_ns) noexcept;
	// EBUSY when held by another thread.
	result<lock_state> try_lock_checked() noexcept;
	// EPERM when the caller does not hold it.
	status unlock_checked() noexcept;

	// Boost.Interprocess mutex concept; failures other than recovery
	// throw boost::interprocess::lock_exception like Boost's own mutexes.
	void lock();
	bool try_lock();
	bool timed_lock(const boost::posix_time::ptime &abs_time);
	void unlock();

    private:
	pthread_mutex_t mutex_;
};

using robust_mutex = basic_robust_mutex<false>;
using robust_recursive_mutex = basic_robust_mutex<true>;

static_assert(sizeof(robust_mutex) == 40,
	      "robust_mutex is part of the segment layout");

// Boost.Interprocess mutex family for the segment's allocator and index.
struct robust_mutex_family {
	using mutex_type = robust_mutex;
	using recursive_mutex_type = robust_recursive_mutex;
};

extern template class basic_robust_mutex<false>;
extern template class basic_robust_mutex<true>;

} // namespace bpftime::shm
