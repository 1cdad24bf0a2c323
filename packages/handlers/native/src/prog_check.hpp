// prog_check.hpp: argument checks of map helpers (prog_check.cpp). Not a
// public header.
#pragma once

#include <bpftime/common/result.hpp>
#include <bpftime/vm/insn.hpp>

#include <span>
#include <string>

namespace bpftime::handlers {

// EINVAL, naming `what` and the instruction, when a call of a helper that
// takes a map may get something other than a map pointer as its map, or
// something other than a pointer to the stack, a map value or the context as
// its key or value, or when a helper's buffer in the stack may leave the
// frame. Only helpers this process
// provides are checked. Called by create_prog on every program (the kernel
// refuses such programs at BPF_PROG_LOAD) and again by instantiate, for
// helpers registered since.
status check_helper_args(std::span<const vm::insn> insns, const std::string &what);

} // namespace bpftime::handlers
