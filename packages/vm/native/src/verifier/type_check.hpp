// type_check.hpp: the type discipline of verify() (type_check.cpp), run on a
// program the structural passes accepted. Internal to the vm.
#pragma once

#include <bpftime/common/result.hpp>
#include <bpftime/vm/verifier.hpp>

#include <cstdint>
#include <span>
#include <vector>

namespace bpftime::vm::detail {

// Explores every path of prog from its main function (start 0) as the
// kernel's do_check does. function_starts are those verify() found.
// EINVAL "pc: reason" in the kernel's log words; E2BIG when the exploration
// passes opts.insn_limit.
[[nodiscard]] status check_types(std::span<const insn> prog,
				 const verify_options &opts,
				 const std::vector<uint32_t> &function_starts,
				 verify_stats *stats);

} // namespace bpftime::vm::detail
