// queue_stack/owner_lock.hpp: the lock of a queue or stack (the kernel's
// raw spinlock in queue_stack_maps.c), one word in the segment.
//
// The word holds 0 when free, else the holder's tid, plus WAITERS while a
// thread sleeps on it. Lock: one compare-and-swap 0 -> tid. Unlock: a plain
// store of 0 when the word is still just the tid, else an exchange and a
// wake of the sleepers. A pthread robust mutex costs two locked instructions
// (lock and unlock), at 30-40 ns each on the machines this runs on, plus
// its robust-list bookkeeping; this costs one.
//
// Contended, a locker spins a little, then marks the word WAITERS and
// sleeps on it (a shared futex: lockers in any process) for at most 1 ms at
// a time; once it has slept it takes the lock with the mark set, so its
// unlock wakes the others. (A mark set between an unlocker's check and its
// store is lost with the store: that sleeper wakes after its 1 ms.) A holder
// killed with the lock held (SIGKILL) is noticed by a sleeper, whose
// kill(tid, 0) answers ESRCH, and the lock taken over: the queue and stack
// write their indexes last, with single stores, so the next holder goes on
// from what the dead one left.
#pragma once

#include <atomic>
#include <cstdint>

namespace bpftime::maps_userspace::queue_stack {

struct owner_lock {
	static constexpr uint32_t WAITERS = 1u << 31;
	std::atomic<uint32_t> word;

	void lock() noexcept
	{
		const uint32_t tid = self_tid();
		uint32_t free = 0;
		if (word.compare_exchange_strong(free, tid,
						 std::memory_order_acquire,
						 std::memory_order_relaxed))
			[[likely]]
			return;
		lock_slow(tid);
	}
	void unlock() noexcept
	{
		if (word.load(std::memory_order_relaxed) == self_tid()) [[likely]]
			word.store(0, std::memory_order_release);
		else
			unlock_slow();
	}

	// gettid(), kept per thread (and forgotten in a fork's child).
	static uint32_t self_tid() noexcept;

    private:
	void lock_slow(uint32_t tid) noexcept;
	void unlock_slow() noexcept;
};
static_assert(sizeof(owner_lock) == 4);

} // namespace bpftime::maps_userspace::queue_stack
