// prog_check.hpp: argument checks of map helpers (prog_check.cpp). Not a
// public header.
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

// EINVAL, naming `what` and the instruction, when a call of a helper that
// takes a map may get something other than a map pointer as its map, or
// something other than a pointer to the stack, a map value or the context as
// its key or value, or when a helper's buffer in the stack may leave the
// frame. Only helpers this process
// provides are checked. Called by create_prog on every program (the kernel
// refuses such programs at BPF_PROG_LOAD) and again by instantiate, for
// helpers registered since.
// The key_size and value_size of map id, if it is a map.
using map_sizes_fn =
	std::function<std::optional<std::pair<uint32_t, uint32_t>>(uint32_t id)>;

// sizes (may be empty) lets keys and values in the stack be checked against
// the sizes of the map they go to.
status check_helper_args(std::span<const vm::insn> insns, const std::string &what,
			 const map_sizes_fn &sizes = {});

} // namespace bpftime::handlers
