// helpers_native_test.cpp: the helper table of handlers, tested in C++:
// registration with prototypes, the written-argument facts derived from the
// kinds, helper names, and the registry's argument check message. Prints
// one line per failed check and a summary "N passed, M failed"; exit status
// 0 when all pass. Run by test/native.test.ts.
#include "prog/helper_args.hpp"

#include <bpftime/handlers/bpf_defs.hpp>
#include <bpftime/handlers/helpers.hpp>

#include <cerrno>
#include <cstdio>
#include <string>
#include <vector>

namespace {

using namespace bpftime;
using namespace bpftime::vm;

int g_passed = 0, g_failed = 0;

void check(bool ok, const std::string &what)
{
	if (ok) {
		g_passed++;
		return;
	}
	g_failed++;
	std::printf("FAIL %s\n", what.c_str());
}

uint64_t h_zero(uint64_t, uint64_t, uint64_t, uint64_t, uint64_t)
{
	return 0;
}

insn I(uint8_t code, uint8_t dst, uint8_t src, int16_t off, int32_t imm)
{
	return insn{ code, dst, src, off, imm };
}

void test_registration()
{
	auto bare = handlers::register_helper(
		helper_proto{ .id = 300, .name = "bare", .fn = h_zero });
	check(!bare && bare.error().code == EINVAL &&
		      bare.error().message.find("'bare'") != std::string::npos,
	      "a helper without a prototype is refused with EINVAL naming it: " +
		      (bare ? std::string("registered") : bare.error().message));
	check(!handlers::find_helper(300), "the refused helper is not there");

	std::string name = "mine";
	auto ok = handlers::register_helper(helper_proto{
		.id = 301,
		.name = name,
		.ret = RET_INTEGER,
		.args = { ARG_ANYTHING, ARG_PTR_TO_UNINIT_MEM, ARG_CONST_SIZE },
		.fn = h_zero });
	name = "changed";
	const helper_proto *p = handlers::find_helper(301);
	check(ok.ok() && p && p->name == "mine" && p->fn == h_zero,
	      "a helper with a prototype is registered, its name copied");
	check(handlers::helper_name(301) == "mine",
	      "helper_name reads a registered prototype");
	check(handlers::helper_written_args(301) == 1u << 2,
	      "the written arguments of a registered helper come from its kinds");

	auto dup = handlers::register_helper(helper_proto{
		.id = BPF_FUNC_map_lookup_elem, .name = "again",
		.ret = RET_INTEGER, .fn = h_zero });
	check(!dup && dup.error().code == EEXIST,
	      "a standard helper's id is taken");
	auto tail = handlers::register_helper(helper_proto{
		.id = BPF_FUNC_tail_call, .name = "tail", .ret = RET_INTEGER,
		.fn = h_zero });
	check(!tail && tail.error().code == EEXIST,
	      "bpf_tail_call is the vm's");
}

// Which registers each standard helper writes through or hands on, from the
// kernel's argument types of that helper (and bpftime's MEM_WRITE for
// probe_write_user's destination).
void test_written_args()
{
	struct row {
		uint32_t id;
		uint16_t written;
	};
	const row rows[] = {
		{ BPF_FUNC_map_lookup_elem, 0 },
		{ BPF_FUNC_map_update_elem, 0 },
		{ BPF_FUNC_map_delete_elem, 0 },
		{ BPF_FUNC_probe_read, 1u << 1 },
		{ BPF_FUNC_ktime_get_ns, 0 },
		{ BPF_FUNC_trace_printk, 0 },
		{ BPF_FUNC_tail_call, 1u << 1 },
		{ BPF_FUNC_get_current_comm, 1u << 1 },
		{ BPF_FUNC_probe_write_user, 1u << 1 },
		{ BPF_FUNC_probe_read_str, 1u << 1 },
		{ BPF_FUNC_strtol, 1u << 4 },
		{ BPF_FUNC_strtoul, 1u << 4 },
		{ BPF_FUNC_probe_read_kernel_str, 1u << 1 },
		{ BPF_FUNC_snprintf, 1u << 1 },
		{ BPF_FUNC_get_func_ip, 0 },
		{ BPF_FUNC_get_attach_cookie, 0 },
		{ BPF_FUNC_loop, 1u << 3 },
		// Nobody provides bpf_get_current_task here: all five.
		{ 35, ALL_ARGS_WRITTEN },
	};
	for (const row &r : rows)
		check(handlers::helper_written_args(r.id) == r.written,
		      "helper_written_args(" + std::to_string(r.id) + ")");
}

void test_names()
{
	check(handlers::helper_name(BPF_FUNC_map_lookup_elem) == "map_lookup_elem" &&
		      handlers::helper_name(35) == "get_current_task" &&
		      handlers::helper_name(100000).empty(),
	      "helper names: the prototype's, else the kernel's");
	check(handlers::helper_from_name("bpf_loop") == BPF_FUNC_loop &&
		      handlers::helper_from_name("mine") == 301u,
	      "helper ids by name");
	for (const helper_proto &p : handlers::available_helpers())
		check(p.ret != RET_UNSPEC && p.fn &&
			      (p.id > BPF_FUNC_cgrp_storage_delete ||
			       kernel_helper_name(p.id) == p.name),
		      "helper #" + std::to_string(p.id) + " '" +
			      std::string(p.name) +
			      "' has kinds, a function and its kernel name");
}

void test_arg_check_message()
{
	// r1 = 0; r2 = r10; r2 += -8; call 1; exit
	const std::vector<insn> prog = {
		I(BPF_ALU64 | BPF_MOV | BPF_K, 1, 0, 0, 0),
		I(BPF_ALU64 | BPF_MOV | BPF_X, 2, 10, 0, 0),
		I(BPF_ALU64 | BPF_ADD | BPF_K, 2, 0, 0, -8),
		I(BPF_JMP | BPF_CALL, 0, 0, 0, 1),
		I(BPF_JMP | BPF_EXIT, 0, 0, 0, 0),
	};
	// The type discipline (BPFTIME_VERIFIER unset: strict) in the
	// kernel's words; the argument pass alone serves the verifier off.
	auto st = handlers::check_program_types(prog, "prog 'p' (id 4)",
						2 /* BPF_PROG_TYPE_KPROBE */, {});
	check(!st && st.error().code == EINVAL &&
		      st.error().message.starts_with(
			      "prog 'p' (id 4): insn 3: R1 type=scalar "
			      "expected=map_ptr"),
	      "a wrong argument kind names the program, the pc and the "
	      "argument: " +
		      (st ? std::string("accepted") : st.error().message));
}

} // namespace

int main()
{
	test_registration();
	test_written_args();
	test_names();
	test_arg_check_message();
	std::printf("%d passed, %d failed\n", g_passed, g_failed);
	return g_failed ? 1 : 0;
}
