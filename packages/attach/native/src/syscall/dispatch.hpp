// syscall/dispatch.hpp: what runs on every hooked system call: the two
// register-saving routines every site trampoline calls (written in
// assembly, dispatch.cpp) and the C dispatchers they call, which run the
// callbacks of the current handler snapshot.
//
// A site trampoline (rewrite.cpp) calls the routines as
//
//   mov rcx, &g_sys_hooks_on; mov ecx, [rcx]; jrcxz <the syscall>
//                                   no hook left: the call alone
//   lea rsp, [rsp-128]              step over the red zone
//   push qword [rip+site_ptr]       the site's sys_site
//   call enter_routine              returns to the `syscall` below, or 2
//                                   bytes past it when a callback skips
//                                   the call (rax = its return value); the
//                                   stack pointer is back where it was.
//                                   rel32 where the routine is within
//                                   reach, else call qword [rip+slot]
//   syscall
//   mov rcx, &g_sys_exits_on; mov ecx, [rcx]; jrcxz tail
//                                   (rcx is dead after a syscall, and
//                                   nothing here changes the flags)
//   lea rsp, [rsp-128]; push qword [rip+site_ptr]; call exit_routine
// tail:
//   jmp <the instruction after the original syscall>
//
// Nothing is kept on the stack across the `syscall`: the child of a clone
// returns on another stack (and, with CLONE_SETTLS, another thread
// pointer), and the exit stub only pushes and pops on whichever stack it
// finds. The number a site passes as a constant (sys_site::nr) reaches the
// exit dispatcher that way; a site whose number is computed hands it over
// in a thread-local variable instead.
//
// Everything here runs on the target's threads: no allocation, no lock, no
// log.
#pragma once

#include <bpftime/attach/pt_regs.hpp>
#include <bpftime/attach/syscall.hpp>

#include <atomic>
#include <cstdint>
#include <vector>

namespace bpftime::attach::detail {

// Immutable once its trampoline is published.
struct sys_site {
	uint64_t address = 0; // the original syscall instruction
	int64_t nr = -1;      // set as a constant by the site, or -1
};

struct sys_handler {
	uint64_t id = 0;
	int32_t nr = ALL_SYSCALLS;
	syscall_enter_callback enter = nullptr; // one of the two
	syscall_exit_callback exit = nullptr;
	void *user = nullptr;
};

// The hooks in force, replaced whole on every attach and detach; old ones
// are never freed (a thread may still be reading one, as probe_site.hpp
// explains for uprobes).
struct sys_snapshot {
	std::vector<const sys_handler *> enter, exit;
};

extern std::atomic<const sys_snapshot *> g_sys_snapshot;
// 1 while some exit hook exists: the trampolines read it after the syscall.
extern std::atomic<uint32_t> g_sys_exits_on;
// 1 while some hook exists: the trampolines read it before the enter call.
extern std::atomic<uint32_t> g_sys_hooks_on;

// The routines' addresses (AVX or SSE register saves, as save_ymm()).
uint64_t enter_routine() noexcept;
uint64_t exit_routine() noexcept;

} // namespace bpftime::attach::detail

// Called by the routines with the pt_regs they pushed. Enter returns 1 when
// a callback skipped the call (regs->ax is then its return value), else 0
// with regs->ax set back to the number to call.
extern "C" uint64_t bpftime_attach_on_syscall_enter(
	bpftime::attach::pt_regs *regs,
	const bpftime::attach::detail::sys_site *s) noexcept;
extern "C" void bpftime_attach_on_syscall_exit(
	bpftime::attach::pt_regs *regs,
	const bpftime::attach::detail::sys_site *s) noexcept;
