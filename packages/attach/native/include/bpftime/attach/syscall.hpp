// syscall.hpp: system call hooks inside the current process (x86-64 Linux):
// callbacks that run on entry to and on return from the system calls the
// process makes, as the kernel's raw_syscalls:sys_enter / sys_exit
// tracepoints see them, without ptrace, seccomp or kernel privileges.
//
//   static bool on_enter(bpftime::attach::pt_regs *r, void *user, uint64_t *ret)
//   {
//       static_cast<std::atomic<uint64_t> *>(user)->fetch_add(1); // r->orig_ax is the number
//       return false;                                             // let the call run
//   }
//   bpftime::attach::syscall_hooks hooks;
//   std::atomic<uint64_t> getpids{0};
//   auto id = hooks.attach_enter(SYS_getpid, on_enter, &getpids);
//
// Mechanism (syscall/rewrite.cpp): the first time a hook is attached, every
// `syscall` instruction (0f 05) of every file-backed executable mapping (the
// program, the dynamic loader, libc, every library; static binaries alike)
// is found by a linear sweep of the module's executable ELF sections. Where
// the instructions just before it are at least 5 bytes of straight-line code
// that no branch enters (glibc's `mov eax, NR; syscall`), they are replaced
// by a jump to a per-site trampoline that runs them, saves the registers
// into a pt_regs, calls the enter callbacks, restores the registers,
// executes the system call itself, and calls the exit callbacks the same
// way. The `syscall` bytes themselves are not overwritten then, so a
// thread that was asleep in one while it was rewritten, or whose call the
// kernel restarts, runs the original instruction. Where the bytes before
// it are too short or a branch target, the jump covers the syscall and the
// instructions after it (relocated into the trampoline), or the few before
// it and the syscall. Page 0 is never mapped (zpoline's `call *%rax` needs
// vm.mmap_min_addr=0, which a default kernel refuses): the jump is a 5-byte
// rel32 to memory within 2 GiB of the site. README "System call hooks" has
// the details.
//
// Sites no form fits are left as they are and listed by sites() with the
// reason (none in glibc 2.36); once one is left, the process turns on
// syscall user dispatch (PR_SET_SYSCALL_USER_DISPATCH, Linux 5.11+) and the
// left sites' calls reach the callbacks from a SIGSYS handler
// (syscall/user_dispatch.hpp; sites() marks them `trapped`, stats() says
// whether it is on). vDSO code is not scanned (its calls are not system
// calls, as the kernel does not report them; its rare fallback system
// calls are reported only once syscall user dispatch is on).
//
// A system call with no callback of its own costs a load and a branch on
// each side of its rewritten site, whatever callbacks other calls have.
//
// What callbacks see (as the kernel's pt_regs at syscall entry):
//   orig_ax   the system call number
//   di si dx r10 r8 r9   its arguments (r10, not cx, is the fourth)
//   ax        -ENOSYS on entry, the return value on exit
//   ip        the address after the `syscall` instruction
//   sp        the stack pointer of the calling code
//
// A call that does not return to its caller reports no exit: a successful
// execve, exit, exit_group, rt_sigreturn. clone, clone3, fork and vfork
// report their exit in the parent and in the child (ret 0), as the kernel
// does; the child's exit callback runs on the child's own stack.
//
// Callbacks run on the calling thread, in its normal context; they must
// not throw and must not change AVX-512 state (ymm0-15 are saved). A system
// call a callback makes is hooked again (the callback must guard against
// recursion itself). Thread safety as attach_manager's.
#pragma once

#include <bpftime/attach/pt_regs.hpp>
#include <bpftime/common/result.hpp>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace bpftime::attach {

// Enter: return true to skip the system call, which then returns *ret.
// regs may be modified: di si dx r10 r8 r9 and orig_ax (the number) are
// what the call is made with when it is not skipped.
using syscall_enter_callback = bool (*)(pt_regs *regs, void *user,
					uint64_t *ret);
// Exit: regs->ax holds the return value, regs->orig_ax the number.
using syscall_exit_callback = void (*)(const pt_regs *regs, void *user);

// Every system call, for attach_enter/attach_exit.
inline constexpr int32_t ALL_SYSCALLS = -1;

// One `syscall` instruction found in a module.
struct syscall_site_info {
	uint64_t address = 0; // of the syscall instruction
	std::string module;   // the mapping's path
	bool rewritten = false;
	int64_t nr = -1;      // the number when the site sets it as a constant
	std::string reason;   // why it was not rewritten
	// Not rewritten, and its calls are reported through the syscall user
	// dispatch fallback (SIGSYS).
	bool trapped = false;
};

struct syscall_stats {
	uint32_t modules = 0;	  // modules scanned
	uint32_t rewritten = 0;	  // sites that jump to a trampoline
	uint32_t not_rewritten = 0; // sites left as they were
	double scan_ms = 0;	  // the last scan: sweep, trampolines, patching
	// The syscall user dispatch fallback is on (some site was left), and
	// the threads that did not answer the signal that turns it on.
	bool user_dispatch = false;
	uint32_t user_dispatch_threads_missed = 0;
};

class syscall_hooks {
    public:
	syscall_hooks();
	// Detaches every hook this object attached.
	~syscall_hooks();
	syscall_hooks(const syscall_hooks &) = delete;
	syscall_hooks &operator=(const syscall_hooks &) = delete;

	// `nr` is a system call number or ALL_SYSCALLS; the number filter is
	// applied before the callback runs. The first hook of the process
	// rewrites the process's modules (see above); a site or module that
	// cannot be rewritten (no trampoline memory in reach, say) is left as
	// it was, logged and listed by sites(), and the hook is attached to
	// the others. EINVAL: null callback or nr out of [-1, 1023].
	result<uint64_t> attach_enter(int32_t nr, syscall_enter_callback cb,
				      void *user);
	result<uint64_t> attach_exit(int32_t nr, syscall_exit_callback cb,
				     void *user);
	// No new call reaches the callback once this returns. ENOENT: no
	// such hook of this object.
	status detach(uint64_t id);

	// Rewrites modules mapped since the last scan (libraries dlopen'ed
	// after the first attach); nothing when no hook was ever attached.
	status rescan();

	// Every site found so far, and totals.
	static std::vector<syscall_site_info> sites();
	static syscall_stats stats();

    private:
	struct state;
	std::unique_ptr<state> state_;
};

} // namespace bpftime::attach
