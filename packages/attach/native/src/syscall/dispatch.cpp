// syscall/dispatch.cpp: see dispatch.hpp.
#include "dispatch.hpp"
#include "user_dispatch.hpp"

#include "../uprobe/trampoline.hpp"

#include <cerrno>

namespace bpftime::attach::detail {

std::atomic<const sys_snapshot *> g_sys_snapshot{ nullptr };
std::atomic<uint8_t> g_sys_enter_on[SYS_NR_SLOTS];
std::atomic<uint8_t> g_sys_exit_on[SYS_NR_SLOTS];
std::atomic<uint8_t> g_sys_computed_on[SYS_NR_SLOTS];
std::atomic<uint8_t> g_sys_hooks_on{ 0 };
std::atomic<uint8_t> g_sys_exits_on{ 0 };

namespace {

// The number a site without a constant one is making, from its enter to its
// exit. initial-exec: no __tls_get_addr call (which may allocate) here.
constinit thread_local int64_t t_nr __attribute__((tls_model("initial-exec"))) = -1;

} // namespace
} // namespace bpftime::attach::detail

using bpftime::attach::pt_regs;
using namespace bpftime::attach::detail;

extern "C" __attribute__((visibility("hidden"))) uint64_t
bpftime_attach_on_syscall_enter(pt_regs *regs, const sys_site *s) noexcept
{
	const uint64_t nr = regs->ax;
	if (s->nr < 0)
		t_nr = int64_t(nr);
	const sys_snapshot *sn = g_sys_snapshot.load(std::memory_order_acquire);
	if (!sn)
		return 0;
	const sys_handler *const *h = sn->enter[nr < SYS_NR_SLOTS ? nr : SYS_NR_SLOTS];
	const bool filter = (nr == SUD_FILTERED[0] || nr == SUD_FILTERED[1]) &&
			    g_sud_on.load(std::memory_order_relaxed);
	if (!*h && !filter)
		return 0;
	// As the kernel's pt_regs at entry: do_syscall_64() has the number in
	// orig_ax and -ENOSYS in ax; the CPU put the return address in cx and
	// the flags in r11.
	regs->orig_ax = nr;
	regs->ax = uint64_t(-ENOSYS);
	regs->ip = s->address + 2;
	regs->cx = regs->ip;
	regs->r11 = regs->flags;
	for (; *h; ++h) {
		uint64_t ret = 0;
		if ((*h)->enter(regs, (*h)->user, &ret)) {
			regs->ax = ret;
			return 1;
		}
	}
	// After the hooks, which see the call as the program made it.
	if (filter && sud_filter(regs))
		return 1;
	// A callback may have changed the number (syscall.hpp).
	regs->ax = regs->orig_ax;
	// A program's own system calls (a helper's) went through here too.
	if (s->nr < 0)
		t_nr = int64_t(regs->orig_ax);
	return 0;
}

extern "C" __attribute__((visibility("hidden"))) void
bpftime_attach_on_syscall_exit(pt_regs *regs, const sys_site *s) noexcept
{
	const sys_snapshot *sn = g_sys_snapshot.load(std::memory_order_acquire);
	if (!sn)
		return;
	const uint64_t nr = uint64_t(s->nr >= 0 ? s->nr : t_nr);
	// The child of a clone or fork starts without syscall user dispatch.
	if (regs->ax == 0 && g_sud_on.load(std::memory_order_relaxed))
		for (int c : SUD_CHILDREN)
			if (nr == uint64_t(c))
				sud_child(nr, regs);
	const sys_handler *const *h = sn->exit[nr < SYS_NR_SLOTS ? nr : SYS_NR_SLOTS];
	if (!*h)
		return;
	regs->orig_ax = nr;
	regs->ip = s->address + 2;
	for (; *h; ++h)
		(*h)->exit(regs, (*h)->user);
}

// The register-saving routines. On entry [rsp] is the return address into
// the site's trampoline and [rsp+8] the site's sys_site; above them the 128
// bytes of red zone the trampoline stepped over, then the caller's stack.
// They push a pt_regs in the kernel's order (ss first, r15 last: the
// pt_regs' first field ends up at the lowest address), point regs->sp at
// the caller's stack, save the vector registers the program may still hold
// (a system call preserves all of them), call the dispatcher with DF clear,
// and put everything back; `ret 136` drops the site pointer and the red
// zone. The arithmetic flags are kept without pushfq/popfq (about 30 ns
// together on the machines measured): seto and lahf copy them into the
// slot of the site pointer (read before), and add/sahf put them back after
// the last instruction that changes flags; regs->flags is built from them
// (with IF). DF is cleared for the dispatcher and left clear, as the ABI
// has it at every call. AVX-512 state is not saved (see attach.hpp).
//
// pt_regs offsets used: sp 152, and the return address right above the
// 168-byte struct, at 168.
#define BPFTIME_VSAVE(mov, r, w, i) mov " %" r #i ", " #i "*" w "(%rsp)\n"
#define BPFTIME_VLOAD(mov, r, w, i) mov " " #i "*" w "(%rsp), %" r #i "\n"
#define BPFTIME_V16(X, mov, r, w)                                              \
	X(mov, r, w, 0) X(mov, r, w, 1) X(mov, r, w, 2) X(mov, r, w, 3)        \
	X(mov, r, w, 4) X(mov, r, w, 5) X(mov, r, w, 6) X(mov, r, w, 7)        \
	X(mov, r, w, 8) X(mov, r, w, 9) X(mov, r, w, 10) X(mov, r, w, 11)      \
	X(mov, r, w, 12) X(mov, r, w, 13) X(mov, r, w, 14) X(mov, r, w, 15)

// One routine, parameterised by the vector registers it keeps: `mov` (an
// aligned move), `r` (xmm or ymm), `w` (their width in bytes) and
// `after_save` (vzeroupper after a ymm save, so the callbacks' SSE code
// pays no transition). `skip` follows the dispatcher's return.
//
// The callee-saved registers (bp, r12-r15) are pushed for the pt_regs but
// not popped: the dispatcher, as every C function, gives them back
// unchanged, and what a callback may change in the pt_regs is the number
// and the argument registers (syscall.hpp). bx is the routine's own and
// is popped.
#define BPFTIME_SYS_ROUTINE(name, fn, mov, r, w, after_save, skip)             \
	".globl " name "\n"                                                    \
	".hidden " name "\n"                                                   \
	".type " name ",@function\n" name ":\n"                                \
	"push $0x2b\n"                                                         \
	"push $0\n"                                                            \
	"push $0\n"                                                            \
	"push $0x33\n"                                                         \
	"push $0\n"                                                            \
	"push $-1\n"                                                           \
	"push %rdi\n push %rsi\n push %rdx\n push %rcx\n push %rax\n"          \
	"push %r8\n push %r9\n push %r10\n push %r11\n push %rbx\n"            \
	"push %rbp\n push %r12\n push %r13\n push %r14\n push %r15\n"          \
	"mov 176(%rsp), %rsi\n"                                                \
	"seto %al\n"                                                           \
	"lahf\n"                                                               \
	"mov %rax, 176(%rsp)\n"                                                \
	"movzbl %ah, %ecx\n"                                                   \
	"movzbl %al, %edx\n"                                                   \
	"shl $11, %edx\n"                                                      \
	"or %edx, %ecx\n"                                                      \
	"or $0x202, %ecx\n"                                                    \
	"mov %rcx, 144(%rsp)\n"                                                \
	"cld\n"                                                                \
	"mov %rsp, %rbx\n"                                                     \
	"lea 312(%rsp), %rax\n"                                                \
	"mov %rax, 152(%rsp)\n"                                                \
	"and $-32, %rsp\n"                                                     \
	"sub $16*" w ", %rsp\n"                                                \
	BPFTIME_V16(BPFTIME_VSAVE, mov, r, w)                                  \
	after_save                                                             \
	"mov %rbx, %rdi\n"                                                     \
	"call " fn "\n"                                                        \
	BPFTIME_V16(BPFTIME_VLOAD, mov, r, w)                                  \
	"mov %rbx, %rsp\n"                                                     \
	skip                                                                   \
	"mov 176(%rsp), %rax\n"                                                \
	"add $0x7f, %al\n"                                                     \
	"sahf\n"                                                               \
	"lea 40(%rsp), %rsp\n"                                                 \
	"pop %rbx\n pop %r11\n pop %r10\n pop %r9\n pop %r8\n"                 \
	"pop %rax\n pop %rcx\n pop %rdx\n pop %rsi\n pop %rdi\n"               \
	"lea 48(%rsp), %rsp\n"                                                 \
	"ret $136\n"                                                           \
	".size " name ", .-" name "\n"

// A skip returns 11 bytes further: past the trampoline's selector store
// and syscall (SYS_SKIP_BYTES).
#define BPFTIME_SYS_SKIP                                                       \
	"test %eax, %eax\n"                                                    \
	"jz 1f\n"                                                              \
	"addq $11, 168(%rsp)\n"                                                \
	"1:\n"

asm(".text\n"
    BPFTIME_SYS_ROUTINE("bpftime_attach_sys_enter_sse", "bpftime_attach_on_syscall_enter",
			"movdqa", "xmm", "16", "", BPFTIME_SYS_SKIP)
    BPFTIME_SYS_ROUTINE("bpftime_attach_sys_exit_sse", "bpftime_attach_on_syscall_exit",
			"movdqa", "xmm", "16", "", "")
    BPFTIME_SYS_ROUTINE("bpftime_attach_sys_enter_ymm", "bpftime_attach_on_syscall_enter",
			"vmovdqa", "ymm", "32", "vzeroupper\n", BPFTIME_SYS_SKIP)
    BPFTIME_SYS_ROUTINE("bpftime_attach_sys_exit_ymm", "bpftime_attach_on_syscall_exit",
			"vmovdqa", "ymm", "32", "vzeroupper\n", ""));

extern "C" void bpftime_attach_sys_enter_sse();
extern "C" void bpftime_attach_sys_exit_sse();
extern "C" void bpftime_attach_sys_enter_ymm();
extern "C" void bpftime_attach_sys_exit_ymm();

namespace bpftime::attach::detail {

uint64_t enter_routine() noexcept
{
	return reinterpret_cast<uint64_t>(save_ymm() ? &bpftime_attach_sys_enter_ymm
						     : &bpftime_attach_sys_enter_sse);
}

uint64_t exit_routine() noexcept
{
	return reinterpret_cast<uint64_t>(save_ymm() ? &bpftime_attach_sys_exit_ymm
						     : &bpftime_attach_sys_exit_sse);
}

} // namespace bpftime::attach::detail
