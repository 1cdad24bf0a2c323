// robust_mutex.cpp: pthread robust, process-shared mutexes (see the header).
#include <bpftime/shm/robust_mutex.hpp>

#include <boost/interprocess/exceptions.hpp>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <ctime>
#include <string>

namespace bpftime::shm {
namespace {

// The owner died: the lock is ours now, and marking it consistent lets the
// next unlock hand it on normally. The caller learns of the recovery through
// lock_state::recovered and repairs the protected data.
result<lock_state> finish_lock(pthread_mutex_t *m, int rc, const char *op)
{
	if (rc == 0)
		return lock_state::acquired;
	if (rc == EOWNERDEAD) {
		int crc = pthread_mutex_consistent(m);
		if (crc != 0)
			return fail(crc, std::string("mutex: ") + op +
						 ": consistent: " + strerror(crc));
		return lock_state::recovered;
	}
	return fail(rc, std::string("mutex: ") + op + ": " + strerror(rc));
}

timespec monotonic_deadline(uint64_t timeout_ns)
{
	timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	uint64_t ns = uint64_t(ts.tv_nsec) + timeout_ns % 1000000000ULL;
	ts.tv_sec += time_t(timeout_ns / 1000000000ULL + ns / 1000000000ULL);
	ts.tv_nsec = long(ns % 1000000000ULL);
	return ts;
}

std::atomic<owner_died_hook> g_owner_died_hook{ nullptr };
std::atomic<const boost_lock_hooks *> g_lock_hooks{ nullptr };

// The Boost-facing entry points: the lock is held; let the segment undo what
// a dead owner left, and tell it of the death.
template <bool Recursive>
bool boost_acquired(const basic_robust_mutex<Recursive> *m,
		    const result<lock_state> &r)
{
	if (!r)
		return false;
	bool recovered = *r == lock_state::recovered;
	if (const boost_lock_hooks *h = g_lock_hooks.load())
		if (h->acquired(m, recovered, m->depth() == 1))
			recovered = false;
	if (recovered)
		if (owner_died_hook h = g_owner_died_hook.load())
			h(m);
	return true;
}

} // namespace

void set_boost_owner_died_hook(owner_died_hook hook) noexcept
{
	g_owner_died_hook.store(hook);
}

void set_boost_lock_hooks(const boost_lock_hooks *hooks) noexcept
{
	g_lock_hooks.store(hooks);
}

template <bool Recursive> basic_robust_mutex<Recursive>::basic_robust_mutex() noexcept
{
	pthread_mutexattr_t attr;
	pthread_mutexattr_init(&attr);
	pthread_mutexattr_setpshared(&attr, PTHREAD_PROCESS_SHARED);
	pthread_mutexattr_setrobust(&attr, PTHREAD_MUTEX_ROBUST);
	pthread_mutexattr_settype(&attr, Recursive ? PTHREAD_MUTEX_RECURSIVE :
						     PTHREAD_MUTEX_ERRORCHECK);
	pthread_mutex_init(&mutex_, &attr);
	pthread_mutexattr_destroy(&attr);
}

template <bool Recursive> basic_robust_mutex<Recursive>::~basic_robust_mutex()
{
	pthread_mutex_destroy(&mutex_);
}

template <bool Recursive>
result<lock_state> basic_robust_mutex<Recursive>::lock_checked() noexcept
{
	return finish_lock(&mutex_, pthread_mutex_lock(&mutex_), "lock");
}

template <bool Recursive>
result<lock_state>
basic_robust_mutex<Recursive>::lock_for(uint64_t timeout_ns) noexcept
{
	timespec deadline = monotonic_deadline(timeout_ns);
	return finish_lock(&mutex_,
			   pthread_mutex_clocklock(&mutex_, CLOCK_MONOTONIC,
						   &deadline),
			   "lock");
}

template <bool Recursive>
result<lock_state> basic_robust_mutex<Recursive>::try_lock_checked() noexcept
{
	return finish_lock(&mutex_, pthread_mutex_trylock(&mutex_), "try_lock");
}

template <bool Recursive>
status basic_robust_mutex<Recursive>::unlock_checked() noexcept
{
	int rc = pthread_mutex_unlock(&mutex_);
	if (rc != 0)
		return fail(rc, std::string("mutex: unlock: ") + strerror(rc));
	return {};
}

template <bool Recursive> void basic_robust_mutex<Recursive>::lock()
{
	if (!boost_acquired<Recursive>(this, lock_checked()))
		throw boost::interprocess::lock_exception();
}

template <bool Recursive> bool basic_robust_mutex<Recursive>::try_lock()
{
	auto r = try_lock_checked();
	if (boost_acquired<Recursive>(this, r))
		return true;
	if (r.error().code == EBUSY)
		return false;
	throw boost::interprocess::lock_exception();
}

template <bool Recursive>
bool basic_robust_mutex<Recursive>::timed_lock(
	const boost::posix_time::ptime &abs_time)
{
	if (abs_time.is_pos_infinity()) {
		lock();
		return true;
	}
	// Boost hands an absolute UTC time; pthread_mutex_timedlock takes
	// CLOCK_REALTIME, which is the same clock.
	const boost::posix_time::ptime epoch(boost::gregorian::date(1970, 1, 1));
	auto since = abs_time - epoch;
	timespec ts;
	ts.tv_sec = time_t(since.total_seconds());
	ts.tv_nsec = long(since.fractional_seconds() *
			  (1000000000 / boost::posix_time::time_duration::
						ticks_per_second()));
	auto r = finish_lock(&mutex_, pthread_mutex_timedlock(&mutex_, &ts),
			     "timed_lock");
	if (boost_acquired<Recursive>(this, r))
		return true;
	if (r.error().code == ETIMEDOUT)
		return false;
	throw boost::interprocess::lock_exception();
}

template <bool Recursive> void basic_robust_mutex<Recursive>::unlock()
{
	if (const boost_lock_hooks *h = g_lock_hooks.load())
		h->releasing(this, depth() == 1);
	if (!unlock_checked())
		throw boost::interprocess::lock_exception();
}

template <bool Recursive>
unsigned basic_robust_mutex<Recursive>::depth() const noexcept
{
	if constexpr (Recursive)
		return mutex_.__data.__count; // glibc: the recursion count
	return 1;
}

template class basic_robust_mutex<false>;
template class basic_robust_mutex<true>;

} // namespace bpftime::shm
