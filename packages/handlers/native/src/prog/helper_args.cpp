// helper_args.cpp: the registry's view of the vm verifier's argument checks
// (helper_args.hpp). The checks themselves are the vm's (verifier.cpp, pass
// 6), driven by the prototypes in the helper table.
#include "prog/helper_args.hpp"

#include <bpftime/handlers/helpers.hpp>
#include <bpftime/vm/verifier.hpp>

namespace bpftime::handlers {

status check_helper_args(std::span<const vm::insn> insns, const std::string &what,
			 const map_sizes_fn &sizes)
{
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

} // namespace bpftime::handlers
