// verifier.hpp: the structural verifier every program passes before a
// backend sees it.
//
// It proves what the backends rely on, nothing more: every instruction is in
// the opcode table with legal fields, control flow stays inside its function
// and ends in an exit, calls name registered helpers/kfuncs or real
// sub-programs at most MAX_CALL_FRAMES deep, constant stack accesses through
// r10 stay inside the 512-byte frame, r10 is never written, and (strict mode)
// no register is read on a path where it was never written. It does not track
// pointer types or value ranges as the kernel's verifier does; memory safety
// beyond that is the job of vm_options::bounds_check.
//
//   bpftime::vm::verify_options o;
//   o.helper_known = [&](uint32_t id) { return id < 200; };
//   auto r = bpftime::vm::verify(prog, o);
//   if (!r) puts(r.error().message.c_str()); // "12: invalid opcode 0xff"
//
// Errors are EINVAL (E2BIG for a program above BPF_MAX_INSNS), and the message
// starts with the index of the offending instruction, as the kernel's
// verifier log does.
#pragma once

#include <bpftime/common/result.hpp>
#include <bpftime/vm/insn.hpp>

#include <cstdint>
#include <functional>
#include <span>
#include <vector>

namespace bpftime::vm {

struct verify_options {
	// Whether a helper id (call with src_reg 0, or a constant) may be
	// called. Unset: every id is refused.
	std::function<bool(uint32_t id)> helper_known;
	// Whether a kfunc BTF id (call with src_reg BPF_PSEUDO_KFUNC_CALL) may
	// be called. Unset: every kfunc call is refused.
	std::function<bool(uint32_t btf_id)> kfunc_known;
	// Refuse reads of registers that are not written on every path.
	bool strict = true;
};

struct verify_info {
	// Start pcs of the main function (0) and of every function reached by a
	// local call or named by a BPF_PSEUDO_FUNC lddw, sorted, unique.
	std::vector<uint32_t> function_starts;
	// Largest stack depth any frame reaches through r10, rounded up to 8.
	// MAX_BPF_STACK when r10 escapes into another register (its uses
	// cannot be followed by this verifier).
	uint32_t max_stack = 0;
};

[[nodiscard]] result<verify_info> verify(std::span<const insn> prog,
					 const verify_options &opts);

// Whether prog may write into its context: store through r1 (as it is at the
// entry of the main function) or a value computed from it, or hand it where
// this analysis cannot follow it (a store outside the stack, a kfunc, a
// helper argument the helper may write through). helper_written_args(id)
// gives the argument registers (bit n for rn, n in 1-5) helper id may write
// through or pass on (to a callback, another program); unset, every helper
// may use all five. A caller that runs the program on memory it must not see
// changed (a probe's registers) can hand it that memory directly when this
// is false, and must copy it otherwise. True for a program verify()
// rejects. The kernel refuses context writes in tracing programs outright;
// this lets such programs run on a copy instead.
[[nodiscard]] bool may_write_context(
	std::span<const insn> prog,
	const std::function<uint16_t(uint32_t id)> &helper_written_args);

} // namespace bpftime::vm
