// syscall/dispatch.cpp: see dispatch.hpp.
#include "dispatch.hpp"

#include "../uprobe/trampoline.hpp"

#include <cerrno>

namespace bpftime::attach::detail {

std::atomic<const sys_snapshot *> g_sys_snapshot{ nullptr };
std::atomic<uint32_t> g_sys_exits_on{ 0 };
std::atomic<uint32_t> g_sys_hooks_on{ 0 };

namespace {

// The number a site without a constant one is making, from its enter to its
// exit. initial-exec: no __tls_get_addr call (which may allocate) here.
constinit thread_local int64_t t_nr __attribute__((tls_model("initial-exec"))) = -1;

} // namespace
} // namespace bpftime::attach::detail

using bpftime::attach::ALL_SYSCALLS;
using bpftime::attach::pt_regs;
using namespace bpftime::attach::detail;

extern "C" __attribute__((visibility("hidden"))) uint64_t
bpftime_attach_on_syscall_enter(pt_regs *regs, const sys_site *s) noexcept
{
	const uint64_t nr = regs->ax;
	t_nr = int64_t(nr);
	const sys_snapshot *sn = g_sys_snapshot.load(std::memory_order_acquire);
	if (!sn || sn->enter.empty())
		return 0;
	// As the kernel's pt_regs at entry: do_syscall_64() has the number in
	// orig_ax and -ENOSYS in ax; the CPU put the return address in cx and
	// the flags in r11.
	regs->orig_ax = nr;
	regs->ax = uint64_t(-ENOSYS);
	regs->ip = s->address + 2;
	regs->cx = regs->ip;
	regs->r11 = regs->flags;
	for (const sys_handler *h : sn->enter) {
		if (h->nr != ALL_SYSCALLS && uint64_t(h->nr) != regs->orig_ax)
			continue;
		uint64_t ret = 0;
		if (h->enter(regs, h->user, &ret)) {
			regs->ax = ret;
			return 1;
		}
	}
	regs->ax = regs->orig_ax;
	t_nr = int64_t(regs->orig_ax);
	return 0;
}

extern "C" __attribute__((visibility("hidden"))) void
bpftime_attach_on_syscall_exit(pt_regs *regs, const sys_site *s) noexcept
{
	const sys_snapshot *sn = g_sys_snapshot.load(std::memory_order_acquire);
	if (!sn || sn->exit.empty())
		return;
	regs->orig_ax = uint64_t(s->nr >= 0 ? s->nr : t_nr);
	regs->ip = s->address + 2;
	for (const sys_handler *h : sn->exit)
		if (h->nr == ALL_SYSCALLS || uint64_t(h->nr) == regs->orig_ax)
			h->exit(regs, h->user);
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
#define BPFTIME_SYS_ROUTINE(name, fn, save, load, width, after_save, skip)     \
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
	"sub $16*" width ", %rsp\n"                                            \
	save "  %xmm0,  0*" width "(%rsp)\n"                                   \
	save "  %xmm1,  1*" width "(%rsp)\n"                                   \
	save "  %xmm2,  2*" width "(%rsp)\n"                                   \
	save "  %xmm3,  3*" width "(%rsp)\n"                                   \
	save "  %xmm4,  4*" width "(%rsp)\n"                                   \
	save "  %xmm5,  5*" width "(%rsp)\n"                                   \
	save "  %xmm6,  6*" width "(%rsp)\n"                                   \
	save "  %xmm7,  7*" width "(%rsp)\n"                                   \
	save "  %xmm8,  8*" width "(%rsp)\n"                                   \
	save "  %xmm9,  9*" width "(%rsp)\n"                                   \
	save "  %xmm10, 10*" width "(%rsp)\n"                                  \
	save "  %xmm11, 11*" width "(%rsp)\n"                                  \
	save "  %xmm12, 12*" width "(%rsp)\n"                                  \
	save "  %xmm13, 13*" width "(%rsp)\n"                                  \
	save "  %xmm14, 14*" width "(%rsp)\n"                                  \
	save "  %xmm15, 15*" width "(%rsp)\n"                                  \
	after_save                                                             \
	"mov %rbx, %rdi\n"                                                     \
	"call " fn "\n"                                                        \
	load "  0*" width "(%rsp), %xmm0\n"                                    \
	load "  1*" width "(%rsp), %xmm1\n"                                    \
	load "  2*" width "(%rsp), %xmm2\n"                                    \
	load "  3*" width "(%rsp), %xmm3\n"                                    \
	load "  4*" width "(%rsp), %xmm4\n"                                    \
	load "  5*" width "(%rsp), %xmm5\n"                                    \
	load "  6*" width "(%rsp), %xmm6\n"                                    \
	load "  7*" width "(%rsp), %xmm7\n"                                    \
	load "  8*" width "(%rsp), %xmm8\n"                                    \
	load "  9*" width "(%rsp), %xmm9\n"                                    \
	load "  10*" width "(%rsp), %xmm10\n"                                  \
	load "  11*" width "(%rsp), %xmm11\n"                                  \
	load "  12*" width "(%rsp), %xmm12\n"                                  \
	load "  13*" width "(%rsp), %xmm13\n"                                  \
	load "  14*" width "(%rsp), %xmm14\n"                                  \
	load "  15*" width "(%rsp), %xmm15\n"                                  \
	"mov %rbx, %rsp\n"                                                     \
	skip                                                                   \
	"mov 176(%rsp), %rax\n"                                                \
	"add $0x7f, %al\n"                                                     \
	"sahf\n"                                                               \
	"pop %r15\n pop %r14\n pop %r13\n pop %r12\n pop %rbp\n"               \
	"pop %rbx\n pop %r11\n pop %r10\n pop %r9\n pop %r8\n"                 \
	"pop %rax\n pop %rcx\n pop %rdx\n pop %rsi\n pop %rdi\n"               \
	"lea 48(%rsp), %rsp\n"                                                 \
	"ret $136\n"                                                           \
	".size " name ", .-" name "\n"

// A skip returns 2 bytes further: past the trampoline's syscall.
#define BPFTIME_SYS_SKIP                                                       \
	"test %eax, %eax\n"                                                    \
	"jz 1f\n"                                                              \
	"addq $2, 168(%rsp)\n"                                                 \
	"1:\n"

asm(".text\n"
    BPFTIME_SYS_ROUTINE("bpftime_attach_sys_enter_sse",
			"bpftime_attach_on_syscall_enter", "movdqu", "movdqu",
			"16", "", BPFTIME_SYS_SKIP)
    BPFTIME_SYS_ROUTINE("bpftime_attach_sys_exit_sse",
			"bpftime_attach_on_syscall_exit", "movdqu", "movdqu",
			"16", "", ""));

#define BPFTIME_YMM_ROUTINE(name, fn, skip)                                    \
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
	"sub $512, %rsp\n"                                                     \
	"vmovdqa %ymm0, 0(%rsp)\n vmovdqa %ymm1, 32(%rsp)\n"                   \
	"vmovdqa %ymm2, 64(%rsp)\n vmovdqa %ymm3, 96(%rsp)\n"                  \
	"vmovdqa %ymm4, 128(%rsp)\n vmovdqa %ymm5, 160(%rsp)\n"                \
	"vmovdqa %ymm6, 192(%rsp)\n vmovdqa %ymm7, 224(%rsp)\n"                \
	"vmovdqa %ymm8, 256(%rsp)\n vmovdqa %ymm9, 288(%rsp)\n"                \
	"vmovdqa %ymm10, 320(%rsp)\n vmovdqa %ymm11, 352(%rsp)\n"              \
	"vmovdqa %ymm12, 384(%rsp)\n vmovdqa %ymm13, 416(%rsp)\n"              \
	"vmovdqa %ymm14, 448(%rsp)\n vmovdqa %ymm15, 480(%rsp)\n"              \
	"vzeroupper\n"                                                         \
	"mov %rbx, %rdi\n"                                                     \
	"call " fn "\n"                                                        \
	"vmovdqa 0(%rsp), %ymm0\n vmovdqa 32(%rsp), %ymm1\n"                   \
	"vmovdqa 64(%rsp), %ymm2\n vmovdqa 96(%rsp), %ymm3\n"                  \
	"vmovdqa 128(%rsp), %ymm4\n vmovdqa 160(%rsp), %ymm5\n"                \
	"vmovdqa 192(%rsp), %ymm6\n vmovdqa 224(%rsp), %ymm7\n"                \
	"vmovdqa 256(%rsp), %ymm8\n vmovdqa 288(%rsp), %ymm9\n"                \
	"vmovdqa 320(%rsp), %ymm10\n vmovdqa 352(%rsp), %ymm11\n"              \
	"vmovdqa 384(%rsp), %ymm12\n vmovdqa 416(%rsp), %ymm13\n"              \
	"vmovdqa 448(%rsp), %ymm14\n vmovdqa 480(%rsp), %ymm15\n"              \
	"mov %rbx, %rsp\n"                                                     \
	skip                                                                   \
	"mov 176(%rsp), %rax\n"                                                \
	"add $0x7f, %al\n"                                                     \
	"sahf\n"                                                               \
	"pop %r15\n pop %r14\n pop %r13\n pop %r12\n pop %rbp\n"               \
	"pop %rbx\n pop %r11\n pop %r10\n pop %r9\n pop %r8\n"                 \
	"pop %rax\n pop %rcx\n pop %rdx\n pop %rsi\n pop %rdi\n"               \
	"lea 48(%rsp), %rsp\n"                                                 \
	"ret $136\n"                                                           \
	".size " name ", .-" name "\n"

asm(".text\n"
    BPFTIME_YMM_ROUTINE("bpftime_attach_sys_enter_ymm",
			"bpftime_attach_on_syscall_enter", BPFTIME_SYS_SKIP)
    BPFTIME_YMM_ROUTINE("bpftime_attach_sys_exit_ymm",
			"bpftime_attach_on_syscall_exit", ""));

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
