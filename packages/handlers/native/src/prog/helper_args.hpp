// helper_args.hpp: the vm verifier's helper-argument checks, as the registry
// asks for them (helper_args.cpp). Not a public header.
#pragma once

#include <bpftime/common/result.hpp>
#include <bpftime/vm/insn.hpp>

#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <utility>

namespace bpftime::handlers {

// The key_size and value_size of map id, if it is a map.
using map_sizes_fn =
	std::function<std::optional<std::pair<uint32_t, uint32_t>>(uint32_t id)>;

// vm::check_helper_args over the helpers this process provides (and
// bpf_tail_call): EINVAL "<what>: insn <pc>: helper #<id>: <reason>" when a
// call's arguments do not fit its prototype's kinds (a map argument that is
// not a map on every path, a key that may be a number, a buffer in the stack
// that leaves the frame). Calls of helpers nobody provides are not checked
// here (instantiation refuses them by name). Called by create_prog on every
// program (the kernel refuses such programs at BPF_PROG_LOAD), with sizes to
// check keys and values in the stack against their map, and again by
// instantiate, for helpers registered since.
status check_helper_args(std::span<const vm::insn> insns, const std::string &what,
			 const map_sizes_fn &sizes = {});

} // namespace bpftime::handlers
