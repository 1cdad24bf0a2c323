// helper_args.cpp: the registry's view of the vm verifier's argument checks
// (helper_args.hpp). The checks themselves are the vm's (verifier.cpp, pass
// 6), driven by the prototypes in the helper table.
#include "prog/helper_args.hpp"

#include <bpftime/common/log.hpp>
#include <bpftime/handlers/bpf_defs.hpp>
#include <bpftime/handlers/helpers.hpp>
#include <bpftime/vm/verifier.hpp>

#include <cstdlib>

namespace bpftime::handlers {

status check_helper_args(std::span<const vm::insn> insns, const std::string &what,
			 const map_sizes_fn &sizes)
{
	// The type discipline (check_program_types, vm::load) checks every
	// argument this pass does, and more precisely; this pass remains for
	// BPFTIME_VERIFIER=off.
	if (verifier_strict())
		return {};
	vm::verify_options o;
	o.helper_proto_of = [](uint32_t id) { return helper_proto_of(id); };
	o.map_sizes = sizes;
	status st = vm::check_helper_args(insns, o);
	if (st)
		return st;
	// The verifier's message starts with the instruction's index and ": "
	// (verifier.hpp); the registry's names the program first.
	return fail(st.error().code, what + ": insn " + st.error().message);
}

uint32_t context_size(uint32_t prog_type) noexcept
{
	switch (prog_type) {
	case BPF_PROG_TYPE_TRACEPOINT:
		return 64; // trace_event_raw_sys_enter: common, id, args[6]
	case BPF_PROG_TYPE_RAW_TRACEPOINT:
	case BPF_PROG_TYPE_RAW_TRACEPOINT_WRITABLE:
		return 12 * 8;
	default:
		return 168; // struct pt_regs, x86-64
	}
}

bool context_writable(uint32_t prog_type) noexcept
{
	switch (prog_type) {
	case BPF_PROG_TYPE_TRACEPOINT:
	case BPF_PROG_TYPE_RAW_TRACEPOINT:
	case BPF_PROG_TYPE_RAW_TRACEPOINT_WRITABLE:
		return false;
	default:
		return true;
	}
}

bool verifier_strict() noexcept
{
	static const log_source src{ "verifier", true };
	static const bool strict = [] {
		const char *v = getenv("BPFTIME_VERIFIER");
		auto mode = vm::parse_verifier_mode(v);
		if (!mode) {
			log(src, log_level::warn, "%s; using strict",
			    mode.error().message.c_str());
			return true;
		}
		if (!*mode)
			log(src, log_level::warn,
			    "BPFTIME_VERIFIER=off: the verifier's type "
			    "discipline is OFF in this process; programs are "
			    "not proven memory-safe and may crash their "
			    "targets");
		return *mode;
	}();
	return strict;
}

status check_program_types(std::span<const vm::insn> insns,
			   const std::string &what, uint32_t prog_type,
			   const map_desc_fn &maps)
{
	if (!verifier_strict())
		return {};
	vm::verify_options o;
	o.helper_proto_of = [](uint32_t id) -> std::optional<vm::helper_proto> {
		if (auto p = helper_proto_of(id))
			return p;
		if (id == vm::BPF_FUNC_tail_call)
			return vm::tail_call_proto;
		vm::helper_proto any;
		any.id = id;
		any.ret = vm::RET_INTEGER;
		return any;
	};
	o.kfunc_known = [](uint32_t) { return true; };
	o.map_of = maps;
	o.ctx_size = context_size(prog_type);
	o.ctx_writable = context_writable(prog_type);
	auto r = vm::verify(insns, o);
	if (r)
		return {};
	return fail(r.error().code, what + ": insn " + r.error().message);
}

} // namespace bpftime::handlers
