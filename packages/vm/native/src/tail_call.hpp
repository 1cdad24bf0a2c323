// tail_call.hpp: bpf_tail_call for every backend, implemented in vm.cpp.
//
// A backend that meets `call 12` (BPF_FUNC_tail_call, r1 = ctx, r2 =
// prog_array, r3 = index) calls run_tail_call() instead of a helper:
//
//   uint64_t r0;
//   if (auto r = run_tail_call(prog, (void *)r1, ctx_len, r2, r3, r0))
//       return std::move(*r); // the whole program ends with the target's result
//   regs[0] = r0;            // fall through, as the kernel does
//
// The target runs through vm::exec() (whatever its backend) with the same
// ctx and the ctx_len of the current run. At most MAX_TAIL_CALL_CNT tail calls
// may be in progress on one thread (the kernel's tail_call_cnt); beyond that,
// and when program::tail_call is unset or names no loaded program, the call
// fails: r0 = -ENOENT (no program) or -ELOOP (limit reached).
//
// Called on the exec path: allocates nothing itself; noexcept.
#pragma once

#include "backend.hpp"

#include <optional>

namespace bpftime::vm::detail {

std::optional<result<uint64_t>> run_tail_call(const program &prog, void *ctx,
					      uint64_t ctx_len,
					      uint64_t prog_array,
					      uint64_t index,
					      uint64_t &r0) noexcept;

} // namespace bpftime::vm::detail
