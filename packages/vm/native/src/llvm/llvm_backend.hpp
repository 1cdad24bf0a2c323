// llvm_backend.hpp: the `llvm` backend inside the core (see
// llvm_executor.cpp): the executor shared by JIT-compiled code and loaded
// AOT objects, and the run state generated code is handed.
#pragma once

#include "../backend.hpp"
#include "llvm_abi.h"

#include <cstdint>
#include <optional>
#include <span>
#include <vector>

namespace bpftime::vm::detail {

class llvm_executor;

// One run of generated code (llvm_abi.h: `void *run`). The first three
// fields are read and written by generated code at fixed offsets.
struct llvm_run {
	uint32_t state = 0; // 0 running, 1 ended by a tail call (r0), 2 failed (err)
	uint32_t call_depth = 0;
	uint64_t fp = 0; // bounds-check mode: top of the next frame
	uint64_t r0 = 0;
	const llvm_executor *ex = nullptr;
	llvm_run *parent = nullptr;
	uint64_t ctx_lo = 0, ctx_len = 0;
	uint64_t stack_lo = 0; // bounds-check mode: [stack_lo, +llvm_stack_size)
	int callback_depth = 0;
	std::optional<bpftime::error> err;
};
inline constexpr uint64_t llvm_stack_size = uint64_t(MAX_CALL_FRAMES) * MAX_BPF_STACK;
static_assert(offsetof(llvm_run, call_depth) == 4);
static_assert(offsetof(llvm_run, fp) == 8);
static_assert(offsetof(llvm_run, state) == 0);

class llvm_executor final : public executor {
    public:
	explicit llvm_executor(const program &p);
	~llvm_executor() override;

	result<uint64_t> run(void *ctx, uint64_t ctx_len) const noexcept override;
	uint64_t call_function(uint32_t pc, const uint64_t args[5]) const noexcept override;
	// Under detail::guarded_run(), as the interpreter's: a fault in
	// generated code or a helper ends the run (vm::end_run_after_fault).
	runner make_runner() const noexcept override;
	uint64_t compile_time_ns() const noexcept override
	{
		return compile_ns_;
	}
	const program &prog() const noexcept;

	// Registers [lo, hi) as generated code (vm::in_generated_code).
	void set_code(uint64_t lo, uint64_t hi) noexcept;

	// llvm_function_starts() of the program, and the address of each.
	std::vector<uint32_t> starts_;
	std::vector<uint64_t> fn_addrs_;
	void *jit_handle_ = nullptr;
	bpftime_llvm_release_fn release_ = nullptr;
	// An AOT object's mapping (aot_loader.cpp), unmapped with the executor.
	void *map_ = nullptr;
	size_t map_len_ = 0;
	uint64_t compile_ns_ = 0;

    private:
	result<uint64_t> enter(uint64_t fn, const uint64_t in[5], uint64_t ctx,
			       uint64_t ctx_len, bool callback) const noexcept;
	uint64_t fn_for(uint32_t pc) const noexcept;
	static uint64_t run_plain(const void *self, void *ctx, uint64_t ctx_len,
				  int *err) noexcept;
	static uint64_t run_guarded(const void *self, void *ctx, uint64_t ctx_len,
				    int *err) noexcept;

	const program &prog_;
	uint64_t code_lo_ = 0;
};

struct llvm_plugin_fns {
	bpftime_llvm_jit_fn jit;
	bpftime_llvm_release_fn release;
	bpftime_llvm_aot_fn aot;
	const char *path;
};

// The plugin, loaded once per process; ENOTSUP listing every path tried
// when it cannot be loaded.
result<const llvm_plugin_fns *> llvm_plugin() noexcept;

// Where the program's functions start, as the plugin compiles them.
std::vector<uint32_t> llvm_function_starts(const program &p);

// The runtime functions by bpftime_llvm_rt index.
const uint64_t *llvm_runtime_table() noexcept;

// An ELF relocatable object for `prog`, whose instructions as loaded (pseudo
// lddw unresolved) are `original`.
result<std::vector<uint8_t>> compile_llvm_aot(const program &prog,
					      std::span<const insn> original,
					      const char *cpu);

// The instructions an AOT object was compiled from (its .bpftime.insns).
result<std::vector<insn>> aot_object_insns(std::span<const uint8_t> obj);

// Maps an AOT object of `prog` (already verified and resolved) into this
// process: its code, its import table filled from `prog`.
result<std::unique_ptr<executor>> load_llvm_aot(const program &prog,
						std::span<const uint8_t> obj);

} // namespace bpftime::vm::detail
