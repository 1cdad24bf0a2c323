// syscall/dispatch.hpp: what runs on every hooked system call: the two
// register-saving routines every site trampoline calls (written in
// assembly, dispatch.cpp) and the C dispatchers they call, which run the
// callbacks of the current handler snapshot.
//
// A site trampoline (rewrite.cpp) calls the routines as
//
//   mov rcx, &on; movzx ecx, byte [rcx]; jrcxz <the syscall>
//                                   no enter hook for this call: the call
//                                   alone. `on` is g_sys_enter_on[nr] for
//                                   a site whose number is a constant
//   (a site whose number is computed, with BMI2:
//   mov ecx, 10; shrx rcx, rax, rcx; jrcxz 1f; jmp <call>
//   1: mov rcx, &g_sys_computed_on; movzx ecx, byte [rcx+rax];
//   jrcxz <the syscall>: the byte of the number in rax, which also says
//   whether any exit hook exists, since the enter dispatcher hands the
//   number to the exit one; a number past the table calls the routine;
//   without BMI2, g_sys_hooks_on, whether any hook exists)
//   lea rsp, [rsp-128]              step over the red zone
//   push qword [rip+site_ptr]       the site's sys_site
//   call enter_routine              returns to the store below, or 11
//                                   bytes further (SYS_SKIP_BYTES) when a
//                                   callback skips the call (rax = its
//                                   return value); the stack pointer is
//                                   back where it was. rel32 where the
//                                   routine is within reach, else
//                                   call qword [rip+slot]
//   mov byte [fs:t_sud_sel], ALLOW  this call does not trap to the
//                                   fallback (user_dispatch.hpp)
//   syscall
//   mov cl, [fs:t_sud_armed]; mov [fs:t_sud_sel], cl
//   mov rcx, &on; movzx ecx, byte [rcx]; jrcxz tail
//                                   g_sys_exit_on[nr], or g_sys_exits_on
//                                   (rcx is dead after a syscall, and
//                                   nothing here changes the flags)
//   lea rsp, [rsp-128]; push qword [rip+site_ptr]; call exit_routine
// tail:
//   jmp <the instruction after the original syscall>
//
// So a system call that no hook is on costs a load and a branch on each
// side, whatever hooks other calls have.
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

// The bytes of the selector store and the syscall, which a skip steps over.
inline constexpr uint32_t SYS_SKIP_BYTES = 11;

// Numbers below this have a slot of their own in the tables; a call with a
// larger one (none on x86-64 today) sees the ALL_SYSCALLS hooks only.
inline constexpr uint32_t SYS_NR_SLOTS = 1024;

// The hooks in force, replaced whole on every attach and detach; old ones
// are never freed (a thread may still be reading one, as probe_site.hpp
// explains for uprobes). Each number's hooks are a null-terminated list in
// attach order, the ALL_SYSCALLS ones merged in, so a call walks only the
// hooks that run on it.
struct sys_snapshot {
	std::vector<const sys_handler *> pool; // the lists, one after another
	const sys_handler *const *enter[SYS_NR_SLOTS + 1] = {}; // last: larger numbers
	const sys_handler *const *exit[SYS_NR_SLOTS + 1] = {};
};

extern std::atomic<const sys_snapshot *> g_sys_snapshot;
// The trampolines' tests (bytes: 1 or 0). Per number: whether an enter
// (exit) hook runs on that call, for the sites whose number is a constant;
// for the others, whether an enter hook runs on it or any exit hook
// exists (computed_on), or whether any (any exit) hook exists.
extern std::atomic<uint8_t> g_sys_enter_on[SYS_NR_SLOTS];
extern std::atomic<uint8_t> g_sys_exit_on[SYS_NR_SLOTS];
extern std::atomic<uint8_t> g_sys_computed_on[SYS_NR_SLOTS];
extern std::atomic<uint8_t> g_sys_hooks_on;
extern std::atomic<uint8_t> g_sys_exits_on;

// The routines' addresses (ymm or xmm register saves, as save_ymm()).
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
