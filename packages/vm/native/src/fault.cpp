// fault.cpp: see fault.hpp and vm.hpp (end_run_after_fault).
#include "fault.hpp"

#include "jit_x64/runtime.hpp"

#include <atomic>
#include <cerrno>

namespace bpftime::vm {
namespace detail {
namespace {

constexpr size_t max_code = 1024;
struct code_range {
	std::atomic<uint64_t> lo{ 0 };
	std::atomic<uint64_t> hi{ 0 };
	std::atomic<bool> llvm{ false };
};
code_range g_code[max_code];
// Slots [0, g_code_used) have been claimed at some time.
std::atomic<size_t> g_code_used{ 0 };

} // namespace


constinit thread_local guard_frame *t_guard = nullptr;

} // namespace detail
} // namespace bpftime::vm

// bpftime_vm_guarded_call(frame, fn, self, ctx, ctx_len, err): pushes the
// callee-saved registers and err, records rsp in frame->rsp and calls
// fn(self, ctx, ctx_len, err). bpftime_vm_guard_recover is where a fault
// handler sends the thread, with rsp = frame->rsp: it stores EFAULT in
// *err, returns 0 and restores the registers the caller had.
extern "C" char bpftime_vm_guard_recover[];

asm(R"(
	.text
	.p2align 4
	.globl bpftime_vm_guarded_call
	.hidden bpftime_vm_guarded_call
	.type bpftime_vm_guarded_call, @function
bpftime_vm_guarded_call:
	.cfi_startproc
	push %rbp
	.cfi_adjust_cfa_offset 8
	push %rbx
	.cfi_adjust_cfa_offset 8
	push %r12
	.cfi_adjust_cfa_offset 8
	push %r13
	.cfi_adjust_cfa_offset 8
	push %r14
	.cfi_adjust_cfa_offset 8
	push %r15
	.cfi_adjust_cfa_offset 8
	push %r9
	.cfi_adjust_cfa_offset 8
	mov %rsp, (%rdi)
	mov %rsi, %rax
	mov %rdx, %rdi
	mov %rcx, %rsi
	mov %r8, %rdx
	mov %r9, %rcx
	call *%rax
	add $8, %rsp
	.cfi_adjust_cfa_offset -8
.Lbpftime_vm_guard_out:
	pop %r15
	pop %r14
	pop %r13
	pop %r12
	pop %rbx
	pop %rbp
	ret
	.cfi_endproc
	.size bpftime_vm_guarded_call, .-bpftime_vm_guarded_call

	.globl bpftime_vm_guard_recover
	.hidden bpftime_vm_guard_recover
	.type bpftime_vm_guard_recover, @function
bpftime_vm_guard_recover:
	pop %rcx
	movl $14, (%rcx)
	xor %eax, %eax
	jmp .Lbpftime_vm_guard_out
	.size bpftime_vm_guard_recover, .-bpftime_vm_guard_recover
)");
static_assert(EFAULT == 14, "bpftime_vm_guard_recover stores EFAULT as 14");

namespace bpftime::vm {
namespace detail {

void register_code(uint64_t lo, uint64_t hi, bool llvm) noexcept
{
	for (size_t i = 0; i < max_code; i++) {
		uint64_t expected = 0;
		// hi claims the slot; lo, stored last, makes it visible.
		if (g_code[i].hi.compare_exchange_strong(expected, hi)) {
			g_code[i].llvm.store(llvm, std::memory_order_relaxed);
			g_code[i].lo.store(lo, std::memory_order_release);
			size_t used = g_code_used.load();
			while (used < i + 1 &&
			       !g_code_used.compare_exchange_weak(used, i + 1)) {
			}
			return;
		}
	}
}

void unregister_code(uint64_t lo) noexcept
{
	const size_t used = g_code_used.load(std::memory_order_acquire);
	for (size_t i = 0; i < used; i++) {
		if (g_code[i].lo.load(std::memory_order_acquire) == lo) {
			g_code[i].lo.store(0, std::memory_order_release);
			g_code[i].hi.store(0, std::memory_order_release);
			return;
		}
	}
}

bool in_jit_x64_code(uint64_t pc) noexcept
{
	const size_t used = g_code_used.load(std::memory_order_acquire);
	for (size_t i = 0; i < used; i++) {
		const uint64_t lo = g_code[i].lo.load(std::memory_order_acquire);
		if (lo && pc >= lo && pc < g_code[i].hi.load(std::memory_order_relaxed))
			return !g_code[i].llvm.load(std::memory_order_relaxed);
	}
	return false;
}

bool end_guarded_run(ucontext_t *uc) noexcept
{
	guard_frame *f = t_guard;
	if (!f || !f->rsp)
		return false;
	uc->uc_mcontext.gregs[REG_RSP] = greg_t(f->rsp);
	uc->uc_mcontext.gregs[REG_RIP] =
		greg_t(reinterpret_cast<uint64_t>(bpftime_vm_guard_recover));
	return true;
}

} // namespace detail

bool in_generated_code(uint64_t pc) noexcept
{
	const size_t used = detail::g_code_used.load(std::memory_order_acquire);
	for (size_t i = 0; i < used; i++) {
		const uint64_t lo = detail::g_code[i].lo.load(std::memory_order_acquire);
		if (lo && pc >= lo &&
		    pc < detail::g_code[i].hi.load(std::memory_order_relaxed))
			return true;
	}
	return false;
}

bool end_run_after_fault(void *ucontext) noexcept
{
	auto *uc = static_cast<ucontext_t *>(ucontext);
	return jit_x64::end_run(uc) || detail::end_guarded_run(uc);
}

} // namespace bpftime::vm
