// syscall/user_dispatch.hpp: the fallback for the `syscall` sites that
// cannot be rewritten: Linux's syscall user dispatch
// (PR_SET_SYSCALL_USER_DISPATCH, Documentation/admin-guide/syscall-user-
// dispatch.rst) makes the kernel send SIGSYS, instead of running the call,
// for a system call made outside one address range while the thread's
// selector byte says BLOCK. Our SIGSYS handler runs the hooks and makes the
// call.
//
// Which calls trap: the selector is a thread-local byte, t_sud_sel. Every
// trampoline sets it to ALLOW right before its `syscall` and back to the
// thread's t_sud_armed right after (rewrite.cpp, dispatch.hpp), so only the
// sites left as they were trap, and only on the threads where dispatch is
// on (armed). The allowed range holds the few instructions through which
// the fallback makes its own calls (a raw syscall function and the SIGSYS
// handler's rt_sigreturn), so nothing the handler does traps again.
//
// Dispatch is per thread, and a new thread or process starts without it:
// it is turned on by each thread itself, in the thread that attaches, in
// the other threads through a signal (a thread that blocks the signal is
// left without: logged), and in the child of every clone, fork and vfork
// made through a rewritten site, on the child's return from the call (the
// exit dispatcher).
//
// A SIGSYS the thread blocks would kill it (the kernel forces a blocked
// SIGSYS to its default action): while the fallback is on, the enter
// dispatcher drops SIGSYS from every mask the program passes to
// rt_sigprocmask and from every sa_mask it passes to rt_sigaction, as the
// kernel does for SIGKILL, and keeps the program's own SIGSYS handler
// (called for the SIGSYS that are not ours, a seccomp trap's).
//
// What the handler cannot run on its own stack (it would return into the
// wrong frame or the wrong mask): rt_sigreturn, rt_sigprocmask, sigaltstack,
// clone, clone3, fork, vfork, execve and execveat. For those the enter hooks
// run, then the call is made again at the site with the selector at ALLOW;
// their exits are not reported, and the thread is unarmed until its next
// call through a rewritten site (a call at a left site in between is not
// reported).
#pragma once

#include <bpftime/attach/pt_regs.hpp>
#include <bpftime/common/result.hpp>

#include <atomic>
#include <cstdint>

namespace bpftime::attach::detail {

// The selector and whether dispatch is on for this thread (then 1, the
// value the trampolines put back after their call). initial-exec: the
// trampolines address them at a fixed offset from the thread pointer.
extern constinit thread_local uint8_t t_sud_sel __attribute__((tls_model("initial-exec")));
extern constinit thread_local uint8_t t_sud_armed __attribute__((tls_model("initial-exec")));

// Their offsets from the thread pointer (the same in every thread).
int32_t sud_sel_offset() noexcept;
int32_t sud_armed_offset() noexcept;

// Whether the fallback is on in this process (set once, never cleared).
extern std::atomic<bool> g_sud_on;

// Turns the fallback on: the SIGSYS handler, dispatch on this thread and on
// every other thread that answers a signal. Control plane, under the
// attach lock. ENOSYS/EINVAL: the kernel has no syscall user dispatch
// (before 5.11); EBUSY: another SIGSYS handler could not be kept. The
// number of threads left without it goes to *missed.
status sud_enable(uint32_t *missed);

// On the current thread: dispatch on, unless SIGSYS is blocked here.
void sud_enable_self() noexcept;

// The exit dispatcher, in the child of a system call `nr` of SUD_CHILDREN
// (regs: the call's, ax 0): dispatch on for the new thread or process.
void sud_child(uint64_t nr, const pt_regs *regs) noexcept;

// Whether a syscall instruction is one of the fallback's own, in the
// allowed range: never rewritten (its calls must not go through a
// trampoline, whose selector store would leave the thread at ALLOW after
// the handler's rt_sigreturn) and never reported.
bool in_sud_range(uint64_t address) noexcept;

// The enter dispatcher's filter while the fallback is on: keeps SIGSYS out
// of the masks of rt_sigprocmask and rt_sigaction, and keeps our SIGSYS
// handler. true: the call is skipped, regs->ax its result.
bool sud_filter(pt_regs *regs) noexcept;

// The call numbers the filter and the clone-child hook need to see.
inline constexpr int SUD_FILTERED[] = { 13 /* rt_sigaction */, 14 /* rt_sigprocmask */ };
inline constexpr int SUD_CHILDREN[] = { 56 /* clone */, 57 /* fork */, 58 /* vfork */,
					 435 /* clone3 */ };

} // namespace bpftime::attach::detail
