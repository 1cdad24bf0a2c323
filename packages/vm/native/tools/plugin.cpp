// bpftime-vm-plugin: runs one program for a BPF conformance runner
// (bpf_conformance's bpf_conformance_runner --plugin_path ...).
//
//   echo "b7 00 00 00 2a 00 00 00 95 00 00 00 00 00 00 00" |
//       bpftime-vm-plugin ["<memory hex>"] [--interpret | --jit | --llvm | --aot]
//
// Protocol, as bpf_conformance's runner drives it (src/bpf_conformance.cc):
//   - stdin: the program's instruction bytes as hex, bytes separated by
//     whitespace (a run of hex digits is also read two digits per byte),
//     until EOF;
//   - argv[1], optional: the initial memory in the same form. The program
//     runs on a private copy: r1 = its address, r2 = its length; without
//     memory r1 = r2 = 0. Older runners pass an empty argv[1] and their
//     options as one argument: empty arguments are skipped and options are
//     split on whitespace;
//   - options: --interpret (default), --jit or --llvm choose the backend;
//     --aot compiles the program ahead of time with LLVM to an ELF object,
//     then loads that object into a second vm and runs it there;
//   - success: exit 0, r0 in hex on stdout ("0x2a"); the runner parses it
//     with std::stoull(s, nullptr, 16), which takes the 0x prefix;
//   - failure to parse, load, verify or run: exit 1, the reason on stderr
//     (the runner compares it with a test's "-- error" when stdout is empty).
// Helper 5 returns its first argument (the conformance tests' "call 5").
#include <cstdlib>
#include <bpftime/common/hex.hpp>
#include <bpftime/vm/vm.hpp>

#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <iterator>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

namespace {

using bpftime::hex_digit;

// Whitespace-separated hex bytes; a token of more than two digits is read as
// consecutive bytes ("b7000000" = b7 00 00 00), an optional 0x prefix is
// skipped.
std::optional<std::vector<uint8_t>> decode_hex(const std::string &text,
					       const char *what)
{
	std::vector<uint8_t> out;
	std::istringstream in(text);
	std::string tok;
	while (in >> tok) {
		std::string_view t = tok;
		if (t.size() > 2 && (t.starts_with("0x") || t.starts_with("0X")))
			t.remove_prefix(2);
		if (t.size() > 2 && t.size() % 2 != 0) {
			std::cerr << what << ": odd number of hex digits in '"
				  << tok << "'\n";
			return std::nullopt;
		}
		for (size_t i = 0; i < t.size(); i += 2) {
			const int hi = hex_digit(t[i]);
			const int lo = i + 1 < t.size() ? hex_digit(t[i + 1]) : 0;
			if (hi < 0 || lo < 0) {
				std::cerr << what << ": '" << tok
					  << "' is not a hex byte\n";
				return std::nullopt;
			}
			out.push_back(static_cast<uint8_t>(
				i + 1 < t.size() ? hi * 16 + lo : hi));
		}
	}
	return out;
}

uint64_t identity(uint64_t a, uint64_t, uint64_t, uint64_t, uint64_t)
{
	return a;
}

} // namespace

int main(int argc, char **argv)
{
	std::optional<std::string> memory_text;
	bpftime::vm::backend backend = bpftime::vm::backend::interpreter;
	bool aot = false;
	bool first = true;
	for (int a = 1; a < argc; a++) {
		const std::string arg = argv[a];
		if (arg.find_first_not_of(" \t\r\n") == std::string::npos)
			continue;
		if (first && !arg.starts_with("--")) {
			memory_text = arg;
			first = false;
			continue;
		}
		first = false;
		std::istringstream opts(arg);
		std::string opt;
		while (opts >> opt) {
			if (opt == "--jit") {
				backend = bpftime::vm::backend::jit_x64;
			} else if (opt == "--llvm") {
				backend = bpftime::vm::backend::llvm;
			} else if (opt == "--aot") {
				aot = true;
			} else if (opt == "--interpret") {
				backend = bpftime::vm::backend::interpreter;
			} else {
				std::cerr << "bpftime-vm-plugin: unknown option '"
					  << opt
					  << "' (expected --interpret, --jit, --llvm or --aot; "
					     "ELF input is not supported)\n";
				return 1;
			}
		}
	}

	const std::string program_text{ std::istreambuf_iterator<char>(std::cin),
					std::istreambuf_iterator<char>() };
	auto code = decode_hex(program_text, "program");
	if (!code)
		return 1;
	std::vector<uint8_t> memory;
	if (memory_text) {
		auto m = decode_hex(*memory_text, "memory");
		if (!m)
			return 1;
		memory = std::move(*m);
	}

	// The program's context is the memory given: its size bounds what the
	// verifier lets r1 reach.
	auto mode = bpftime::vm::parse_verifier_mode(getenv("BPFTIME_VERIFIER"));
	if (!mode) {
		std::cerr << mode.error().message << "\n";
		return 1;
	}
	if (!*mode)
		std::cerr << "bpftime-vm-plugin: BPFTIME_VERIFIER=off: the "
			     "verifier's type discipline is OFF; programs are "
			     "not proven memory-safe\n";
	bpftime::vm::vm_options vo;
	vo.type_check = *mode;
	vo.ctx_size = uint32_t(memory.size());
	bpftime::vm::vm v(backend, vo);
	const bpftime::vm::helper_proto identity_proto{
		.id = 5,
		.name = "identity",
		.ret = bpftime::vm::RET_INTEGER,
		.args = { bpftime::vm::ARG_ANYTHING },
		.fn = identity
	};
	if (auto st = v.register_helper(identity_proto); !st) {
		std::cerr << st.error().message << "\n";
		return 1;
	}
	if (aot) {
		if (code->size() % sizeof(bpftime::vm::insn) != 0) {
			std::cerr << "load: program size is not a multiple of 8 bytes\n";
			return 1;
		}
		std::vector<bpftime::vm::insn> insns(code->size() / sizeof(bpftime::vm::insn));
		std::memcpy(insns.data(), code->data(), code->size());
		auto obj = v.compile_aot(insns);
		if (!obj) {
			std::cerr << "aot: " << obj.error().message << "\n";
			return 1;
		}
		// The object runs in a vm of its own, as in a process that
		// only loads it.
		v = bpftime::vm::vm(bpftime::vm::backend::interpreter, vo);
		if (auto st = v.register_helper(identity_proto); !st) {
			std::cerr << st.error().message << "\n";
			return 1;
		}
		if (auto st = v.load_aot(*obj); !st) {
			std::cerr << "load: " << st.error().message << "\n";
			return 1;
		}
	} else if (auto st = v.load(code->data(), code->size()); !st) {
		std::cerr << "load: " << st.error().message << "\n";
		return 1;
	}
	auto r = v.exec(memory.empty() ? nullptr : memory.data(), memory.size());
	if (!r) {
		std::cerr << "exec: " << r.error().message << "\n";
		return 1;
	}
	std::printf("0x%" PRIx64 "\n", *r);
	return 0;
}
