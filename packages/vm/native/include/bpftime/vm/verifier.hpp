// verifier.hpp: the structural verifier every program passes before a
// backend sees it.
//
// It proves what the backends rely on, nothing more: every instruction is in
// the opcode table with legal fields, control flow stays inside its function
// and ends in an exit, calls name registered helpers/kfuncs or real
// sub-programs at most MAX_CALL_FRAMES deep, constant stack accesses through
// r10 stay inside the 512-byte frame, r10 is never written, and (strict mode)
// no register is read on a path where it was never written.
//
// Each helper call's arguments are checked against the argument kinds of the
// helper's prototype (helper_proto.hpp; the kernel's check_func_arg, in
// part): an ARG_CONST_MAP_PTR holds a map on every path, an
// ARG_PTR_TO_MAP_KEY/VALUE points into the stack, a map value or the context
// (and, in the stack, holds the map's key_size/value_size bytes inside the
// frame when the map is known), and an ARG_PTR_TO_MEM (with the
// ARG_CONST_SIZE after it) or ARG_PTR_TO_LONG that points into the stack lies
// inside the frame at a known offset with a known size. It does not track
// value ranges, NULL checks or sizes outside the stack as the kernel's
// verifier does; memory safety beyond that is the job of
// vm_options::bounds_check.
//
//   bpftime::vm::verify_options o;
//   o.helper_proto_of = [&](uint32_t id) { return my_table.find(id); };
//   auto r = bpftime::vm::verify(prog, o);
//   if (!r) puts(r.error().message.c_str()); // "12: invalid opcode 0xff"
//
// Errors are EINVAL (E2BIG for a program above BPF_MAX_INSNS), and the message
// starts with the index of the offending instruction, as the kernel's
// verifier log does.
#pragma once

#include <bpftime/common/result.hpp>
#include <bpftime/vm/helper_proto.hpp>
#include <bpftime/vm/insn.hpp>

#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <utility>
#include <vector>

namespace bpftime::vm {

// What the verifier knows of a map a lddw names: the kernel's bpf_map
// attributes that decide what a program may do with it and what helpers
// return for it. For ARRAY_OF_MAPS/HASH_OF_MAPS the inner_* fields describe
// the maps it holds (the kernel's inner_map_meta).
struct map_desc {
	uint32_t type = 0; // BPF_MAP_TYPE_*; 0 when the caller does not say
	uint32_t key_size = 0;
	uint32_t value_size = 0;
	uint32_t max_entries = 0;
	uint32_t flags = 0; // BPF_F_RDONLY_PROG refuses stores into values
	uint32_t inner_type = 0;
	uint32_t inner_key_size = 0;
	uint32_t inner_value_size = 0;
	uint32_t inner_max_entries = 0;
};

inline constexpr uint32_t BPF_F_RDONLY_PROG = 1u << 7;

struct verify_options {
	// The prototype of helper id (call with src_reg 0), or nullopt when
	// there is none: verify() refuses a call to it, check_helper_args()
	// leaves it unchecked. Unset: no helper has one.
	std::function<std::optional<helper_proto>(uint32_t id)> helper_proto_of;
	// The key_size and value_size of the map a BPF_PSEUDO_MAP_FD lddw names
	// by imm, or nullopt. Unset: keys and values in the stack are not
	// checked against their map's sizes.
	std::function<std::optional<std::pair<uint32_t, uint32_t>>(uint32_t map)>
		map_sizes;
	// Whether a kfunc BTF id (call with src_reg BPF_PSEUDO_KFUNC_CALL) may
	// be called. Unset: every kfunc call is refused.
	std::function<bool(uint32_t btf_id)> kfunc_known;
	// Refuse reads of registers that are not written on every path.
	bool strict = true;

	// The type discipline (type_check.cpp): abstract interpretation of
	// every path with the kernel's register and stack types, value
	// ranges, NULL checks and references. Off: the structural passes and
	// the argument kinds above only (BPFTIME_VERIFIER=off at the edges).
	bool types = true;
	// The map a lddw names, by its pseudo kind (BPF_PSEUDO_MAP_FD, _IDX,
	// _VALUE, _IDX_VALUE) and first imm. Unset or nullopt: map_sizes is
	// asked for the sizes; a map the verifier knows nothing of cannot be
	// used with key or value arguments, and its values cannot be read.
	std::function<std::optional<map_desc>(uint8_t kind, int32_t imm)>
		map_of;
	// Bytes of context r1 points to at entry (pt_regs: 168 for uprobes).
	// 0: the context may not be dereferenced (it may still be passed to
	// helpers that take ARG_PTR_TO_CTX).
	uint32_t ctx_size = 0;
	// Whether stores into the context are allowed. The kernel refuses them
	// in tracing programs; bpftime runs such programs on a private copy
	// (may_write_context), so they are allowed by default.
	bool ctx_writable = true;
	// The kernel's BPF_COMPLEXITY_LIMIT_INSNS: instructions the path
	// exploration may process before the program is refused as too
	// complex (the bound that makes every accepted loop terminate).
	uint32_t insn_limit = 1000000;
};

// Counters of the last type check, for benchmarks and logs.
struct verify_stats {
	uint64_t insns_processed = 0; // the kernel's "processed N insns"
	uint64_t states_stored = 0;
	uint64_t states_pruned = 0;
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

// BPFTIME_VERIFIER, as the edges (plugin, Node binding, handlers) read it:
// "strict" (or unset/empty) gives true, "off" false, anything else EINVAL
// naming the value. Off skips the type discipline only; the structural
// passes always run.
[[nodiscard]] result<bool> parse_verifier_mode(const char *value);

[[nodiscard]] result<verify_info> verify(std::span<const insn> prog,
					 const verify_options &opts,
					 verify_stats *stats = nullptr);

// The argument checks of verify() alone, for a caller that checks a program
// before all its helpers exist (a registry, when a program is created):
// calls of helpers opts.helper_proto_of knows are checked, every other call
// is accepted, and so is a program the structural passes refuse (verify()
// reports that, with its own message, when the program is loaded). The
// kfunc and strict options are ignored. Same errors as verify(): EINVAL,
// "pc: helper #id: R1 ...".
[[nodiscard]] status check_helper_args(std::span<const insn> prog,
				       const verify_options &opts);

// Whether prog may write into its context: store through r1 (as it is at the
// entry of the main function) or a value computed from it, or hand it where
// this analysis cannot follow it (a store outside the stack, a kfunc, a
// helper argument the helper may write through). helper_written_args(id)
// gives the argument registers (bit n for rn, n in 1-5) helper id may write
// through or pass on (to a callback, another program): written_args() of its
// prototype (helper_proto.hpp), ALL_ARGS_WRITTEN for an id without one;
// unset, every helper may use all five. A caller that runs the program on memory it must not see
// changed (a probe's registers) can hand it that memory directly when this
// is false, and must copy it otherwise. True for a program verify()
// rejects. The kernel refuses context writes in tracing programs outright;
// this lets such programs run on a copy instead.
[[nodiscard]] bool may_write_context(
	std::span<const insn> prog,
	const std::function<uint16_t(uint32_t id)> &helper_written_args);

} // namespace bpftime::vm
