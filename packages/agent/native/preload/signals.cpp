// signals.cpp: the only symbols libbpftime-agent.so exports (agent.map):
// sigaction() and the signal() family, interposed so that the agent's
// SIGSEGV and SIGBUS handler stays in front of the target's (see
// bpftime/agent/fault_guard.hpp). For those two signals, once the guard is
// installed, the target's calls record its action with the guard, which
// calls that action for every fault that is not a program's; everything
// else goes to libc unchanged.
#include <bpftime/agent/fault_guard.hpp>

#include <atomic>
#include <cerrno>
#include <csignal>
#include <cstring>
#include <dlfcn.h>

namespace {

using sigaction_fn = int (*)(int, const struct sigaction *, struct sigaction *);
using signal_fn = sighandler_t (*)(int, sighandler_t);

// libc's own, looked up on first use: a library constructor may call
// sigaction() before the agent's constructor runs.
template <class F> F next(std::atomic<F> &cache, const char *name) noexcept
{
	F f = cache.load(std::memory_order_acquire);
	if (!f) {
		f = reinterpret_cast<F>(dlsym(RTLD_NEXT, name));
		cache.store(f, std::memory_order_release);
	}
	return f;
}

std::atomic<sigaction_fn> g_sigaction{ nullptr };
std::atomic<signal_fn> g_signal{ nullptr }, g_bsd_signal{ nullptr },
	g_sysv_signal{ nullptr };

// signal() on an owned signal, as glibc builds the action: BSD semantics
// (the handler stays, the signal is blocked while it runs, system calls
// restart) or, for sysv_signal(), System V's (reset on delivery, not
// blocked).
sighandler_t owned_signal(int sig, sighandler_t h, bool sysv) noexcept
{
	struct sigaction act, old;
	memset(&act, 0, sizeof act);
	act.sa_handler = h;
	sigemptyset(&act.sa_mask);
	if (sysv) {
		act.sa_flags = SA_RESETHAND | SA_NODEFER;
	} else {
		sigaddset(&act.sa_mask, sig);
		act.sa_flags = SA_RESTART;
	}
	if (bpftime::agent::fault_guard_sigaction(sig, &act, &old) != 0)
		return SIG_ERR;
	return old.sa_handler;
}

sighandler_t forward_signal(std::atomic<signal_fn> &cache, const char *name,
			    int sig, sighandler_t h) noexcept
{
	signal_fn f = next(cache, name);
	if (!f) {
		errno = ENOSYS;
		return SIG_ERR;
	}
	return f(sig, h);
}

} // namespace

extern "C" {

__attribute__((visibility("default"))) int
sigaction(int sig, const struct sigaction *act, struct sigaction *oact)
{
	if (bpftime::agent::fault_guard_owns(sig))
		return bpftime::agent::fault_guard_sigaction(sig, act, oact);
	sigaction_fn f = next(g_sigaction, "sigaction");
	if (!f) {
		errno = ENOSYS;
		return -1;
	}
	return f(sig, act, oact);
}

__attribute__((visibility("default"))) sighandler_t signal(int sig,
							   sighandler_t h)
{
	if (bpftime::agent::fault_guard_owns(sig))
		return owned_signal(sig, h, false);
	return forward_signal(g_signal, "signal", sig, h);
}

__attribute__((visibility("default"))) sighandler_t bsd_signal(int sig,
							       sighandler_t h)
{
	if (bpftime::agent::fault_guard_owns(sig))
		return owned_signal(sig, h, false);
	return forward_signal(g_bsd_signal, "bsd_signal", sig, h);
}

__attribute__((visibility("default"))) sighandler_t sysv_signal(int sig,
								sighandler_t h)
{
	if (bpftime::agent::fault_guard_owns(sig))
		return owned_signal(sig, h, true);
	return forward_signal(g_sysv_signal, "sysv_signal", sig, h);
}

} // extern "C"
