// runtime.hpp: what the generated code and the C++ side of the JIT share.
//
// One run_ctx lives on the native stack of every executor::run() and
// call_function() call, next to that call's BPF stack area. The generated
// code keeps its address in r12 for the whole run and reads it at fixed
// offsets (the constants below), so the layout is a contract between
// codegen.cpp and executor.cpp, not a public type.
//
// The functions declared here are called from generated code with the
// System V ABI, on the thread that runs the program.
#pragma once

#include "../backend.hpp"
#include "jit_x64.hpp"

#include <cstddef>
#include <cstdint>
#include <new>
#include <optional>
#include <ucontext.h>
#include <utility>
#include <vector>

namespace bpftime::vm::jit_x64 {

// Every run gets MAX_CALL_FRAMES frames of MAX_BPF_STACK bytes; frame 0 (the
// entry function) is at the top, each local call moves r10 down one frame.
inline constexpr uint32_t stack_area_size = MAX_CALL_FRAMES * MAX_BPF_STACK;

// run_ctx::status besides 0 (running) and the errnos EFAULT, ELOOP and
// EINVAL that the generated code sets itself: the run's result is already
// decided and stored in *run_ctx::final (a tail call's result, or the error
// of a callback that a helper of this run called).
inline constexpr uint32_t status_final = 0xffffffffu;

// run_ctx::status of a run that a SIGSEGV or SIGBUS ended (end_run(), from
// the fault handler): err_addr is the faulting address, err_info the
// native pc.
inline constexpr uint32_t status_fault = 0xfffffffeu;

// Where a run's decided result waits: constructed by whoever sets
// status_final (once: they do only while status is 0), taken by the run's
// end. Raw storage rather than std::optional, so a run that ends at its
// exit (every probe hit) neither initialises nor inspects it.
class final_slot {
    public:
	void put(result<uint64_t> r) noexcept
	{
		new (buf_) result<uint64_t>(std::move(r));
	}
	result<uint64_t> take() noexcept
	{
		auto *p = std::launder(reinterpret_cast<result<uint64_t> *>(buf_));
		result<uint64_t> r = std::move(*p);
		p->~result<uint64_t>();
		return r;
	}

    private:
	alignas(result<uint64_t>) unsigned char buf_[sizeof(result<uint64_t>)];
};

struct run_ctx {
	uint64_t args[5];   // r1..r5 at entry
	uint64_t fp_init;   // r10 before the entry function's prologue
	uint64_t call_fp_min; // a local call needs r10 >= this (else ELOOP)
	uint64_t stack_lo;  // bottom of the stack area
	uint64_t ctx;       // [ctx, ctx + ctx_len) is accessible
	uint64_t ctx_len;   //   in bounds-check mode
	uint64_t saved_rsp; // rsp of the entry trampoline, to unwind to
	uint32_t status;    // 0, an errno, or status_final
	uint32_t err_pc;    // pc of the faulting instruction
	uint64_t err_addr;  // EFAULT: address; EINVAL (callx): helper id
	uint64_t err_info;  // EFAULT: access_info of the access
	const detail::program *prog;
	// The run this one was started from on the same thread (a helper's
	// callback, a tail call), or nullptr.
	run_ctx *parent;
	int callback_depth; // call_function() runs between here and the root
	final_slot *final; // valid once status is status_final
};

// Offsets the generated code uses; all fit a disp8.
inline constexpr int32_t rc_args = offsetof(run_ctx, args);
inline constexpr int32_t rc_fp_init = offsetof(run_ctx, fp_init);
inline constexpr int32_t rc_call_fp_min = offsetof(run_ctx, call_fp_min);
inline constexpr int32_t rc_stack_lo = offsetof(run_ctx, stack_lo);
inline constexpr int32_t rc_ctx = offsetof(run_ctx, ctx);
inline constexpr int32_t rc_ctx_len = offsetof(run_ctx, ctx_len);
inline constexpr int32_t rc_saved_rsp = offsetof(run_ctx, saved_rsp);
inline constexpr int32_t rc_status = offsetof(run_ctx, status);
inline constexpr int32_t rc_err_pc = offsetof(run_ctx, err_pc);
inline constexpr int32_t rc_err_addr = offsetof(run_ctx, err_addr);
static_assert(offsetof(run_ctx, err_info) < 128, "run_ctx fields must fit disp8");

// How a memory access is described to region_check(): pc, direction, size.
constexpr uint32_t access_info(uint32_t pc, bool write, uint32_t size)
{
	return pc << 8 | (write ? 0x80u : 0u) | size;
}
constexpr uint32_t access_pc(uint64_t info)
{
	return static_cast<uint32_t>(info >> 8);
}
constexpr bool access_write(uint64_t info)
{
	return info & 0x80;
}
constexpr uint32_t access_size_of(uint64_t info)
{
	return static_cast<uint32_t>(info & 0x7f);
}
static_assert(access_pc(access_info(BPF_MAX_INSNS, true, 8)) == BPF_MAX_INSNS,
	      "every pc fits access_info's 24 bits");

// The slow path of a bounds check, after the inline checks against this
// run's stack area and context failed: 1 when [addr, addr + size) lies in the
// stack area or context of an enclosing run on this thread (a callback may
// use its caller's stack) or in one of prog->regions (writable when the
// access writes); else 0 with the fault recorded in rc (EFAULT).
uint64_t region_check(run_ctx *rc, uint64_t addr, uint64_t info) noexcept;

// bpf_tail_call(ctx, prog_array, index) through detail::run_tail_call()
// (tail_call.hpp), the one implementation all backends share. When the
// target ran, its result is stored as the run's final result (status_final)
// and the caller unwinds; otherwise returns the r0 the program continues
// with (-ENOENT, -ELOOP).
uint64_t tail_call(uint64_t ctx, uint64_t prog_array, uint64_t index,
		   run_ctx *rc) noexcept;

struct generated_code {
	std::vector<uint8_t> code;
	size_t entry_offset = 0; // the trampoline, see entry_fn
	size_t probe_entry_offset = 0; // see probe_entry_fn
	// (start pc, offset of its prologue) for every function, by pc.
	std::vector<std::pair<uint32_t, size_t>> functions;
};

// The trampoline: saves the callee-saved registers, loads r1..r5 and r10
// from rc, calls `fn` and returns its r0 (or whatever rax holds after an
// unwind; rc->status tells).
using entry_fn = uint64_t (*)(run_ctx *rc, const void *fn);
// The probe entry: vm::runner::fn_type, generated. A run of the main function
// with r1 = ctx and r2 = ctx_len (r3-r5 are not set: the main function never
// reads them) on a run_ctx and a stack area in its own frame, of which it
// sets only what the generated code reads; the thread's chain of runs is not
// touched. Only for programs that neither start runs of their own on this
// thread (callbacks, tail calls) nor check bounds: see
// jit_executor::runs_alone. A run that ends with a nonzero status goes to
// probe_failed() for its error.
using probe_entry_fn = uint64_t (*)(const void *self, void *ctx,
				    uint64_t ctx_len, int *err) noexcept;

// The probe entry's frame above its stack area; r12 points at it.
struct probe_frame {
	run_ctx rc;
	int *err;
	const void *self; // the jit_executor
};
inline constexpr int32_t pf_err = offsetof(probe_frame, err);
inline constexpr int32_t pf_self = offsetof(probe_frame, self);

// The probe entry's failure path: fills in the rest of pf->rc, stores the
// errno in *pf->err and returns the r0 the run gives (0 on an error).
uint64_t probe_failed(probe_frame *pf, uint64_t r0) noexcept;

// The offset from the thread pointer of the thread-local that the probe
// entry of a program calling native code sets to its run_ctx for the run
// (end_run() reads it), when the vm is built for static TLS
// (BPFTIME_VM_STATIC_TLS: the agent, loaded at startup); otherwise none, and
// a fault inside a helper of such a run is not contained.
std::optional<int32_t> probe_rc_tls_offset() noexcept;

// vm::end_run_after_fault() for the JIT: ends the outermost JIT run of this
// thread, as l_unwind does (see vm.hpp). Signal handler context.
bool end_run(ucontext_t *uc) noexcept;

// Translates prog to machine code for `feat`. `callx_table` (callx_count
// entries, 0 for unknown ids) is what callx indexes at run time; it must
// outlive the code.
result<generated_code> generate(const detail::program &prog,
				const features &feat,
				const uint64_t *callx_table, size_t callx_count);

} // namespace bpftime::vm::jit_x64
