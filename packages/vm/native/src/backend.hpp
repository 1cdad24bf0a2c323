// backend.hpp: the contract between vm.cpp and each execution backend.
//
// vm.cpp owns everything that is the same for every backend: helper and kfunc
// tables, lddw resolution, verification, the memory policy. It hands a
// verified, resolved `program` to a backend factory, which returns an
// `executor`. The program outlives the executor and does not change after
// the factory is called.
#pragma once

#include <bpftime/common/result.hpp>
#include <bpftime/vm/insn.hpp>
#include <bpftime/vm/vm.hpp>

#include <cstdint>
#include <memory>
#include <unordered_map>
#include <vector>

namespace bpftime::vm::detail {

struct helper_entry {
	helper_fn fn = nullptr;
	std::string name;
	helper_proto proto; // kinds only; its name is empty (see `name`)
};

// Everything a backend needs, after verification and lddw resolution: every
// lddw's two slots hold the final 64-bit value with src_reg cleared. A
// BPF_PSEUDO_FUNC lddw holds the address of a callback_record that vm.cpp
// owns and completes (sets exec) once the factory has returned, so backends
// treat every lddw alike.
struct program {
	std::vector<insn> insns;
	// Indexed by helper id; a null fn is an unknown helper (verifier refuses
	// calls to them, so backends may assume non-null).
	std::vector<helper_entry> helpers;
	std::unordered_map<uint32_t, helper_entry> kfuncs; // by BTF id
	vm_options options;
	std::vector<memory_region> regions; // bounds-check mode only
	tail_call_resolver tail_call = nullptr;
	void *tail_call_user = nullptr;
	// Only during the factory call (vm::set_inline_resolver).
	inline_resolver inliner;
	// Start pcs of the main program (0) and of every sub-program reached by
	// a local call or a BPF_PSEUDO_FUNC, sorted.
	std::vector<uint32_t> function_starts;
	// Maximum stack depth in bytes that any frame uses, rounded to 8, <= 512;
	// backends may still allocate MAX_BPF_STACK per frame.
	uint32_t max_stack = MAX_BPF_STACK;
};

// Helper BPF_FUNC_tail_call (helper_proto.hpp): backends implement it
// themselves (it must not return to the caller on success), through
// program::tail_call.
using bpftime::vm::BPF_FUNC_tail_call;

class executor {
    public:
	virtual ~executor() = default;
	// Runs the main function: r1 = ctx, r2 = ctx_len. noexcept: faults in
	// bounds-check mode come back as EFAULT, too deep calls as ELOOP.
	virtual result<uint64_t> run(void *ctx, uint64_t ctx_len) const noexcept = 0;
	// run() as a vm::runner; backends with a cheaper path override it.
	virtual runner make_runner() const noexcept
	{
		return { &run_through, this };
	}
	// Runs the function starting at `pc` (one of program::function_starts)
	// with r1..r5 = args, on a fresh stack; for callbacks of helpers.
	virtual uint64_t call_function(uint32_t pc, const uint64_t args[5]) const noexcept = 0;
	virtual uint64_t compile_time_ns() const noexcept
	{
		return 0;
	}

    private:
	static uint64_t run_through(const void *self, void *ctx,
				    uint64_t ctx_len, int *err) noexcept
	{
		result<uint64_t> r =
			static_cast<const executor *>(self)->run(ctx, ctx_len);
		*err = r ? 0 : r.error().code;
		return r ? *r : 0;
	}
};

result<std::unique_ptr<executor>> make_interpreter(const program &prog);
result<std::unique_ptr<executor>> make_jit_x64(const program &prog);
// llvm/llvm_executor.cpp: ENOTSUP when the LLVM plugin cannot be loaded.
result<std::unique_ptr<executor>> make_llvm(const program &prog);

// What a BPF_PSEUDO_FUNC lddw evaluates to at run time: the address of one
// of these, owned by the vm, so that helpers can call back through
// bpftime::vm::invoke_callback().
struct callback_record {
	const executor *exec;
	uint32_t pc;
};

} // namespace bpftime::vm::detail
