// fault.hpp: what the backends share for fault containment
// (vm::end_run_after_fault, vm.hpp): the table of the JIT's code ranges and
// the guard that the interpreter's runner runs under.
#pragma once

#include <bpftime/vm/vm.hpp>

#include <cstdint>
#include <ucontext.h>

namespace bpftime::vm::detail {

// One guarded_run() on this thread's stack: rsp as the guard saved it
// (the callee-saved registers and err pushed above it). Innermost in
// t_guard.
struct guard_frame {
	uint64_t rsp;
	guard_frame *prev;
};
extern constinit thread_local guard_frame *t_guard;

} // namespace bpftime::vm::detail

// Pushes the callee-saved registers and err, records rsp in frame->rsp
// and calls fn(self, ctx, ctx_len, err); see fault.cpp.
extern "C" uint64_t
bpftime_vm_guarded_call(bpftime::vm::detail::guard_frame *frame,
			bpftime::vm::runner::fn_type fn, const void *self,
			void *ctx, uint64_t ctx_len, int *err) noexcept;

namespace bpftime::vm::detail {

// Generated code [lo, hi) of one program: registered once it is executable,
// unregistered before it is unmapped. in_generated_code() reads the table
// from signal handlers, without a lock. A process with more than 1024
// programs compiled at once leaves the rest out (their faults in generated
// code are then not recognised as such).
// `llvm`: code of the LLVM backend, which runs under guarded_run() and
// must not be taken for the x86-64 JIT's (in_jit_x64_code).
void register_code(uint64_t lo, uint64_t hi, bool llvm = false) noexcept;
void unregister_code(uint64_t lo) noexcept;
// Whether pc lies in code of the x86-64 JIT (not of the LLVM backend).
bool in_jit_x64_code(uint64_t pc) noexcept;

// Runs fn(self, ctx, ctx_len, err) so that end_guarded_run() can end it
// from a fault handler: fn's result, or 0 with *err = EFAULT after a fault.
// Costs the saving of the six callee-saved registers and two thread-local
// stores; for backends whose runs have no unwinding of their own.
inline uint64_t guarded_run(runner::fn_type fn, const void *self, void *ctx,
			    uint64_t ctx_len, int *err) noexcept
{
	guard_frame frame{ 0, t_guard };
	t_guard = &frame;
	const uint64_t r0 =
		bpftime_vm_guarded_call(&frame, fn, self, ctx, ctx_len, err);
	t_guard = frame.prev;
	return r0;
}

// The guard's half of end_run_after_fault(): when this thread is inside
// guarded_run(), points uc at the guard's recovery code.
bool end_guarded_run(ucontext_t *uc) noexcept;

} // namespace bpftime::vm::detail
