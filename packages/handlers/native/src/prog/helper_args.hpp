// helper_args.hpp: the vm verifier's helper-argument checks, as the registry
// asks for them (helper_args.cpp). Not a public header.
#pragma once

#include <bpftime/common/result.hpp>
#include <bpftime/vm/insn.hpp>
#include <bpftime/vm/verifier.hpp>

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

// What the verifier knows of the map a lddw names (vm::verify_options::map_of).
using map_desc_fn =
	std::function<std::optional<vm::map_desc>(uint8_t kind, int32_t imm)>;

// Bytes of context a program of this type runs on (the kernel's context
// size per program type): pt_regs (168 bytes on x86-64) for kprobes and
// uprobes, the syscall tracepoint record (64) for tracepoints, twelve u64
// arguments for raw tracepoints; pt_regs for every other type, since the
// agent runs programs on a probe's registers.
uint32_t context_size(uint32_t prog_type) noexcept;

// Whether a program of this type may store into its context: kprobes and
// uprobes may (the agent runs them on a copy when they do,
// vm::may_write_context); tracepoints may not, as in the kernel (their
// record is the hook's own, possibly shorter than context_size: sys_exit's
// is 24 bytes).
bool context_writable(uint32_t prog_type) noexcept;

// BPFTIME_VERIFIER, read once per process: true for "strict" (the
// default), false for "off", which is logged once at warning level. An
// invalid value is logged and treated as strict.
bool verifier_strict() noexcept;

// vm::verify with the type discipline, as the registry runs it when a
// program is created (the kernel's BPF_PROG_LOAD): helpers this process does
// not provide are taken as reading no argument and returning a number (the
// program is verified again with the real ones when instantiated). EINVAL
// (E2BIG when too complex) "<what>: insn <reason>". Nothing when
// BPFTIME_VERIFIER=off.
status check_program_types(std::span<const vm::insn> insns,
			   const std::string &what, uint32_t prog_type,
			   const map_desc_fn &maps);

} // namespace bpftime::handlers
