// jit_x64.hpp: internals of the x86-64 JIT that its native test also uses.
//
// vm.cpp reaches the JIT only through detail::make_jit_x64() (backend.hpp),
// which detects the CPU's features. The test calls compile() with chosen
// features, so that both the BMI2 and the plain shift sequences run on a
// machine that has BMI2, and reads the code back to check its encoding.
#pragma once

#include "../backend.hpp"

#include <cstdint>
#include <memory>
#include <span>

namespace bpftime::vm::jit_x64 {

struct features {
	// shlx/shrx/sarx: shifts by a register without going through cl.
	bool bmi2 = false;
};

// The features of the CPU this process runs on (cpuid).
features detect_features() noexcept;

// Compiles a verified program (backend.hpp's contract) for a CPU with
// `feat`. EINVAL names the pc of an instruction the JIT cannot encode (a
// program the verifier should have refused), ENOMEM a failed mmap.
result<std::unique_ptr<detail::executor>> compile(const detail::program &prog,
					  const features &feat);

// The machine code of an executor made by compile(); empty for any other.
std::span<const uint8_t> code_of(const detail::executor &e) noexcept;

} // namespace bpftime::vm::jit_x64
