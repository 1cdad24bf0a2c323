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

	// Times the calling thread holds it (recursive; 1 otherwise): valid
	// only while held.
	unsigned depth() const noexcept;

    private:
	pthread_mutex_t mutex_;
};

using robust_mutex = basic_robust_mutex<false>;
using robust_recursive_mutex = basic_robust_mutex<true>;

static_assert(sizeof(robust_mutex) == 40,
	      "robust_mutex is part of the segment layout");

// Boost.Interprocess mutex family for the segment's allocator and index.
// The allocator's is recursive so that a registry transaction can hold it
// across all its allocations (segment::allocator_transaction).
struct robust_mutex_family {
	using mutex_type = robust_recursive_mutex;
	using recursive_mutex_type = robust_recursive_mutex;
};

// Called by the Boost-facing lock(), try_lock() and timed_lock() (so: by
// the segment's allocator and named-object index, which are the only users of
// those) with the mutex just acquired from an owner that died. Boost cannot
// repair what the owner left half-changed; the segment records the death
// (segment.cpp). Must not lock or allocate in the segment.
using owner_died_hook = void (*)(const void *mutex) noexcept;
void set_boost_owner_died_hook(owner_died_hook hook) noexcept;

// Called by the same entry points on every acquisition of a non-recursive
// mutex (recovered: its owner died) and before every release: the segment's
// allocator journal (segment.cpp) snapshots the allocator's metadata after
// the lock is taken, restores it when the owner died inside, and forgets it
// before the unlock.
struct boost_lock_hooks {
	// True when it undid what the dead owner left (the death needs no
	// further report to owner_died_hook). outermost: this thread did not
	// hold the (recursive) mutex before.
	bool (*acquired)(const void *mutex, bool recovered,
			 bool outermost) noexcept;
	// last: this unlock releases the mutex (not a nested one).
	void (*releasing)(const void *mutex, bool last) noexcept;
};
void set_boost_lock_hooks(const boost_lock_hooks *hooks) noexcept;

extern template class basic_robust_mutex<false>;
extern template class basic_robust_mutex<true>;

} // namespace bpftime::shm
