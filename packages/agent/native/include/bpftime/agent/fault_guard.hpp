// fault_guard.hpp: fault containment in the target process. A SIGSEGV or
// SIGBUS raised while one of the agent's hooks runs a program — in the JIT's
// generated code, in the interpreter, in a helper, or in a libc leaf routine
// that a helper called — ends that run: the hook goes on as if the program
// had returned 0 (an override does not override), the fault is counted on
// the link (link_status::faults), and after max_faults of them the link is
// disabled in this process with one log line (warning). Any other SIGSEGV or
// SIGBUS goes to the target's own disposition exactly as without the agent.
//
//   install_fault_guard({ .max_faults = 10 });   // once, from the agent's
//                                                // constructor
//
// How a fault is told apart, in the handler: the thread is inside a hook's
// run (hooks::t_running, which every hit sets anyway), the signal was raised
// by the kernel for an access (si_code > 0), and the faulting pc is in code
// the JIT generated, in the object the agent is linked into (interpreter,
// helpers, maps), or in a routine whose return address is there. Nothing is
// added to a hit: the run's recovery point is what the backend keeps anyway
// (vm::end_run_after_fault).
//
// Staying first: the handler is installed before the target's main() runs;
// afterwards the target's sigaction()/signal() calls for SIGSEGV and SIGBUS
// reach fault_guard_sigaction() (libbpftime-agent.so interposes them, see
// preload/signals.cpp): it records the target's action, returns the one it
// had recorded before, and mirrors the kernel-visible parts (sa_mask,
// SA_ONSTACK, SA_NODEFER, SA_RESTART) onto the agent's handler, so the
// kernel delivers on the stack, with the mask, the target asked for. The
// handler then calls the target's handler itself, with the same arguments.
// SA_RESETHAND is honoured by recording SIG_DFL after the first delivery. A
// target that calls rt_sigaction directly (not through libc) replaces the
// agent's handler; the watcher notices on its next poll and puts the
// agent's back in front, chaining to what the target installed
// (recheck_fault_guard()).
//
// Limits: a fault on a thread that blocks the signal kills the process (the
// kernel's force_sig_fault resets the action); a helper that faults while
// holding a lock (a map's bucket lock) leaves it held; destructors of the
// abandoned frames do not run.
#pragma once

#include <bpftime/common/result.hpp>

#include <csignal>
#include <cstdint>

namespace bpftime::agent {

// BPFTIME_AGENT_MAX_FAULTS: faults after which a link is disabled in this
// process; 0 never disables (every fault still ends its run).
inline constexpr uint32_t DEFAULT_MAX_FAULTS = 10;

struct fault_options {
	uint32_t max_faults = DEFAULT_MAX_FAULTS;
};

// Installs the agent's SIGSEGV and SIGBUS handler in front of whatever the
// process had (kept as the target's action). Once per process; a second
// call only updates the options.
status install_fault_guard(const fault_options &o);

// Whether install_fault_guard() took over sig (SIGSEGV or SIGBUS).
bool fault_guard_owns(int sig) noexcept;

// sigaction() for a signal the guard owns, as the target sees it: act
// becomes the target's action, oact receives the previous one. 0, or -1
// with errno (EINVAL) as sigaction(2). Async-signal-safe.
int fault_guard_sigaction(int sig, const struct sigaction *act,
			  struct sigaction *oact) noexcept;

// Puts the agent's handler back in front when something replaced it
// without going through fault_guard_sigaction(); what replaced it becomes
// the target's action. Called by the watcher thread on each poll.
void recheck_fault_guard() noexcept;

} // namespace bpftime::agent
