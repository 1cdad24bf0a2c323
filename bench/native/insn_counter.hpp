// insn_counter.hpp: counts the eBPF instructions one run of a program
// executes, for the interpreter's ns-per-instruction figure.
//
// bpftime's vm has no instruction counter on its exec path (it would cost
// every run), so vm_bench runs the program once more on this small, separate
// interpreter: RFC 9669 semantics, written from the RFC, not from bpftime's
// interpreter. Its r0 is compared with the vm's, which also cross-checks
// both. It covers what clang emits for bench/programs (ALU/ALU64, JMP/JMP32,
// loads, stores, lddw, helper calls) and refuses the rest (local calls,
// atomics, callx, tail calls) by name instead of guessing.
//
// Memory accesses are checked against the stack and the given regions, so
// that a program this counter misreads fails with a message, not a crash.
#pragma once

#include <bpftime/common/result.hpp>
#include <bpftime/vm/insn.hpp>
#include <bpftime/vm/vm.hpp>

#include <cstdint>
#include <span>

namespace bench {

struct count_result {
	uint64_t r0 = 0;
	uint64_t insns = 0; // executed, a lddw counting once
};

struct counter_env {
	// Helpers by id, as registered with the vm.
	std::span<const bpftime::vm::helper_fn> helpers;
	// Memory besides the stack that the program may touch (its data).
	std::span<const bpftime::vm::memory_region> regions;
};

// Runs the instructions as bpftime::vm::vm::instructions() returns them
// (lddw resolved) with r1 = ctx, r2 = ctx_len.
[[nodiscard]] bpftime::result<count_result>
count_insns(std::span<const bpftime::vm::insn> prog, const counter_env &env,
	    uint64_t ctx, uint64_t ctx_len);

} // namespace bench
