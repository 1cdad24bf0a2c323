// jit_x64_test.cpp: native test of the x86-64 JIT (src/jit_x64/).
//
//   jit_x64_test            run every check; exit 1 if any failed
//   jit_x64_test --bench    also time compute loops against native code
//   jit_x64_test --full     the LLVM backend on all 3000 random programs
//
// The LLVM backend (src/llvm/) runs every table and the C programs too,
// with and without bounds checks, where its plugin is built.
//
// It builds detail::program structs directly (backend.hpp) and runs them on
// every JIT variant: with and without BMI2 shifts, with and without bounds
// checks. Expected values are written from RFC 9669, never taken from the
// JIT's output; each table row is a sentence naming the behaviour. The
// interpreter runs the same rows as a second opinion, and a generator of
// random programs compares the two backends. C programs are compiled with
// clang-19 -target bpf -mcpu=v4 and with gcc, and must agree; that part
// skips, saying why, when the compilers are missing.
//
// Build (include dirs: vm/native/include, vm/native/src,
// common/native/include): this file + src/jit_x64/*.cpp + src/vm.cpp +
// src/verifier/*.cpp + src/interpreter/*.cpp, linked with -ldl -pthread.
#include "backend.hpp"
#include "jit_x64/jit_x64.hpp"

#include <bpftime/vm/insn.hpp>
#include <bpftime/vm/verifier.hpp>
#include <bpftime/vm/vm.hpp>

#include <dlfcn.h>
#include <elf.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cinttypes>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#ifndef R_BPF_64_32
#define R_BPF_64_32 10
#endif

namespace {

using namespace bpftime::vm;
using bpftime::result;
using detail::executor;
using detail::program;
using code = std::vector<insn>;
using runner_fn = bpftime::vm::runner;

// ---------------------------------------------------------------- checks

// --full: the LLVM variants run all 3000 differential programs, not 300.
bool g_full_differential = false;

int g_checks = 0;
int g_failures = 0;

[[gnu::format(printf, 2, 3)]] void check(bool ok, const char *fmt, ...)
{
	g_checks++;
	if (ok)
		return;
	g_failures++;
	std::va_list ap;
	va_start(ap, fmt);
	std::fputs("FAIL: ", stderr);
	std::vfprintf(stderr, fmt, ap);
	std::fputc('\n', stderr);
	va_end(ap);
}

// ------------------------------------------------------ instruction builders

insn raw(uint8_t op, uint8_t dst, uint8_t src, int16_t off, int32_t imm)
{
	return insn{ op, dst, src, off, imm };
}

code alu64_imm(uint8_t op, uint8_t dst, int32_t imm, int16_t off = 0)
{
	return { raw(BPF_ALU64 | op | BPF_K, dst, 0, off, imm) };
}
code alu64_reg(uint8_t op, uint8_t dst, uint8_t src, int16_t off = 0)
{
	return { raw(BPF_ALU64 | op | BPF_X, dst, src, off, 0) };
}
code alu32_imm(uint8_t op, uint8_t dst, int32_t imm, int16_t off = 0)
{
	return { raw(BPF_ALU | op | BPF_K, dst, 0, off, imm) };
}
code alu32_reg(uint8_t op, uint8_t dst, uint8_t src, int16_t off = 0)
{
	return { raw(BPF_ALU | op | BPF_X, dst, src, off, 0) };
}
code mov64_imm(uint8_t dst, int32_t imm)
{
	return alu64_imm(BPF_MOV, dst, imm);
}
code mov64_reg(uint8_t dst, uint8_t src)
{
	return alu64_reg(BPF_MOV, dst, src);
}
code mov32_imm(uint8_t dst, int32_t imm)
{
	return alu32_imm(BPF_MOV, dst, imm);
}
code mov32_reg(uint8_t dst, uint8_t src)
{
	return alu32_reg(BPF_MOV, dst, src);
}
code movsx64(uint8_t dst, uint8_t src, int16_t bits)
{
	return alu64_reg(BPF_MOV, dst, src, bits);
}
code movsx32(uint8_t dst, uint8_t src, int16_t bits)
{
	return alu32_reg(BPF_MOV, dst, src, bits);
}
code neg64(uint8_t dst)
{
	return { raw(BPF_ALU64 | BPF_NEG, dst, 0, 0, 0) };
}
code neg32(uint8_t dst)
{
	return { raw(BPF_ALU | BPF_NEG, dst, 0, 0, 0) };
}
code le(uint8_t dst, int32_t bits)
{
	return { raw(BPF_ALU | BPF_END | BPF_TO_LE, dst, 0, 0, bits) };
}
code be(uint8_t dst, int32_t bits)
{
	return { raw(BPF_ALU | BPF_END | BPF_TO_BE, dst, 0, 0, bits) };
}
code bswap(uint8_t dst, int32_t bits)
{
	return { raw(BPF_ALU64 | BPF_END | BPF_TO_LE, dst, 0, 0, bits) };
}
code lddw(uint8_t dst, uint64_t v)
{
	return { raw(BPF_LD | BPF_IMM | BPF_DW, dst, 0, 0,
		     static_cast<int32_t>(static_cast<uint32_t>(v))),
		 raw(0, 0, 0, 0, static_cast<int32_t>(static_cast<uint32_t>(v >> 32))) };
}
code ldx(uint8_t size, uint8_t dst, uint8_t src, int16_t off)
{
	return { raw(BPF_LDX | size | BPF_MEM, dst, src, off, 0) };
}
code ldxs(uint8_t size, uint8_t dst, uint8_t src, int16_t off)
{
	return { raw(BPF_LDX | size | BPF_MEMSX, dst, src, off, 0) };
}
code st(uint8_t size, uint8_t dst, int16_t off, int32_t imm)
{
	return { raw(BPF_ST | size | BPF_MEM, dst, 0, off, imm) };
}
code stx(uint8_t size, uint8_t dst, uint8_t src, int16_t off)
{
	return { raw(BPF_STX | size | BPF_MEM, dst, src, off, 0) };
}
code atomic(uint8_t size, int32_t op, uint8_t dst, uint8_t src, int16_t off)
{
	return { raw(BPF_STX | size | BPF_ATOMIC, dst, src, off, op) };
}
code jmp_imm(uint8_t op, uint8_t dst, int32_t imm, int16_t off)
{
	return { raw(BPF_JMP | op | BPF_K, dst, 0, off, imm) };
}
code jmp_reg(uint8_t op, uint8_t dst, uint8_t src, int16_t off)
{
	return { raw(BPF_JMP | op | BPF_X, dst, src, off, 0) };
}
code jmp32_imm(uint8_t op, uint8_t dst, int32_t imm, int16_t off)
{
	return { raw(BPF_JMP32 | op | BPF_K, dst, 0, off, imm) };
}
code jmp32_reg(uint8_t op, uint8_t dst, uint8_t src, int16_t off)
{
	return { raw(BPF_JMP32 | op | BPF_X, dst, src, off, 0) };
}
code ja(int16_t off)
{
	return { raw(BPF_JMP | BPF_JA, 0, 0, off, 0) };
}
code gotol(int32_t imm)
{
	return { raw(BPF_JMP32 | BPF_JA, 0, 0, 0, imm) };
}
code call_helper(int32_t id)
{
	return { raw(BPF_JMP | BPF_CALL, 0, BPF_HELPER_CALL, 0, id) };
}
code call_local(int32_t rel)
{
	return { raw(BPF_JMP | BPF_CALL, 0, BPF_PSEUDO_CALL, 0, rel) };
}
code call_kfunc(int32_t btf_id)
{
	return { raw(BPF_JMP | BPF_CALL, 0, BPF_PSEUDO_KFUNC_CALL, 0, btf_id) };
}
code callx(uint8_t reg)
{
	return { raw(BPF_JMP | BPF_CALL | BPF_X, reg, 0, 0, 0) };
}
code exit_insn()
{
	return { raw(BPF_JMP | BPF_EXIT, 0, 0, 0, 0) };
}

template <class... Parts> code P(const Parts &...parts)
{
	code out;
	(out.insert(out.end(), parts.begin(), parts.end()), ...);
	return out;
}

code repeat(size_t n, const code &c)
{
	code out;
	for (size_t i = 0; i < n; i++)
		out.insert(out.end(), c.begin(), c.end());
	return out;
}

// ------------------------------------------------------------- helpers

uint64_t weighted_sum(uint64_t a, uint64_t b, uint64_t c, uint64_t d, uint64_t e)
{
	return a + 2 * b + 3 * c + 4 * d + 5 * e;
}

uint64_t product(uint64_t a, uint64_t b, uint64_t, uint64_t, uint64_t)
{
	return a * b;
}

// bpf_loop-like: runs callback(i, ctx) for i < n until it returns non-zero.
uint64_t loop_helper(uint64_t n, uint64_t cb, uint64_t ctx, uint64_t, uint64_t)
{
	uint64_t i = 0;
	for (; i < n; i++)
		if (invoke_callback(cb, i, ctx, 0, 0, 0))
			return i + 1;
	return i;
}

// The stack pointer of its caller at the call, mod 16: 0 when the caller
// kept the System V alignment. Naked, so no prologue of its own moves rsp.
[[gnu::naked]] uint64_t caller_rsp_mod16(uint64_t, uint64_t, uint64_t, uint64_t, uint64_t)
{
	asm("lea 8(%rsp), %rax\n\tand $15, %eax\n\tret");
}

constexpr uint32_t HELPER_SUM = 1;
constexpr uint32_t HELPER_PRODUCT = 2;
constexpr uint32_t HELPER_RSP_MOD16 = 4;
constexpr uint32_t HELPER_LOOP = 100;
constexpr uint32_t KFUNC_PRODUCT = 1000;

std::vector<detail::helper_entry> test_helpers()
{
	std::vector<detail::helper_entry> h(8);
	h[HELPER_SUM] = { weighted_sum, "weighted_sum" };
	h[HELPER_PRODUCT] = { product, "product" };
	h[HELPER_RSP_MOD16] = { caller_rsp_mod16, "caller_rsp_mod16" };
	return h;
}

// ------------------------------------------------------------- runners

struct variant {
	std::string name;
	bool jit;
	jit_x64::features feat;
	bool bounds;
	// The LLVM backend (src/llvm/), where its plugin is built.
	bool llvm = false;
};

std::vector<variant> g_variants;

void init_variants()
{
	const jit_x64::features cpu = jit_x64::detect_features();
	for (bool bounds : { false, true }) {
		if (cpu.bmi2)
			g_variants.push_back({ bounds ? "jit+bmi2+bounds" : "jit+bmi2",
					       true, { true }, bounds });
		g_variants.push_back({ bounds ? "jit+bounds" : "jit", true,
				       { false }, bounds });
	}
	if (!cpu.bmi2)
		std::printf("note: this CPU has no BMI2; the shlx/shrx/sarx "
			    "encodings are not executed\n");
	if (auto st = backend_available(backend::llvm); st) {
		g_variants.push_back({ "llvm", false, {}, false, true });
		g_variants.push_back({ "llvm+bounds", false, {}, true, true });
	} else {
		std::printf("note: the llvm backend is not built here: %s\n",
			    st.error().message.c_str());
	}
}

// A compiled program: the program must outlive its executor.
struct runner {
	program prog;
	std::unique_ptr<executor> ex;
};

// A test helper's prototype: five plain numbers in, one out.
helper_proto any_args_proto(uint32_t id, std::string_view name, helper_fn fn)
{
	return { .id = id, .name = name, .ret = RET_INTEGER,
		 .args = { ARG_ANYTHING, ARG_ANYTHING, ARG_ANYTHING,
			   ARG_ANYTHING, ARG_ANYTHING },
		 .fn = fn };
}

using prog_setup = std::function<void(program &)>;

result<std::unique_ptr<runner>> build(const code &c, const variant &v,
				      const prog_setup &setup = {})
{
	auto r = std::make_unique<runner>();
	r->prog.insns = c;
	r->prog.helpers = test_helpers();
	r->prog.kfuncs[KFUNC_PRODUCT] = { product, "product" };
	r->prog.function_starts = { 0 };
	r->prog.options.bounds_check = v.bounds;
	// As vm::load would run it: strict where the strict verifier accepts
	// the program, so a case that reads r6-r9 unwritten gets the zeroed
	// registers of the non-strict mode.
	verify_options vo;
	vo.helper_proto_of = [](uint32_t id) -> std::optional<helper_proto> {
		return any_args_proto(id, "any", nullptr);
	};
	vo.kfunc_known = [](uint32_t) { return true; };
	vo.types = false;
	r->prog.options.strict_verifier = verify(c, vo).ok();
	if (setup)
		setup(r->prog);
	auto ex = v.llvm ? detail::make_llvm(r->prog) :
		  v.jit	 ? jit_x64::compile(r->prog, v.feat) :
			   detail::make_interpreter(r->prog);
	if (!ex)
		return std::move(ex).error();
	r->ex = std::move(*ex);
	return r;
}

result<uint64_t> run_once(const code &c, const variant &v, void *ctx,
			  uint64_t len, const prog_setup &setup = {})
{
	auto r = build(c, v, setup);
	if (!r)
		return std::move(r).error();
	return (*r)->ex->run(ctx, len);
}

const variant g_interp{ "interpreter", false, {}, false };

std::string hex(uint64_t v)
{
	char b[32];
	std::snprintf(b, sizeof b, "0x%" PRIx64, v);
	return b;
}

// ------------------------------------------------------------ ALU table

struct value_case {
	const char *name;
	code prog;
	uint64_t expect;
};

constexpr uint64_t ALL = ~0ull;
constexpr uint64_t I64MIN = 0x8000000000000000ull;
constexpr int32_t I32MIN = INT32_MIN;

std::vector<value_case> alu_cases()
{
	const uint8_t R0 = 0, R1 = 1, R2 = 2, R3 = 3, R4 = 4, R6 = 6, R9 = 9;
	const code X = exit_insn();
	return {
		{ "add64 imm wraps at 2^64", P(lddw(R0, ALL), alu64_imm(BPF_ADD, R0, 1), X), 0 },
		{ "add64 imm is sign-extended", P(mov64_imm(R0, 5), alu64_imm(BPF_ADD, R0, -7), X), 0xfffffffffffffffe },
		{ "add32 wraps and clears the upper half", P(lddw(R0, ALL), alu32_imm(BPF_ADD, R0, 1), X), 0 },
		{ "add32 reg ignores the upper halves", P(lddw(R0, 0x100000005), lddw(R1, 0x200000001), alu32_reg(BPF_ADD, R0, R1), X), 6 },
		{ "sub64 reg below zero", P(mov64_imm(R0, 3), mov64_imm(R1, 5), alu64_reg(BPF_SUB, R0, R1), X), 0xfffffffffffffffe },
		{ "sub32 reg below zero is zero-extended", P(mov64_imm(R0, 3), mov64_imm(R1, 5), alu32_reg(BPF_SUB, R0, R1), X), 0xfffffffe },
		{ "sub64 imm INT32_MIN adds 2^31", P(mov64_imm(R0, 0), alu64_imm(BPF_SUB, R0, I32MIN), X), 0x80000000 },
		{ "mul64 of two 32-bit maxima", P(lddw(R0, 0xffffffff), lddw(R1, 0xffffffff), alu64_reg(BPF_MUL, R0, R1), X), 0xfffffffe00000001 },
		{ "mul32 keeps the low half", P(lddw(R0, 0xffffffff), lddw(R1, 0xffffffff), alu32_reg(BPF_MUL, R0, R1), X), 1 },
		{ "mul64 imm negative", P(mov64_imm(R0, 3), alu64_imm(BPF_MUL, R0, -2), X), 0xfffffffffffffffa },
		{ "mul32 imm overflows to zero", P(mov64_imm(R0, 0x10000), alu32_imm(BPF_MUL, R0, 0x10000), X), 0 },
		{ "mul64 imm large", P(mov64_imm(R0, 3), alu64_imm(BPF_MUL, R0, 0x40000000), X), 0xc0000000 },
		{ "div64 reg is unsigned", P(lddw(R0, ALL), mov64_imm(R1, 2), alu64_reg(BPF_DIV, R0, R1), X), 0x7fffffffffffffff },
		{ "div64 imm -1 divides by 2^64-1", P(lddw(R0, ALL), alu64_imm(BPF_DIV, R0, -1), X), 1 },
		{ "div64 imm -1 of a smaller value is 0", P(lddw(R0, 0xfffffffffffffffe), alu64_imm(BPF_DIV, R0, -1), X), 0 },
		{ "div32 by a power of two uses the low half", P(lddw(R0, 0x100000010), alu32_imm(BPF_DIV, R0, 4), X), 4 },
		{ "div32 imm uses the low half", P(lddw(R0, 0x1000000064), alu32_imm(BPF_DIV, R0, 7), X), 14 },
		{ "div64 imm", P(mov64_imm(R0, 1000), alu64_imm(BPF_DIV, R0, 7), X), 142 },
		{ "div64 by a zero register gives 0", P(mov64_imm(R0, 7), mov64_imm(R1, 0), alu64_reg(BPF_DIV, R0, R1), X), 0 },
		{ "div32 by a register with a zero low half gives 0", P(mov64_imm(R0, 7), lddw(R1, 0x100000000), alu32_reg(BPF_DIV, R0, R1), X), 0 },
		{ "div64 by zero imm gives 0", P(mov64_imm(R0, 7), alu64_imm(BPF_DIV, R0, 0), X), 0 },
		{ "mod64 by a zero register leaves dst", P(lddw(R0, 0x123456789), mov64_imm(R1, 0), alu64_reg(BPF_MOD, R0, R1), X), 0x123456789 },
		{ "mod32 by a zero register zero-extends dst", P(lddw(R0, 0x100000007), mov64_imm(R1, 0), alu32_reg(BPF_MOD, R0, R1), X), 7 },
		{ "mod32 by zero imm zero-extends dst", P(lddw(R0, 0x100000007), alu32_imm(BPF_MOD, R0, 0), X), 7 },
		{ "mod64 reg", P(mov64_imm(R0, 100), mov64_imm(R1, 7), alu64_reg(BPF_MOD, R0, R1), X), 2 },
		{ "mod32 reg uses the low halves", P(lddw(R0, 0x500000064), lddw(R1, 0x300000007), alu32_reg(BPF_MOD, R0, R1), X), 2 },
		{ "mod64 by a power of two", P(mov64_imm(R0, 100), alu64_imm(BPF_MOD, R0, 8), X), 4 },
		{ "mod64 by 1 is 0", P(mov64_imm(R0, 100), alu64_imm(BPF_MOD, R0, 1), X), 0 },
		{ "div32 by 1 zero-extends", P(lddw(R0, 0x1ffffffff), alu32_imm(BPF_DIV, R0, 1), X), 0xffffffff },
		{ "div32 imm INT32_MIN divides by 2^31", P(lddw(R0, 0xffffffff), alu32_imm(BPF_DIV, R0, I32MIN), X), 1 },
		{ "mod32 imm INT32_MIN keeps 31 bits", P(lddw(R0, 0xffffffff), alu32_imm(BPF_MOD, R0, I32MIN), X), 0x7fffffff },
		{ "div64 imm INT32_MIN divides by 0xffffffff80000000", P(lddw(R0, ALL), alu64_imm(BPF_DIV, R0, I32MIN), X), 1 },
		{ "mod64 imm INT32_MIN", P(lddw(R0, ALL), alu64_imm(BPF_MOD, R0, I32MIN), X), 0x7fffffff },
		{ "sdiv64 rounds toward zero", P(mov64_imm(R0, -7), mov64_imm(R1, 2), alu64_reg(BPF_DIV, R0, R1, 1), X), 0xfffffffffffffffd },
		{ "sdiv64 INT64_MIN by a -1 register is INT64_MIN", P(lddw(R0, I64MIN), mov64_imm(R1, -1), alu64_reg(BPF_DIV, R0, R1, 1), X), I64MIN },
		{ "sdiv64 INT64_MIN by imm -1 is INT64_MIN", P(lddw(R0, I64MIN), alu64_imm(BPF_DIV, R0, -1, 1), X), I64MIN },
		{ "smod64 INT64_MIN by a -1 register is 0", P(lddw(R0, I64MIN), mov64_imm(R1, -1), alu64_reg(BPF_MOD, R0, R1, 1), X), 0 },
		{ "smod64 INT64_MIN by imm -1 is 0", P(lddw(R0, I64MIN), alu64_imm(BPF_MOD, R0, -1, 1), X), 0 },
		{ "sdiv32 INT32_MIN by a -1 register is INT32_MIN", P(mov32_imm(R0, I32MIN), mov64_imm(R1, -1), alu32_reg(BPF_DIV, R0, R1, 1), X), 0x80000000 },
		{ "smod32 INT32_MIN by a -1 register is 0", P(mov32_imm(R0, I32MIN), mov64_imm(R1, -1), alu32_reg(BPF_MOD, R0, R1, 1), X), 0 },
		{ "sdiv32 rounds toward zero and zero-extends", P(mov64_imm(R0, -7), alu32_imm(BPF_DIV, R0, 2, 1), X), 0xfffffffd },
		{ "smod64 takes the sign of the dividend", P(mov64_imm(R0, -7), mov64_imm(R1, 2), alu64_reg(BPF_MOD, R0, R1, 1), X), ALL },
		{ "smod64 of a positive dividend by a negative imm", P(mov64_imm(R0, 7), alu64_imm(BPF_MOD, R0, -2, 1), X), 1 },
		{ "smod32 of a negative dividend", P(mov64_imm(R0, -7), alu32_imm(BPF_MOD, R0, 2, 1), X), 0xffffffff },
		{ "sdiv64 by a zero register gives 0", P(mov64_imm(R0, -7), mov64_imm(R1, 0), alu64_reg(BPF_DIV, R0, R1, 1), X), 0 },
		{ "smod64 by a zero register leaves dst", P(mov64_imm(R0, -7), mov64_imm(R1, 0), alu64_reg(BPF_MOD, R0, R1, 1), X), 0xfffffffffffffff9 },
		{ "smod32 by a zero register zero-extends dst", P(mov64_imm(R0, -7), mov64_imm(R1, 0), alu32_reg(BPF_MOD, R0, R1, 1), X), 0xfffffff9 },
		{ "sdiv64 by a negative imm", P(mov64_imm(R0, 100), alu64_imm(BPF_DIV, R0, -7, 1), X), 0xfffffffffffffff2 },
		{ "div into r3 by r0 keeps r0", P(mov64_imm(R0, 7), mov64_imm(R3, 100), alu64_reg(BPF_DIV, R3, R0), alu64_imm(BPF_MUL, R0, 1000), alu64_reg(BPF_ADD, R0, R3), X), 7014 },
		{ "mod into r1 keeps r0 and r3", P(mov64_imm(R0, 5), mov64_imm(R3, 9), mov64_imm(R1, 100), mov64_imm(R2, 7), alu64_reg(BPF_MOD, R1, R2), alu64_imm(BPF_MUL, R0, 100), alu64_imm(BPF_MUL, R3, 10), alu64_reg(BPF_ADD, R0, R3), alu64_reg(BPF_ADD, R0, R1), X), 592 },
		{ "div into r0 by r3 keeps r3", P(mov64_imm(R0, 100), mov64_imm(R3, 7), alu64_reg(BPF_DIV, R0, R3), alu64_imm(BPF_MUL, R0, 10), alu64_reg(BPF_ADD, R0, R3), X), 147 },
		{ "mod32 of r3 by itself is 0", P(mov64_imm(R3, 9), mov64_imm(R0, 4), alu32_reg(BPF_MOD, R3, R3), alu64_imm(BPF_MUL, R0, 10), alu64_reg(BPF_ADD, R0, R3), X), 40 },
		{ "sdiv of r0 by itself is 1", P(mov64_imm(R0, -5), alu64_reg(BPF_DIV, R0, R0, 1), X), 1 },
		{ "division by zero keeps r0 and r3", P(mov64_imm(R0, 3), mov64_imm(R3, 4), mov64_imm(R1, 9), mov64_imm(R2, 0), alu64_reg(BPF_DIV, R1, R2), alu64_imm(BPF_MUL, R0, 100), alu64_imm(BPF_MUL, R3, 10), alu64_reg(BPF_ADD, R0, R3), alu64_reg(BPF_ADD, R0, R1), X), 340 },
		{ "mod64 by imm into r3 keeps r0", P(mov64_imm(R0, 1), mov64_imm(R3, 100), alu64_imm(BPF_MOD, R3, 7), alu64_imm(BPF_MUL, R0, 10), alu64_reg(BPF_ADD, R0, R3), X), 12 },
		{ "or64 imm sign-extends", P(mov64_imm(R0, 0), alu64_imm(BPF_OR, R0, -2), X), 0xfffffffffffffffe },
		{ "or32 imm", P(mov64_imm(R0, 0), alu32_imm(BPF_OR, R0, -2), X), 0xfffffffe },
		{ "and32 clears the upper half", P(lddw(R0, ALL), alu32_imm(BPF_AND, R0, 0xf0), X), 0xf0 },
		{ "and64 imm -1 keeps every bit", P(lddw(R0, 0x123456789abcdef0), alu64_imm(BPF_AND, R0, -1), X), 0x123456789abcdef0 },
		{ "and64 positive imm clears the upper half", P(lddw(R0, ALL), alu64_imm(BPF_AND, R0, 0x7fffffff), X), 0x7fffffff },
		{ "xor64 reg", P(lddw(R0, 0xf0f0f0f0f0f0f0f0), lddw(R1, 0xffffffff00000000), alu64_reg(BPF_XOR, R0, R1), X), 0x0f0f0f0ff0f0f0f0 },
		{ "xor32 of a register with itself is 0", P(lddw(R0, ALL), alu32_reg(BPF_XOR, R0, R0), X), 0 },
		{ "xor64 imm -1 inverts", P(mov64_imm(R0, 0), alu64_imm(BPF_XOR, R0, -1), X), ALL },
		{ "lsh64 imm 63", P(mov64_imm(R0, 1), alu64_imm(BPF_LSH, R0, 63), X), I64MIN },
		{ "lsh32 imm 31", P(mov64_imm(R0, 3), alu32_imm(BPF_LSH, R0, 31), X), 0x80000000 },
		{ "lsh32 imm 0 clears the upper half", P(lddw(R0, 0x100000001), alu32_imm(BPF_LSH, R0, 0), X), 1 },
		{ "rsh64 imm 0 keeps the value", P(lddw(R0, 0x100000001), alu64_imm(BPF_RSH, R0, 0), X), 0x100000001 },
		{ "rsh32 ignores the upper half", P(lddw(R0, 0xffffffff80000000), alu32_imm(BPF_RSH, R0, 31), X), 1 },
		{ "arsh64 imm fills with the sign", P(lddw(R0, I64MIN), alu64_imm(BPF_ARSH, R0, 63), X), ALL },
		{ "arsh32 fills with bit 31 and zero-extends", P(mov32_imm(R0, I32MIN), alu32_imm(BPF_ARSH, R0, 31), X), 0xffffffff },
		{ "arsh32 looks only at the low half", P(lddw(R0, 0xffffffff40000000), alu32_imm(BPF_ARSH, R0, 30), X), 1 },
		{ "lsh64 reg count is masked to 6 bits", P(mov64_imm(R0, 1), mov64_imm(R1, 65), alu64_reg(BPF_LSH, R0, R1), X), 2 },
		{ "lsh32 reg count is masked to 5 bits", P(mov64_imm(R0, 1), mov64_imm(R1, 33), alu32_reg(BPF_LSH, R0, R1), X), 2 },
		{ "lsh32 reg count 32 masks to 0 and zero-extends", P(lddw(R0, 0x100000001), mov64_imm(R1, 32), alu32_reg(BPF_LSH, R0, R1), X), 1 },
		{ "rsh64 reg", P(lddw(R0, I64MIN), mov64_imm(R1, 63), alu64_reg(BPF_RSH, R0, R1), X), 1 },
		{ "rsh32 reg", P(lddw(R0, 0xffffffff80000000), mov64_imm(R1, 31), alu32_reg(BPF_RSH, R0, R1), X), 1 },
		{ "arsh64 reg", P(lddw(R0, I64MIN), mov64_imm(R1, 62), alu64_reg(BPF_ARSH, R0, R1), X), 0xfffffffffffffffe },
		{ "arsh32 reg", P(mov32_imm(R0, I32MIN), mov64_imm(R1, 4), alu32_reg(BPF_ARSH, R0, R1), X), 0xf8000000 },
		{ "lsh by a count in r4 keeps r4", P(mov64_imm(R0, 3), mov64_imm(R4, 4), alu64_reg(BPF_LSH, R0, R4), alu64_reg(BPF_ADD, R0, R4), X), 52 },
		{ "lsh of r4 by r1", P(mov64_imm(R4, 3), mov64_imm(R1, 4), alu64_reg(BPF_LSH, R4, R1), mov64_reg(R0, R4), alu64_reg(BPF_ADD, R0, R1), X), 52 },
		{ "rsh of r4 by itself", P(lddw(R4, 0x8000000000000003), alu64_reg(BPF_RSH, R4, R4), mov64_reg(R0, R4), X), 0x1000000000000000 },
		{ "arsh32 of r4 by itself", P(mov32_imm(R4, static_cast<int32_t>(0x80000004)), alu32_reg(BPF_ARSH, R4, R4), mov64_reg(R0, R4), X), 0xf8000000 },
		{ "lsh of r1 by r2 keeps r4", P(mov64_imm(R4, 77), mov64_imm(R1, 1), mov64_imm(R2, 10), alu64_reg(BPF_LSH, R1, R2), mov64_reg(R0, R1), alu64_reg(BPF_ADD, R0, R4), X), 1101 },
		{ "rsh32 of r4 by r2", P(lddw(R4, 0xffffffff00000100), mov64_imm(R2, 4), alu32_reg(BPF_RSH, R4, R2), mov64_reg(R0, R4), X), 0x10 },
		{ "arsh64 of r9 by r6", P(lddw(R9, I64MIN), mov64_imm(R6, 60), alu64_reg(BPF_ARSH, R9, R6), mov64_reg(R0, R9), X), 0xfffffffffffffff8 },
		{ "neg64", P(mov64_imm(R0, 1), neg64(R0), X), ALL },
		{ "neg32 zero-extends", P(mov64_imm(R0, 1), neg32(R0), X), 0xffffffff },
		{ "neg64 INT64_MIN is INT64_MIN", P(lddw(R0, I64MIN), neg64(R0), X), I64MIN },
		{ "neg32 ignores the upper half", P(lddw(R0, 0x100000002), neg32(R0), X), 0xfffffffe },
		{ "mov64 imm -1", P(mov64_imm(R0, -1), X), ALL },
		{ "mov32 imm -1 zero-extends", P(mov32_imm(R0, -1), X), 0xffffffff },
		{ "mov64 imm INT32_MIN sign-extends", P(mov64_imm(R0, I32MIN), X), 0xffffffff80000000 },
		{ "mov32 reg zero-extends", P(lddw(R1, ALL), mov32_reg(R0, R1), X), 0xffffffff },
		{ "mov32 of a register onto itself clears the upper half", P(lddw(R0, ALL), mov32_reg(R0, R0), X), 0xffffffff },
		{ "mov64 imm 0 overwrites", P(lddw(R0, ALL), mov64_imm(R0, 0), X), 0 },
		{ "movsx8 to 64 bits", P(mov64_imm(R1, 0x80), movsx64(R0, R1, 8), X), 0xffffffffffffff80 },
		{ "movsx8 from r2 (sil) positive", P(mov64_imm(R2, 0x17f), movsx64(R0, R2, 8), X), 0x7f },
		{ "movsx8 from r1 (dil)", P(lddw(R1, 0xffffffffffffff05), movsx64(R0, R1, 8), X), 5 },
		{ "movsx8 from r6", P(mov64_imm(R6, 0xfe), movsx64(R0, R6, 8), X), 0xfffffffffffffffe },
		{ "movsx16 to 64 bits", P(mov64_imm(R1, 0x8000), movsx64(R0, R1, 16), X), 0xffffffffffff8000 },
		{ "movsx32 to 64 bits", P(mov32_imm(R1, I32MIN), movsx64(R0, R1, 32), X), 0xffffffff80000000 },
		{ "movsx8 to 32 bits zero-extends", P(mov64_imm(R1, 0x80), movsx32(R0, R1, 8), X), 0xffffff80 },
		{ "movsx16 to 32 bits ignores the upper half", P(lddw(R1, 0x100008000), movsx32(R0, R1, 16), X), 0xffff8000 },
		{ "movsx8 to 32 bits of r9 into r9", P(lddw(R9, 0xffffffff000000ff), movsx32(R9, R9, 8), mov64_reg(R0, R9), X), 0xffffffff },
		{ "le16 truncates", P(lddw(R0, 0x1122334455667788), le(R0, 16), X), 0x7788 },
		{ "le32 truncates", P(lddw(R0, 0x1122334455667788), le(R0, 32), X), 0x55667788 },
		{ "le64 is a no-op", P(lddw(R0, 0x1122334455667788), le(R0, 64), X), 0x1122334455667788 },
		{ "be16 swaps and truncates", P(lddw(R0, 0x1122334455667788), be(R0, 16), X), 0x8877 },
		{ "be32 swaps and truncates", P(lddw(R0, 0x1122334455667788), be(R0, 32), X), 0x88776655 },
		{ "be64 swaps", P(lddw(R0, 0x1122334455667788), be(R0, 64), X), 0x8877665544332211 },
		{ "bswap16", P(lddw(R0, 0x1122334455667788), bswap(R0, 16), X), 0x8877 },
		{ "bswap32", P(lddw(R0, 0x1122334455667788), bswap(R0, 32), X), 0x88776655 },
		{ "bswap64", P(lddw(R0, 0x1122334455667788), bswap(R0, 64), X), 0x8877665544332211 },
		{ "be16 of r1", P(lddw(R1, 0x1122334455667788), be(R1, 16), mov64_reg(R0, R1), X), 0x8877 },
		{ "be16 of r9", P(lddw(R9, 0x1122334455667788), be(R9, 16), mov64_reg(R0, R9), X), 0x8877 },
		{ "bswap32 of r9", P(lddw(R9, 0x1122334455667788), bswap(R9, 32), mov64_reg(R0, R9), X), 0x88776655 },
		{ "le16 of r6", P(lddw(R6, 0x1122334455667788), le(R6, 16), mov64_reg(R0, R6), X), 0x7788 },
		{ "lddw of a full 64-bit value", P(lddw(R0, 0x123456789abcdef0), X), 0x123456789abcdef0 },
		{ "lddw of a value with bit 31 set", P(lddw(R0, 0x80000000), X), 0x80000000 },
		{ "lddw of a sign-extendable value", P(lddw(R0, 0xffffffff80000000), X), 0xffffffff80000000 },
		{ "lddw into r9", P(lddw(R9, 0xfedcba9876543210), mov64_reg(R0, R9), X), 0xfedcba9876543210 },
	};
}

void run_value_cases(const char *group, const std::vector<value_case> &cases)
{
	uint64_t ctx_buf[4] = {};
	for (const value_case &c : cases) {
		for (const variant &v : g_variants) {
			auto r = run_once(c.prog, v, ctx_buf, sizeof ctx_buf);
			check(r.ok() && *r == c.expect, "%s: %s [%s]: expected %s, got %s",
			      group, c.name, v.name.c_str(), hex(c.expect).c_str(),
			      r ? hex(*r).c_str() : r.error().message.c_str());
		}
		auto r = run_once(c.prog, g_interp, ctx_buf, sizeof ctx_buf);
		check(r.ok() && *r == c.expect,
		      "%s: %s [interpreter, second opinion]: expected %s, got %s",
		      group, c.name, hex(c.expect).c_str(),
		      r ? hex(*r).c_str() : r.error().message.c_str());
	}
}

// ------------------------------------------------------------ jump table

struct jump_case {
	uint8_t op;
	bool is32;
	uint64_t a;
	int64_t b;
	bool taken;
	bool reg_only; // b does not fit an imm32
};

std::vector<jump_case> jump_cases()
{
	const int64_t M1 = -1;
	return {
		{ BPF_JEQ, false, 5, 5, true, false },
		{ BPF_JEQ, false, 5, 6, false, false },
		{ BPF_JEQ, false, 0x100000005, 5, false, false },
		{ BPF_JNE, false, 5, 5, false, false },
		{ BPF_JNE, false, 0x100000005, 5, true, false },
		{ BPF_JGT, false, ALL, 1, true, false },
		{ BPF_JGT, false, 1, M1, false, false },
		{ BPF_JGT, false, 5, 5, false, false },
		{ BPF_JGE, false, 5, 5, true, false },
		{ BPF_JGE, false, 4, 5, false, false },
		{ BPF_JGE, false, ALL, 1, true, false },
		{ BPF_JLT, false, 1, M1, true, false },
		{ BPF_JLT, false, ALL, 1, false, false },
		{ BPF_JLT, false, 5, 5, false, false },
		{ BPF_JLE, false, 5, 5, true, false },
		{ BPF_JLE, false, 6, 5, false, false },
		{ BPF_JSGT, false, ALL, 1, false, false },
		{ BPF_JSGT, false, 1, M1, true, false },
		{ BPF_JSGT, false, 5, 5, false, false },
		{ BPF_JSGE, false, 5, 5, true, false },
		{ BPF_JSGE, false, static_cast<uint64_t>(-2), M1, false, false },
		{ BPF_JSLT, false, ALL, 1, true, false },
		{ BPF_JSLT, false, 1, M1, false, false },
		{ BPF_JSLT, false, I64MIN, 0, true, false },
		{ BPF_JSLE, false, ALL, M1, true, false },
		{ BPF_JSLE, false, 0, M1, false, false },
		{ BPF_JSET, false, 0x100000000, 1, false, false },
		{ BPF_JSET, false, 0x100000000, 0x100000000, true, true },
		{ BPF_JSET, false, 6, 2, true, false },
		{ BPF_JSET, false, 5, 2, false, false },
		{ BPF_JSET, false, 0x100000000, M1, true, false },
		{ BPF_JSET, false, 0x80, 0x80, true, false },
		{ BPF_JSET, false, 0x8000, 0x80, false, false },
		{ BPF_JSET, false, 0x1ff00, 0xff, false, false },
		{ BPF_JSET, false, 1, 0xff, true, false },
		{ BPF_JEQ, false, 0, 0, true, false },
		{ BPF_JSGT, false, 0, 0, false, false },
		{ BPF_JSLT, false, ALL, 0, true, false },
		{ BPF_JGT, false, 1, 0, true, false },
		{ BPF_JEQ, false, 0x123456789, 0x123456789, true, true },
		{ BPF_JGT, false, 0x123456789, 0x123456788, true, true },
		{ BPF_JEQ, true, 0x100000005, 5, true, false },
		{ BPF_JNE, true, 0x100000005, 5, false, false },
		{ BPF_JGT, true, 0x100000001, M1, false, false },
		{ BPF_JGT, true, 0xffffffff, 1, true, false },
		{ BPF_JGE, true, 0x200000000, 0, true, false },
		{ BPF_JLT, true, 0xffffffff00000001, 2, true, false },
		{ BPF_JLE, true, 0x100000003, 3, true, false },
		{ BPF_JLE, true, 0x100000004, 3, false, false },
		{ BPF_JSGT, true, 0x80000000, 0, false, false },
		{ BPF_JSGT, true, 0xffffffff00000001, 0, true, false },
		{ BPF_JSGE, true, 0xffffffff, M1, true, false },
		{ BPF_JSGE, true, 0xffffffff, 0, false, false },
		{ BPF_JSLT, true, 0xffffffff, 0, true, false },
		{ BPF_JSLT, true, I64MIN, 0, false, false },
		{ BPF_JSLE, true, 0x180000000, I32MIN, true, false },
		{ BPF_JSLE, true, 0x180000001, I32MIN, false, false },
		{ BPF_JSET, true, 0x100000000, 0x100000001, false, true },
		{ BPF_JSET, true, 0x100000000, M1, false, false },
		{ BPF_JSET, true, 0x80000000, I32MIN, true, false },
		{ BPF_JSET, true, 0x100, 0x100, true, false },
		{ BPF_JSET, true, 0x10000000f, 0xf0, false, false },
		{ BPF_JEQ, true, 0xabcd00000000, 0, true, false },
	};
}

const char *jump_name(uint8_t op)
{
	switch (op) {
	case BPF_JEQ: return "jeq";
	case BPF_JNE: return "jne";
	case BPF_JGT: return "jgt";
	case BPF_JGE: return "jge";
	case BPF_JLT: return "jlt";
	case BPF_JLE: return "jle";
	case BPF_JSGT: return "jsgt";
	case BPF_JSGE: return "jsge";
	case BPF_JSLT: return "jslt";
	case BPF_JSLE: return "jsle";
	default: return "jset";
	}
}

void test_jump_table()
{
	// Register pairs cover legacy and REX-extended hosts (r9 = r15,
	// r7 = r13) and r0 = rax.
	const uint8_t pairs[][2] = { { 1, 2 }, { 9, 7 }, { 0, 3 }, { 6, 8 } };
	std::vector<value_case> cases;
	std::vector<std::string> names;
	names.reserve(jump_cases().size() * 8);
	for (const jump_case &j : jump_cases()) {
		for (const auto &pr : pairs) {
			const uint8_t d = pr[0], s = pr[1];
			for (bool use_reg : { false, true }) {
				if (!use_reg && j.reg_only)
					continue;
				code cmp = use_reg ?
						   (j.is32 ? jmp32_reg(j.op, d, s, 2) :
							     jmp_reg(j.op, d, s, 2)) :
						   (j.is32 ? jmp32_imm(j.op, d, static_cast<int32_t>(j.b), 2) :
							     jmp_imm(j.op, d, static_cast<int32_t>(j.b), 2));
				code prog = P(lddw(d, j.a),
					      use_reg ? lddw(s, static_cast<uint64_t>(j.b)) : code{},
					      cmp, mov64_imm(0, 0), exit_insn(),
					      mov64_imm(0, 1), exit_insn());
				char buf[160];
				std::snprintf(buf, sizeof buf, "%s%s r%u(%s) %s %s is %s",
					      jump_name(j.op), j.is32 ? "32" : "", d,
					      hex(j.a).c_str(), use_reg ? "reg" : "imm",
					      hex(static_cast<uint64_t>(j.b)).c_str(),
					      j.taken ? "taken" : "not taken");
				names.push_back(buf);
				cases.push_back({ nullptr, prog, j.taken ? 1u : 0u });
			}
		}
	}
	for (size_t i = 0; i < cases.size(); i++)
		cases[i].name = names[i].c_str();
	run_value_cases("jump", cases);
}

// ---------------------------------------------------------- peepholes
//
// The shapes codegen.cpp rewrites (see "Peepholes" there), each with the
// value the unrewritten instructions give: the interpreter runs them too.

// `if cond goto +1; goto L`, which the JIT emits as one inverted branch,
// on every row of the jump table.
void test_branch_over_jump()
{
	std::vector<value_case> cases;
	std::vector<std::string> names;
	names.reserve(jump_cases().size() * 2);
	for (const jump_case &j : jump_cases()) {
		for (bool use_reg : { false, true }) {
			if (!use_reg && j.reg_only)
				continue;
			code cmp = use_reg ? (j.is32 ? jmp32_reg(j.op, 1, 2, 1) :
						       jmp_reg(j.op, 1, 2, 1)) :
					     (j.is32 ? jmp32_imm(j.op, 1, static_cast<int32_t>(j.b), 1) :
						       jmp_imm(j.op, 1, static_cast<int32_t>(j.b), 1));
			code prog = P(lddw(1, j.a),
				      use_reg ? lddw(2, static_cast<uint64_t>(j.b)) : code{},
				      mov64_imm(0, 0), cmp, ja(1), mov64_imm(0, 1), exit_insn());
			char buf[160];
			std::snprintf(buf, sizeof buf, "%s%s %s over a goto, %s %s: %s",
				      jump_name(j.op), j.is32 ? "32" : "",
				      use_reg ? "reg" : "imm", hex(j.a).c_str(),
				      hex(static_cast<uint64_t>(j.b)).c_str(),
				      j.taken ? "taken" : "not taken");
			names.push_back(buf);
			cases.push_back({ nullptr, prog, j.taken ? 1u : 0u });
		}
	}
	for (size_t i = 0; i < cases.size(); i++)
		cases[i].name = names[i].c_str();
	run_value_cases("branch over jump", cases);
}

std::vector<value_case> peephole_cases()
{
	const code X = exit_insn();
	// clang's byte-loop shape: `w0 = w1; w0 += w3; r2 += 1; w3 = w0`
	// with the loop closed by `if r2 == n goto +1; goto loop`.
	auto running_sum = [](code init_b, bool is64) {
		auto alu = [&](uint8_t op, uint8_t d, uint8_t s) {
			return is64 ? alu64_reg(op, d, s) : alu32_reg(op, d, s);
		};
		return P(mov64_imm(1, 0), init_b, mov64_imm(2, 0),
			 alu64_imm(BPF_ADD, 1, 1),
			 is64 ? mov64_reg(0, 1) : mov32_reg(0, 1), alu(BPF_ADD, 0, 3),
			 alu64_imm(BPF_ADD, 2, 1), is64 ? mov64_reg(3, 0) : mov32_reg(3, 0),
			 jmp_imm(BPF_JEQ, 2, 10, 1), ja(-7), exit_insn());
	};
	return {
		{ "a deferred address is computed when it is read", P(mov64_reg(2, 10), alu64_imm(BPF_ADD, 2, -16), st(BPF_DW, 2, 0, 7), st(BPF_DW, 2, 8, 9), mov64_reg(0, 2), alu64_reg(BPF_SUB, 0, 10), X), 0xfffffffffffffff0 },
		{ "stores through a deferred address land at base + index + off", P(mov64_imm(3, -16), mov64_reg(2, 10), alu64_reg(BPF_ADD, 2, 3), st(BPF_W, 2, 0, 0x11223344), st(BPF_W, 2, 4, 0x55667788), mov64_imm(2, 0), ldx(BPF_DW, 0, 10, -16), X), 0x5566778811223344 },
		{ "a store of the deferred address itself stores its value", P(mov64_reg(2, 10), alu64_imm(BPF_ADD, 2, -8), stx(BPF_DW, 2, 2, 0), ldx(BPF_DW, 0, 10, -8), alu64_reg(BPF_SUB, 0, 10), X), 0xfffffffffffffff8 },
		{ "a load into the index of a deferred address", P(mov64_imm(3, -16), st(BPF_DW, 10, -16, 5), mov64_reg(2, 10), alu64_reg(BPF_ADD, 2, 3), ldx(BPF_DW, 3, 2, 0), mov64_reg(0, 2), alu64_reg(BPF_SUB, 0, 10), alu64_reg(BPF_ADD, 0, 3), X), 0xfffffffffffffff5 },
		{ "a write to the base of a deferred address that is read later", P(mov64_reg(6, 10), mov64_reg(2, 6), alu64_imm(BPF_ADD, 2, -8), mov64_imm(6, 0), mov64_reg(0, 2), alu64_reg(BPF_SUB, 0, 10), X), 0xfffffffffffffff8 },
		{ "a deferred address reaches a jump target not taken", P(mov64_imm(0, 0), mov64_reg(2, 10), alu64_imm(BPF_ADD, 2, -8), jmp_imm(BPF_JNE, 0, 0, 1), mov64_imm(0, 1), mov64_reg(0, 2), alu64_reg(BPF_SUB, 0, 10), X), 0xfffffffffffffff8 },
		{ "a deferred address reaches a jump target taken", P(mov64_imm(0, 1), mov64_reg(2, 10), alu64_imm(BPF_ADD, 2, -8), jmp_imm(BPF_JNE, 0, 0, 1), mov64_imm(0, 1), mov64_reg(0, 2), alu64_reg(BPF_SUB, 0, 10), X), 0xfffffffffffffff8 },
		{ "a deferred copy is an argument of a helper", P(mov64_imm(6, 3), mov64_reg(1, 6), mov64_reg(2, 6), mov64_imm(3, 0), mov64_imm(4, 0), mov64_imm(5, 0), call_helper(HELPER_SUM), X), 9 },
		{ "a deferred copy survives a call in r6", P(mov64_imm(7, 4), mov64_reg(6, 7), mov64_imm(1, 1), mov64_imm(2, 0), mov64_imm(3, 0), mov64_imm(4, 0), mov64_imm(5, 0), call_helper(HELPER_SUM), alu64_reg(BPF_ADD, 0, 6), X), 5 },
		{ "a load through a deferred 64-bit copy reads base + off", P(st(BPF_DW, 10, -8, 7), mov64_reg(2, 10), ldx(BPF_DW, 0, 2, -8), X), 7 },
		{ "a store through a deferred 64-bit copy writes base + off", P(mov64_reg(2, 10), st(BPF_DW, 2, -8, 9), ldx(BPF_DW, 0, 10, -8), X), 9 },
		{ "a load through a copy into the copy's source", P(st(BPF_DW, 10, -8, 7), mov64_reg(3, 10), mov64_reg(2, 3), ldx(BPF_DW, 3, 2, -8), mov64_reg(0, 2), alu64_reg(BPF_SUB, 0, 10), alu64_reg(BPF_ADD, 0, 3), X), 7 },
		{ "a deferred 32-bit copy zero-extends", P(lddw(1, 0xffffffff00000007), mov32_reg(0, 1), X), 7 },
		{ "a copy overwritten before it is read", P(mov64_imm(1, 5), mov64_reg(0, 1), mov64_imm(0, 6), X), 6 },
		{ "the source of a copy overwritten before the copy is read", P(mov64_imm(1, 5), mov64_reg(0, 1), mov64_imm(1, 6), alu64_reg(BPF_ADD, 0, 1), X), 11 },
		{ "w = w + w as a 32-bit lea wraps", P(lddw(1, 0x1ffffffff), mov32_imm(2, 3), mov32_reg(0, 1), alu32_reg(BPF_ADD, 0, 2), X), 2 },
		{ "w = w - imm as a 32-bit lea", P(mov32_imm(1, 1), mov32_reg(0, 1), alu32_imm(BPF_SUB, 0, 2), X), 0xffffffff },
		{ "w = w + w doubled", P(mov32_imm(1, I32MIN + 1), mov32_reg(0, 1), alu32_reg(BPF_ADD, 0, 0), X), 2 },
		{ "a running sum in a copy, 32 bits", running_sum(mov32_imm(3, 0), false), 55 },
		{ "a running sum in a copy wraps at 2^32", running_sum(mov32_imm(3, -16), false), 39 },
		{ "a running sum in a copy, 64 bits", running_sum(lddw(3, 0xfffffffffffffff0), true), 39 },
		{ "d -= s; d += imm with s dead", P(mov32_imm(0, 0), mov64_imm(1, 0), mov64_reg(2, 1), alu64_imm(BPF_AND, 2, 1), alu32_reg(BPF_SUB, 0, 2), alu32_imm(BPF_ADD, 0, 1), alu64_imm(BPF_ADD, 1, 1), jmp_imm(BPF_JNE, 1, 8, -6), X), 4 },
		{ "d -= s; d += imm with s read afterwards", P(mov32_imm(0, 0), mov64_imm(1, 0), mov64_reg(2, 1), alu64_imm(BPF_AND, 2, 1), alu32_reg(BPF_SUB, 0, 2), alu32_imm(BPF_ADD, 0, 1), alu32_reg(BPF_ADD, 0, 2), alu64_imm(BPF_ADD, 1, 1), jmp_imm(BPF_JNE, 1, 8, -7), X), 8 },
		{ "d -= s; d += imm in 64 bits", P(mov64_imm(0, 0), mov64_imm(2, 5), alu64_reg(BPF_SUB, 0, 2), alu64_imm(BPF_ADD, 0, 3), X), 0xfffffffffffffffe },
		{ "d -= s; d += imm in 32 bits", P(mov64_imm(0, 0), mov64_imm(2, 5), alu32_reg(BPF_SUB, 0, 2), alu32_imm(BPF_ADD, 0, 3), X), 0xfffffffe },
		{ "64-bit constants from the pool, one used twice", P(lddw(0, 0x1122334455667788), lddw(1, 0x1122334455667788), lddw(2, 0x8000000000000001), alu64_reg(BPF_ADD, 0, 1), alu64_reg(BPF_ADD, 0, 2), X), 0xa2446688aaccef11 },
	};
}

// Addresses made from a lddw immediate, as clang emits for global data:
// the buffer is also the context, so the bounds-checked variants accept it.
void test_lddw_addresses()
{
	const code X = exit_insn();
	alignas(8) static uint64_t buf[4];
	const uint64_t at = reinterpret_cast<uint64_t>(buf);
	const value_case cases[] = {
		{ "a load through lddw + imm", P(lddw(2, at), alu64_imm(BPF_ADD, 2, 8), ldx(BPF_DW, 0, 2, 0), X), 0x2222 },
		{ "a load through lddw + index", P(mov64_imm(3, 16), lddw(2, at), alu64_reg(BPF_ADD, 2, 3), ldx(BPF_DW, 0, 2, -8), X), 0x2222 },
		{ "a store and a load through lddw + index, the address kept", P(mov64_imm(3, 24), lddw(2, at), alu64_reg(BPF_ADD, 2, 3), st(BPF_DW, 2, 0, 0x44), ldx(BPF_DW, 0, 2, 0), lddw(4, at), alu64_reg(BPF_SUB, 2, 4), alu64_reg(BPF_ADD, 0, 2), X), 0x44 + 24 },
		{ "two addresses from lddw live at once, as in a copy loop", P(mov64_imm(1, 0), lddw(2, at + 16), alu64_reg(BPF_ADD, 2, 1), lddw(3, at), alu64_reg(BPF_ADD, 3, 1), ldx(BPF_DW, 3, 3, 0), stx(BPF_DW, 2, 3, 0), alu64_imm(BPF_ADD, 1, 8), jmp_imm(BPF_JEQ, 1, 16, 1), ja(-11), lddw(1, at), ldx(BPF_DW, 0, 1, 16), ldx(BPF_DW, 1, 1, 24), alu64_reg(BPF_ADD, 0, 1), X), 0x1111 + 0x2222 },
	};
	for (const value_case &c : cases) {
		std::vector<const variant *> all;
		for (const variant &v : g_variants)
			all.push_back(&v);
		all.push_back(&g_interp);
		for (const variant *v : all) {
			buf[0] = 0x1111;
			buf[1] = 0x2222;
			buf[2] = buf[3] = 0;
			auto r = run_once(c.prog, *v, buf, sizeof buf);
			check(r.ok() && *r == c.expect, "lddw addresses: %s [%s]: expected %s, got %s",
			      c.name, v->name.c_str(), hex(c.expect).c_str(),
			      r ? hex(*r).c_str() : r.error().message.c_str());
		}
	}
}

// ------------------------------------------------------ loop constants
//
// The lddw constants of a loop, held in host registers the function does
// not otherwise use (codegen.cpp, "Constants"). Four arrays of eight u64 in
// one buffer, which is also the context so the bounds-checked variants
// accept every access: a[i] = i + 1, b[i] = 10 (i + 1), c = 0,
// d[i] = 100 (i + 1). Sums: a 36, b 360, d 3600.

struct loop_arrays {
	alignas(8) uint64_t w[32];
	uint64_t *a() { return w; }
	uint64_t *c() { return w + 16; }
	uint64_t at(int k) const { return reinterpret_cast<uint64_t>(w + 8 * k); }
	void reset()
	{
		for (int i = 0; i < 8; i++) {
			w[i] = i + 1;
			w[8 + i] = 10 * (i + 1);
			w[16 + i] = 0;
			w[24 + i] = 100 * (i + 1);
		}
	}
};

// c[i] = a[i], then a[0] + a[7] read back through c: clang's memcpy loop,
// two lddw per iteration and one after the loop.
code copy_loop(const loop_arrays &m)
{
	return P(mov64_imm(1, 0),
		 lddw(2, m.at(2)), alu64_reg(BPF_ADD, 2, 1),
		 lddw(3, m.at(0)), alu64_reg(BPF_ADD, 3, 1),
		 ldx(BPF_DW, 3, 3, 0), stx(BPF_DW, 2, 3, 0), alu64_imm(BPF_ADD, 1, 8),
		 jmp_imm(BPF_JEQ, 1, 64, 1), ja(-11),
		 lddw(1, m.at(2)), ldx(BPF_DW, 0, 1, 0), ldx(BPF_DW, 1, 1, 56),
		 alu64_reg(BPF_ADD, 0, 1), exit_insn());
}

// c[i] = a[i] + b[i], then the sum of c: three constants, c loaded in two
// loops. `pre` and `post` name more registers (post adds them to r0), so
// that fewer hosts are free.
code three_arrays(const loop_arrays &m, const code &pre, const code &post)
{
	return P(pre, mov64_imm(1, 0),
		 lddw(2, m.at(0)), alu64_reg(BPF_ADD, 2, 1), ldx(BPF_DW, 2, 2, 0),
		 lddw(3, m.at(1)), alu64_reg(BPF_ADD, 3, 1), ldx(BPF_DW, 3, 3, 0),
		 alu64_reg(BPF_ADD, 2, 3),
		 lddw(4, m.at(2)), alu64_reg(BPF_ADD, 4, 1), stx(BPF_DW, 4, 2, 0),
		 alu64_imm(BPF_ADD, 1, 8), jmp_imm(BPF_JNE, 1, 64, -15),
		 mov64_imm(0, 0), mov64_imm(1, 0),
		 lddw(2, m.at(2)), alu64_reg(BPF_ADD, 2, 1), ldx(BPF_DW, 2, 2, 0),
		 alu64_reg(BPF_ADD, 0, 2), alu64_imm(BPF_ADD, 1, 8), jmp_imm(BPF_JNE, 1, 64, -7),
		 post, exit_insn());
}

// c[i] = a[i] + 2*2 + 5 * (the caller's rsp mod 16 at a helper call), with
// the index in r6; returns the sum of c (+ 7 in r7 with `use_r7`, which
// makes the prologue push an even number of registers instead of odd).
code helper_loop(const loop_arrays &m, bool use_r7)
{
	return P(use_r7 ? mov64_imm(7, 7) : code{}, mov64_imm(6, 0),
		 call_helper(HELPER_RSP_MOD16), mov64_reg(5, 0),
		 lddw(1, m.at(0)), alu64_reg(BPF_ADD, 1, 6), ldx(BPF_DW, 1, 1, 0),
		 mov64_imm(2, 2), mov64_imm(3, 0), mov64_imm(4, 0), call_helper(HELPER_SUM),
		 lddw(2, m.at(2)), alu64_reg(BPF_ADD, 2, 6), stx(BPF_DW, 2, 0, 0),
		 alu64_imm(BPF_ADD, 6, 8), jmp_imm(BPF_JNE, 6, 64, -16),
		 mov64_imm(0, 0), mov64_imm(1, 0),
		 lddw(2, m.at(2)), alu64_reg(BPF_ADD, 2, 1), ldx(BPF_DW, 2, 2, 0),
		 alu64_reg(BPF_ADD, 0, 2), alu64_imm(BPF_ADD, 1, 8), jmp_imm(BPF_JNE, 1, 64, -7),
		 use_r7 ? alu64_reg(BPF_ADD, 0, 7) : code{}, exit_insn());
}

// main: c[i] = f(a[i]), returns the sum of the f(a[i]). f(x) = x + b[0] +
// b[1] + d[0] + d[1], from a loop of its own with two constants. Both name
// every register but r8 and r9, so the constants of both go to the hosts
// of r8 and r9: f must save them for main.
code local_call_loop(const loop_arrays &m)
{
	return P(mov64_imm(6, 0), mov64_imm(7, 0),
		 lddw(1, m.at(0)), alu64_reg(BPF_ADD, 1, 6), ldx(BPF_DW, 1, 1, 0),
		 call_local(9), alu64_reg(BPF_ADD, 7, 0),
		 lddw(2, m.at(2)), alu64_reg(BPF_ADD, 2, 6), stx(BPF_DW, 2, 0, 0),
		 alu64_imm(BPF_ADD, 6, 8), jmp_imm(BPF_JNE, 6, 64, -12),
		 mov64_reg(0, 7), exit_insn(),
		 // f
		 mov64_imm(6, 0), mov64_reg(7, 1),
		 lddw(2, m.at(1)), alu64_reg(BPF_ADD, 2, 6), ldx(BPF_DW, 2, 2, 0),
		 lddw(3, m.at(3)), alu64_reg(BPF_ADD, 3, 6), ldx(BPF_DW, 3, 3, 0),
		 mov64_reg(4, 2), alu64_reg(BPF_ADD, 4, 3), mov64_reg(5, 4), alu64_reg(BPF_ADD, 7, 5),
		 alu64_imm(BPF_ADD, 6, 8), jmp_imm(BPF_JNE, 6, 16, -14),
		 mov64_reg(0, 7), exit_insn());
}

size_t occurrences(std::span<const uint8_t> hay, uint64_t v)
{
	uint8_t needle[8];
	std::memcpy(needle, &v, 8);
	size_t n = 0;
	for (auto it = hay.begin();
	     (it = std::search(it, hay.end(), std::begin(needle), std::end(needle))) != hay.end(); ++it)
		n++;
	return n;
}

void test_loop_constants()
{
	static loop_arrays m;
	const code five_to_eight = P(mov64_imm(5, 5), mov64_imm(6, 6), mov64_imm(7, 7), mov64_imm(8, 8));
	const code add_five_to_eight = P(alu64_reg(BPF_ADD, 0, 5), alu64_reg(BPF_ADD, 0, 6),
					 alu64_reg(BPF_ADD, 0, 7), alu64_reg(BPF_ADD, 0, 8));
	struct row {
		const char *name;
		code prog;
		uint64_t expect;
		std::function<bool(loop_arrays &)> memory; // c as expected
	};
	auto c_is = [](uint64_t add) {
		return [add](loop_arrays &x) {
			for (int i = 0; i < 8; i++)
				if (x.c()[i] != x.a()[i] + add)
					return false;
			return true;
		};
	};
	auto c_is_a_plus_b = [](loop_arrays &x) {
		for (int i = 0; i < 8; i++)
			if (x.c()[i] != x.w[i] + x.w[8 + i])
				return false;
		return true;
	};
	const row rows[] = {
		{ "a copy loop with two constants and free registers", copy_loop(m), 1 + 8, c_is(0) },
		{ "three constants with five hosts free", three_arrays(m, {}, {}), 36 + 360, c_is_a_plus_b },
		{ "three constants with only the host of r9 free", three_arrays(m, five_to_eight, add_five_to_eight), 36 + 360 + 26, c_is_a_plus_b },
		{ "three constants and no free host",
		  three_arrays(m, P(five_to_eight, mov64_imm(9, 9)), P(add_five_to_eight, alu64_reg(BPF_ADD, 0, 9))),
		  36 + 360 + 35, c_is_a_plus_b },
		{ "helper calls in the loop, an odd number of pushes", helper_loop(m, false), 36 + 8 * 4, c_is(4) },
		{ "helper calls in the loop, an even number of pushes", helper_loop(m, true), 36 + 8 * 4 + 7, c_is(4) },
		{ "local calls in the loop, both functions with constants in the same hosts", local_call_loop(m),
		  36 + 8 * 330, c_is(330) },
	};
	std::vector<const variant *> all;
	for (const variant &v : g_variants)
		all.push_back(&v);
	all.push_back(&g_interp);
	for (const row &w : rows) {
		for (const variant *v : all) {
			m.reset();
			auto r = run_once(w.prog, *v, m.w, sizeof m.w);
			check(r.ok() && *r == w.expect && w.memory(m), "loop constants: %s [%s]: expected %s, got %s%s",
			      w.name, v->name.c_str(), hex(w.expect).c_str(),
			      r ? hex(*r).c_str() : r.error().message.c_str(),
			      w.memory(m) ? "" : ", c wrong");
		}
	}

	// A constant with a register is in the code once, in the prologue, however
	// many lddws load it; without one, once per lddw.
	for (bool bounds : { false, true }) {
		variant v{ "", true, { false }, bounds };
		const char *mode = bounds ? " (bounds checks)" : "";
		auto copy = build(copy_loop(m), v);
		auto none = build(three_arrays(m, P(five_to_eight, mov64_imm(9, 9)),
					       P(add_five_to_eight, alu64_reg(BPF_ADD, 0, 9))), v);
		if (!copy || !none) {
			check(false, "loop constants: compile: %s",
			      (!copy ? copy.error() : none.error()).message.c_str());
			continue;
		}
		const size_t in_copy = occurrences(jit_x64::code_of(*(*copy)->ex), m.at(2));
		const size_t in_none = occurrences(jit_x64::code_of(*(*none)->ex), m.at(2));
		check(in_copy == 1, "loop constants: a constant loaded by two lddws is in the code once%s (%zu)", mode, in_copy);
		check(in_none == 2, "loop constants: without a free host each lddw has its constant%s (%zu)", mode, in_none);
	}
}

// ------------------------------------------------------- control flow

std::vector<value_case> control_cases()
{
	const code X = exit_insn();
	code long_loop_body = repeat(200, alu64_imm(BPF_ADD, 0, 1));
	code long_skip = repeat(300, alu64_imm(BPF_ADD, 0, 5));
	code huge_skip = repeat(40000, alu64_imm(BPF_ADD, 0, 1));
	return {
		{ "ja skips an instruction", P(mov64_imm(0, 1), ja(1), mov64_imm(0, 2), X), 1 },
		{ "gotol skips an instruction", P(mov64_imm(0, 1), gotol(1), mov64_imm(0, 2), X), 1 },
		{ "ja +0 falls through", P(mov64_imm(0, 3), ja(0), X), 3 },
		{ "conditional jump +0 falls through", P(mov64_imm(0, 3), jmp_imm(BPF_JEQ, 0, 3, 0), X), 3 },
		{ "a loop sums 1..100", P(mov64_imm(0, 0), mov64_imm(1, 1), alu64_reg(BPF_ADD, 0, 1), alu64_imm(BPF_ADD, 1, 1), jmp_imm(BPF_JLE, 1, 100, -3), X), 5050 },
		{ "a loop whose body needs a rel32 back edge", P(mov64_imm(0, 0), mov64_imm(1, 0), long_loop_body, alu64_imm(BPF_ADD, 1, 1), jmp_imm(BPF_JLT, 1, 10, -202), X), 2000 },
		{ "a taken forward jump over 300 instructions", P(mov64_imm(0, 1), jmp_imm(BPF_JEQ, 0, 1, 300), long_skip, X), 1 },
		{ "a forward jump over 300 instructions not taken", P(mov64_imm(0, 2), jmp_imm(BPF_JEQ, 0, 1, 300), long_skip, X), 1502 },
		{ "gotol over 40000 instructions", P(mov64_imm(0, 1), gotol(40000), huge_skip, X), 1 },
		{ "a backward ja forms a loop", P(mov64_imm(0, 0), alu64_imm(BPF_ADD, 0, 1), jmp_imm(BPF_JGE, 0, 10, 1), ja(-3), X), 10 },
		{ "a jump back to pc 0 loops", P(alu64_imm(BPF_ADD, 2, -4), jmp_imm(BPF_JGT, 2, 8, -2), mov64_reg(0, 2), X), 8 },
		{ "r0 and r6-r9 start at 0", P(mov64_reg(0, 6), alu64_reg(BPF_OR, 0, 7), alu64_reg(BPF_OR, 0, 8), alu64_reg(BPF_OR, 0, 9), X), 0 },
	};
}

// ---------------------------------------------------------------- calls

// main: r6 = 12345, frame slots cleared, calls f1(r10); returns f1 + r6.
// f_i(caller_fp): stores i at [r10-8] and 100*i at [r10-512] of its own
// frame, calls f_{i+1}(r10) (f_depth returns 0 instead), then returns the
// callee's result + its two slots + the caller's [fp-8] read through the
// pointer. Total: 12345 + sum over i of (i + 100 i + (i - 1)).
code call_chain(int depth)
{
	code c = P(mov64_imm(6, 12345), st(BPF_DW, 10, -8, 0), st(BPF_DW, 10, -512, 0),
		   mov64_reg(1, 10), call_local(0), alu64_reg(BPF_ADD, 0, 6), exit_insn());
	const size_t main_call = 4;
	const size_t fn_len = 13;
	for (int i = 1; i <= depth; i++) {
		const size_t start = c.size();
		if (i == 1)
			c[main_call].imm = static_cast<int32_t>(start - main_call - 1);
		code call = i == depth ? mov64_imm(0, 0) :
					 call_local(static_cast<int32_t>(fn_len - 5));
		c = P(c, mov64_reg(6, 1), st(BPF_DW, 10, -8, i), st(BPF_DW, 10, -512, 100 * i),
		      mov64_reg(1, 10), call, ldx(BPF_DW, 2, 10, -8), ldx(BPF_DW, 3, 10, -512),
		      ldx(BPF_DW, 4, 6, -8), alu64_reg(BPF_ADD, 0, 2), alu64_reg(BPF_ADD, 0, 3),
		      alu64_reg(BPF_ADD, 0, 4), mov64_imm(7, 0), exit_insn());
		if (c.size() - start != fn_len)
			std::abort();
	}
	return c;
}

std::vector<value_case> call_cases()
{
	const code X = exit_insn();
	// 1 + 2*2 + 3*3 + 4*4 + 5*2^32 + r6..r9
	const uint64_t sum5 = 1 + 4 + 9 + 16 + 5 * 0x100000000ull;
	return {
		{ "a helper gets r1-r5 and r6-r9 survive it",
		  P(mov64_imm(6, 1000), mov64_imm(7, 2000), mov64_imm(8, 3000), mov64_imm(9, 4000),
		    mov64_imm(1, 1), mov64_imm(2, 2), mov64_imm(3, 3), mov64_imm(4, 4), lddw(5, 0x100000000),
		    call_helper(HELPER_SUM), alu64_reg(BPF_ADD, 0, 6), alu64_reg(BPF_ADD, 0, 7),
		    alu64_reg(BPF_ADD, 0, 8), alu64_reg(BPF_ADD, 0, 9), X),
		  sum5 + 10000 },
		{ "a kfunc is called by BTF id", P(mov64_imm(1, 6), mov64_imm(2, 7), call_kfunc(KFUNC_PRODUCT), X), 42 },
		{ "a local call keeps r6-r9, r10 and the caller's frame",
		  P(mov64_imm(6, 11), mov64_imm(7, 22), mov64_imm(8, 33), mov64_imm(9, 44),
		    st(BPF_DW, 10, -8, 55), stx(BPF_DW, 10, 10, -16), mov64_imm(1, 3), call_local(10),
		    alu64_reg(BPF_ADD, 0, 6), alu64_reg(BPF_ADD, 0, 7), alu64_reg(BPF_ADD, 0, 8),
		    alu64_reg(BPF_ADD, 0, 9), ldx(BPF_DW, 1, 10, -8), alu64_reg(BPF_ADD, 0, 1),
		    ldx(BPF_DW, 2, 10, -16), alu64_reg(BPF_SUB, 2, 10), alu64_reg(BPF_ADD, 0, 2), X,
		    // callee
		    mov64_imm(6, 1), mov64_imm(7, 2), mov64_imm(8, 3), mov64_imm(9, 4),
		    st(BPF_DW, 10, -8, 999), ldx(BPF_DW, 0, 10, -8), alu64_reg(BPF_ADD, 0, 1), X),
		  1002 + 110 + 55 },
		{ "eight frames of nested calls", call_chain(7), 12345 + 102 * 28 - 7 },
		{ "callx calls the helper whose id is in dst",
		  P(mov64_imm(1, 1), mov64_imm(2, 2), mov64_imm(3, 3), mov64_imm(4, 4), mov64_imm(5, 5),
		    mov64_imm(6, HELPER_SUM), callx(6), X),
		  55 },
		{ "callx with the id in r0", P(mov64_imm(1, 6), mov64_imm(2, 7), mov64_imm(0, HELPER_PRODUCT), callx(0), X), 42 },
		{ "callx with the id in r1, its own first argument",
		  P(mov64_imm(1, HELPER_PRODUCT), mov64_imm(2, 21), callx(1), X), 42 },
	};
}

void test_call_errors()
{
	uint64_t ctx[2] = {};
	for (const variant &v : g_variants) {
		auto r = run_once(call_chain(8), v, ctx, sizeof ctx);
		check(!r && r.error().code == ELOOP &&
			      r.error().message.find("local calls nested too deep") != std::string::npos,
		      "nine frames end the run with ELOOP [%s]: got %s", v.name.c_str(),
		      r ? hex(*r).c_str() : r.error().message.c_str());
		// The same through the runner (the probe entry, where no bounds
		// are checked): the unwind from the ninth frame comes back out
		// of it with the errno, and the next run is whole again.
		if (auto b = build(call_chain(8), v); b) {
			runner_fn run = (*b)->ex->make_runner();
			int err = 0;
			const uint64_t r0 = run(ctx, sizeof ctx, &err);
			check(r0 == 0 && err == ELOOP, "nine frames through the runner give ELOOP [%s]: got %s, %d",
			      v.name.c_str(), hex(r0).c_str(), err);
		}
		if (auto b = build(call_chain(7), v); b) {
			runner_fn run = (*b)->ex->make_runner();
			for (int i = 0; i < 2; i++) {
				int err = -1;
				const uint64_t r0 = run(ctx, sizeof ctx, &err);
				check(r0 == 12345 + 102 * 28 - 7 && err == 0,
				      "eight frames through the runner, run %d [%s]: got %s, %d", i, v.name.c_str(),
				      hex(r0).c_str(), err);
			}
		}

		struct row {
			const char *name;
			int32_t id;
		} rows[] = { { "an unregistered id inside the table", 3 },
			     { "an id past the table", 1000 },
			     { "id -1", -1 },
			     { "id 12 without tail calls", 12 } };
		for (const row &w : rows) {
			auto e = run_once(P(mov64_imm(6, w.id), callx(6), mov64_imm(0, 0), exit_insn()),
					  v, ctx, sizeof ctx);
			char want[96];
			std::snprintf(want, sizeof want, "1: callx to unregistered helper id %" PRIu64,
				      static_cast<uint64_t>(static_cast<int64_t>(w.id)));
			check(!e && e.error().code == EINVAL && e.error().message == want,
			      "callx to %s ends the run with EINVAL '%s' [%s]: got %s", w.name, want,
			      v.name.c_str(), e ? hex(*e).c_str() : e.error().message.c_str());
		}
	}
}

// --------------------------------------------------------------- memory

std::vector<value_case> memory_cases()
{
	const code X = exit_insn();
	return {
		{ "stxb stores the low byte of r1 (dil)", P(lddw(1, 0x1234), st(BPF_DW, 10, -8, 0), stx(BPF_B, 10, 1, -8), ldx(BPF_DW, 0, 10, -8), X), 0x34 },
		{ "stxb stores the low byte of r2 (sil)", P(lddw(2, 0xabcd), st(BPF_DW, 10, -8, 0), stx(BPF_B, 10, 2, -7), ldx(BPF_DW, 0, 10, -8), X), 0xcd00 },
		{ "stxb stores the low byte of r6", P(mov64_imm(6, 0x1ff), st(BPF_DW, 10, -8, 0), stx(BPF_B, 10, 6, -8), ldx(BPF_DW, 0, 10, -8), X), 0xff },
		{ "stxh stores 16 bits", P(lddw(1, 0x123456789), st(BPF_DW, 10, -8, -1), stx(BPF_H, 10, 1, -8), ldx(BPF_DW, 0, 10, -8), X), 0xffffffffffff6789 },
		{ "stxw stores 32 bits", P(lddw(9, 0x123456789), st(BPF_DW, 10, -8, -1), stx(BPF_W, 10, 9, -8), ldx(BPF_DW, 0, 10, -8), X), 0xffffffff23456789 },
		{ "stxdw stores 64 bits", P(lddw(7, 0x123456789abcdef0), stx(BPF_DW, 10, 7, -16), ldx(BPF_DW, 0, 10, -16), X), 0x123456789abcdef0 },
		{ "stb stores the low byte of imm", P(st(BPF_DW, 10, -8, 0), st(BPF_B, 10, -8, 0x1ab), ldx(BPF_DW, 0, 10, -8), X), 0xab },
		{ "sth stores 16 bits of imm", P(st(BPF_DW, 10, -8, 0), st(BPF_H, 10, -8, -2), ldx(BPF_DW, 0, 10, -8), X), 0xfffe },
		{ "stw stores 32 bits of imm", P(st(BPF_DW, 10, -8, 0), st(BPF_W, 10, -8, -1), ldx(BPF_DW, 0, 10, -8), X), 0xffffffff },
		{ "stdw sign-extends imm", P(st(BPF_DW, 10, -8, -1), ldx(BPF_DW, 0, 10, -8), X), ALL },
		{ "ldxb zero-extends", P(st(BPF_DW, 10, -8, -1), ldx(BPF_B, 0, 10, -8), X), 0xff },
		{ "ldxh zero-extends", P(st(BPF_DW, 10, -8, -1), ldx(BPF_H, 0, 10, -8), X), 0xffff },
		{ "ldxw zero-extends", P(st(BPF_DW, 10, -8, -1), ldx(BPF_W, 0, 10, -8), X), 0xffffffff },
		{ "ldxsb sign-extends", P(st(BPF_DW, 10, -8, 0x80), ldxs(BPF_B, 0, 10, -8), X), 0xffffffffffffff80 },
		{ "ldxsh sign-extends", P(st(BPF_DW, 10, -8, 0x8000), ldxs(BPF_H, 0, 10, -8), X), 0xffffffffffff8000 },
		{ "ldxsw sign-extends", P(st(BPF_W, 10, -8, I32MIN), ldxs(BPF_W, 0, 10, -8), X), 0xffffffff80000000 },
		{ "ldxsb of a positive byte", P(st(BPF_DW, 10, -8, 0x17f), ldxs(BPF_B, 0, 10, -8), X), 0x7f },
		{ "loads and stores through r7 at offset 0 (r13 base)", P(mov64_reg(7, 10), alu64_imm(BPF_ADD, 7, -24), st(BPF_DW, 7, 0, 77), ldx(BPF_DW, 0, 7, 0), X), 77 },
		{ "a store through r0 as base", P(mov64_reg(0, 10), alu64_imm(BPF_ADD, 0, -8), mov64_imm(1, 9), stx(BPF_DW, 0, 1, 0), ldx(BPF_DW, 0, 0, 0), X), 9 },
		{ "unaligned accesses", P(st(BPF_DW, 10, -16, 0), st(BPF_DW, 10, -8, 0), lddw(1, 0x1122334455667788), stx(BPF_DW, 10, 1, -13), ldx(BPF_W, 0, 10, -11), X), 0x33445566 },
		{ "the context arrives in r1 and its length in r2", P(ldx(BPF_DW, 0, 1, 8), alu64_reg(BPF_ADD, 0, 2), X), 0x2222 + 32 },
		{ "the bottom of the frame is usable", P(st(BPF_DW, 10, -512, 31), ldx(BPF_DW, 0, 10, -512), X), 31 },
		// Address arithmetic followed by loads (the JIT folds these):
		// [r10-16] holds bytes 88 77 66 55 44 33 22 11.
		{ "loads through base + index", P(lddw(1, 0x1122334455667788), stx(BPF_DW, 10, 1, -16), mov64_reg(6, 10), alu64_imm(BPF_ADD, 6, -16), mov64_imm(2, 3),
						  mov64_reg(0, 6), alu64_reg(BPF_ADD, 0, 2), ldx(BPF_B, 1, 0, 1), ldx(BPF_B, 0, 0, 0), alu64_imm(BPF_LSH, 0, 8), alu64_reg(BPF_ADD, 0, 1), X), 0x5544 },
		{ "a load that overwrites the index does not move the address", P(lddw(1, 0x1122334455667788), stx(BPF_DW, 10, 1, -16), mov64_reg(6, 10), alu64_imm(BPF_ADD, 6, -16), mov64_imm(2, 3),
						  mov64_reg(0, 6), alu64_reg(BPF_ADD, 0, 2), ldx(BPF_B, 2, 0, 1), ldx(BPF_B, 0, 0, 0), alu64_imm(BPF_LSH, 0, 8), alu64_reg(BPF_ADD, 0, 2), X), 0x5544 },
		{ "a load that overwrites the base does not move the address", P(lddw(1, 0x1122334455667788), stx(BPF_DW, 10, 1, -16), mov64_reg(6, 10), alu64_imm(BPF_ADD, 6, -16), mov64_imm(2, 3),
						  mov64_reg(0, 6), alu64_reg(BPF_ADD, 0, 2), ldx(BPF_B, 6, 0, 1), ldx(BPF_B, 0, 0, 0), alu64_imm(BPF_LSH, 0, 8), alu64_reg(BPF_ADD, 0, 6), X), 0x5544 },
		{ "base + base doubles the base", P(st(BPF_DW, 10, -8, 0), mov64_imm(2, 0), stx(BPF_B, 10, 2, -8), mov64_imm(6, 4), mov64_reg(0, 6), alu64_reg(BPF_ADD, 0, 0), alu64_reg(BPF_ADD, 0, 10), ldx(BPF_B, 0, 0, -16), X), 0 },
		{ "a jump target between the add and the load", P(lddw(1, 0x1122334455667788), stx(BPF_DW, 10, 1, -16), mov64_reg(6, 10), alu64_imm(BPF_ADD, 6, -16), mov64_imm(2, 3),
								  mov64_reg(0, 6), alu64_imm(BPF_ADD, 0, 3), jmp_imm(BPF_JEQ, 2, 3, 2), mov64_reg(0, 6), alu64_imm(BPF_ADD, 0, 4), ldx(BPF_B, 0, 0, 0), X), 0x55 },
		{ "a sign-extending load through base + imm", P(lddw(1, 0x1122334455667788), stx(BPF_DW, 10, 1, -16), mov64_reg(6, 10), mov64_reg(0, 6), alu64_imm(BPF_ADD, 0, -16), ldxs(BPF_B, 0, 0, 0), X), 0xffffffffffffff88 },
		{ "add imm and the load offset add up", P(lddw(1, 0x1122334455667788), stx(BPF_DW, 10, 1, -16), mov64_reg(6, 10), mov64_reg(0, 6), alu64_imm(BPF_ADD, 0, -8), ldx(BPF_W, 0, 0, -4), X), 0x11223344 },
		{ "sub imm then a load", P(lddw(1, 0x1122334455667788), stx(BPF_DW, 10, 1, -16), mov64_reg(0, 10), alu64_imm(BPF_SUB, 0, 12), ldx(BPF_H, 0, 0, 0), X), 0x3344 },
		{ "a load through r10 + index", P(lddw(1, 0x1122334455667788), stx(BPF_DW, 10, 1, -16), mov64_imm(2, -10), mov64_reg(3, 10), alu64_reg(BPF_ADD, 3, 2), ldx(BPF_H, 3, 3, -4), mov64_reg(0, 3), X), 0x5566 },
	};
}

void run_memory_cases()
{
	for (const value_case &c : memory_cases()) {
		for (const variant *v : [] {
			     std::vector<const variant *> all;
			     for (const variant &x : g_variants)
				     all.push_back(&x);
			     all.push_back(&g_interp);
			     return all;
		     }()) {
			uint64_t ctx[4] = { 0x1111, 0x2222, 0x3333, 0x4444 };
			auto r = run_once(c.prog, *v, ctx, sizeof ctx);
			check(r.ok() && *r == c.expect, "memory: %s [%s]: expected %s, got %s", c.name,
			      v->name.c_str(), hex(c.expect).c_str(),
			      r ? hex(*r).c_str() : r.error().message.c_str());
		}
	}
}

// -------------------------------------------------------------- atomics

std::vector<value_case> atomic_cases()
{
	const code X = exit_insn();
	const uint8_t W = BPF_W, DW = BPF_DW;
	return {
		{ "atomic add64", P(st(DW, 10, -8, 10), mov64_imm(1, 5), atomic(DW, BPF_ADD, 10, 1, -8), ldx(DW, 0, 10, -8), X), 15 },
		{ "atomic add32 leaves the upper word", P(st(DW, 10, -8, -1), mov64_imm(1, 1), atomic(W, BPF_ADD, 10, 1, -8), ldx(DW, 0, 10, -8), X), 0xffffffff00000000 },
		{ "atomic or64", P(st(DW, 10, -8, 0xf0), mov64_imm(1, 0x0f), atomic(DW, BPF_OR, 10, 1, -8), ldx(DW, 0, 10, -8), X), 0xff },
		{ "atomic and64", P(st(DW, 10, -8, 0xff), mov64_imm(1, 0x3c), atomic(DW, BPF_AND, 10, 1, -8), ldx(DW, 0, 10, -8), X), 0x3c },
		{ "atomic xor64", P(st(DW, 10, -8, 0x3c), mov64_imm(1, 0xff), atomic(DW, BPF_XOR, 10, 1, -8), ldx(DW, 0, 10, -8), X), 0xc3 },
		{ "atomic and32", P(st(DW, 10, -8, -1), mov64_imm(1, 0xf0), atomic(W, BPF_AND, 10, 1, -8), ldx(DW, 0, 10, -8), X), 0xffffffff000000f0 },
		{ "fetch_add64 returns the old value", P(st(DW, 10, -8, 10), mov64_imm(1, 5), atomic(DW, BPF_ADD | BPF_FETCH, 10, 1, -8), ldx(DW, 0, 10, -8), alu64_imm(BPF_MUL, 0, 100), alu64_reg(BPF_ADD, 0, 1), X), 1510 },
		{ "fetch_add32 zero-extends the old value", P(st(DW, 10, -8, -1), lddw(1, 0xffffffff00000001), atomic(W, BPF_ADD | BPF_FETCH, 10, 1, -8), mov64_reg(0, 1), X), 0xffffffff },
		{ "fetch_add32 wraps the low word only", P(st(DW, 10, -8, -1), lddw(1, 0xffffffff00000001), atomic(W, BPF_ADD | BPF_FETCH, 10, 1, -8), ldx(DW, 0, 10, -8), X), 0xffffffff00000000 },
		{ "fetch_or64 returns the old value", P(st(DW, 10, -8, 0xf0), mov64_imm(1, 0x0f), atomic(DW, BPF_OR | BPF_FETCH, 10, 1, -8), ldx(DW, 0, 10, -8), alu64_imm(BPF_MUL, 0, 0x1000), alu64_reg(BPF_ADD, 0, 1), X), 0xff0f0 },
		{ "fetch_and32 zero-extends the old value", P(st(DW, 10, -8, -1), lddw(1, 0xffffffff0000ff00), atomic(W, BPF_AND | BPF_FETCH, 10, 1, -8), ldx(DW, 0, 10, -8), alu64_reg(BPF_XOR, 0, 1), X), 0xffffffffffff00ff },
		{ "fetch_xor64 with r0 as the source", P(st(DW, 10, -8, 0x55), mov64_imm(0, 0xff), atomic(DW, BPF_XOR | BPF_FETCH, 10, 0, -8), ldx(DW, 1, 10, -8), alu64_imm(BPF_MUL, 0, 0x1000), alu64_reg(BPF_ADD, 0, 1), X), 0x550aa },
		{ "fetch_or64 with r0 as the base", P(mov64_reg(0, 10), alu64_imm(BPF_ADD, 0, -8), st(DW, 10, -8, 1), mov64_imm(1, 6), atomic(DW, BPF_OR | BPF_FETCH, 0, 1, 0), ldx(DW, 0, 10, -8), alu64_imm(BPF_MUL, 0, 10), alu64_reg(BPF_ADD, 0, 1), X), 71 },
		{ "fetch_or64 with r0 as base and source", P(mov64_reg(0, 10), alu64_imm(BPF_ADD, 0, -8), st(DW, 10, -8, 0), atomic(DW, BPF_OR | BPF_FETCH, 0, 0, 0), ldx(DW, 1, 10, -8), alu64_reg(BPF_SUB, 1, 10), alu64_reg(BPF_ADD, 0, 1), X), 0xfffffffffffffff8 },
		{ "fetch_xor32 with r0 as the source zero-extends", P(st(DW, 10, -8, -1), lddw(0, 0xffffffff0000000f), atomic(W, BPF_XOR | BPF_FETCH, 10, 0, -8), X), 0xffffffff },
		{ "xchg64", P(st(DW, 10, -8, 7), mov64_imm(1, 9), atomic(DW, BPF_XCHG, 10, 1, -8), ldx(DW, 0, 10, -8), alu64_imm(BPF_MUL, 0, 10), alu64_reg(BPF_ADD, 0, 1), X), 97 },
		{ "xchg32 zero-extends the old value", P(st(DW, 10, -8, -1), lddw(1, 0x100000002), atomic(W, BPF_XCHG, 10, 1, -8), mov64_reg(0, 1), X), 0xffffffff },
		{ "xchg32 replaces the low word only", P(st(DW, 10, -8, -1), lddw(1, 0x100000002), atomic(W, BPF_XCHG, 10, 1, -8), ldx(DW, 0, 10, -8), X), 0xffffffff00000002 },
		{ "cmpxchg64 that succeeds", P(st(DW, 10, -8, 5), mov64_imm(0, 5), mov64_imm(1, 9), atomic(DW, BPF_CMPXCHG, 10, 1, -8), ldx(DW, 2, 10, -8), alu64_imm(BPF_MUL, 0, 10), alu64_reg(BPF_ADD, 0, 2), X), 59 },
		{ "cmpxchg64 that fails", P(st(DW, 10, -8, 5), mov64_imm(0, 4), mov64_imm(1, 9), atomic(DW, BPF_CMPXCHG, 10, 1, -8), ldx(DW, 2, 10, -8), alu64_imm(BPF_MUL, 0, 10), alu64_reg(BPF_ADD, 0, 2), X), 55 },
		{ "cmpxchg32 that succeeds zero-extends r0", P(st(DW, 10, -8, 5), lddw(0, 0xffffffff00000005), mov64_imm(1, 9), atomic(W, BPF_CMPXCHG, 10, 1, -8), ldx(DW, 2, 10, -8), alu64_imm(BPF_MUL, 0, 10), alu64_reg(BPF_ADD, 0, 2), X), 59 },
		{ "cmpxchg32 that fails zero-extends r0", P(st(DW, 10, -8, 5), lddw(0, 0xffffffff00000004), mov64_imm(1, 9), atomic(W, BPF_CMPXCHG, 10, 1, -8), ldx(DW, 2, 10, -8), alu64_imm(BPF_MUL, 0, 10), alu64_reg(BPF_ADD, 0, 2), X), 55 },
		{ "cmpxchg64 with r0 as the source that fails loads the old value into r0", P(st(DW, 10, -8, 5), mov64_imm(0, 4), atomic(DW, BPF_CMPXCHG, 10, 0, -8), X), 5 },
		{ "cmpxchg32 with r0 as the source that fails loads the old value into r0", P(st(DW, 10, -8, 5), lddw(0, 0xffffffff00000004), atomic(W, BPF_CMPXCHG, 10, 0, -8), X), 5 },
		{ "cmpxchg64 with r0 as the source that succeeds", P(st(DW, 10, -8, 5), mov64_imm(0, 5), atomic(DW, BPF_CMPXCHG, 10, 0, -8), ldx(DW, 1, 10, -8), alu64_reg(BPF_ADD, 0, 1), X), 10 },
		{ "cmpxchg with r0 as the base compares with the pointer", P(st(DW, 10, -8, 42), mov64_reg(0, 10), mov64_imm(1, 9), atomic(DW, BPF_CMPXCHG, 0, 1, -8), X), 42 },
		{ "atomics through r9 (r15 base)", P(mov64_reg(9, 10), st(DW, 10, -16, 3), mov64_imm(8, 4), atomic(DW, BPF_ADD | BPF_FETCH, 9, 8, -16), ldx(DW, 0, 9, -16), alu64_reg(BPF_ADD, 0, 8), X), 10 },
	};
}

// Two threads add to shared counters with every kind of atomic; the totals
// must be exact.
void test_atomics_two_threads()
{
	const int N = 200000;
	const uint8_t DW = BPF_DW, W = BPF_W;
	// r1 = counters. [0] lock add, [8] fetch_add32, [16] cmpxchg loop,
	// [24] xor toggles, [32] fetch_or/fetch_and pairs, [40] xchg target.
	code loop = P(mov64_imm(2, 1), atomic(DW, BPF_ADD, 1, 2, 0),
		      mov64_imm(2, 1), atomic(W, BPF_ADD | BPF_FETCH, 1, 2, 8),
		      ldx(DW, 0, 1, 16),
		      // retry:
		      mov64_reg(3, 0), alu64_imm(BPF_ADD, 3, 1), mov64_reg(4, 0),
		      atomic(DW, BPF_CMPXCHG, 1, 3, 16), jmp_reg(BPF_JNE, 0, 4, -5),
		      mov64_imm(2, 1), atomic(DW, BPF_XOR, 1, 2, 24),
		      mov64_imm(2, 2), atomic(DW, BPF_OR | BPF_FETCH, 1, 2, 32),
		      mov64_imm(2, -3), atomic(DW, BPF_AND | BPF_FETCH, 1, 2, 32),
		      mov64_imm(2, 7), atomic(DW, BPF_XCHG, 1, 2, 40));
	const int16_t back = static_cast<int16_t>(-(static_cast<int>(loop.size()) + 2));
	code prog = P(mov64_imm(6, 0), loop, alu64_imm(BPF_ADD, 6, 1),
		      jmp_imm(BPF_JLT, 6, N, back), mov64_imm(0, 0), exit_insn());
	for (const variant &v : g_variants) {
		auto r = build(prog, v);
		if (!r) {
			check(false, "atomics: compile [%s]: %s", v.name.c_str(), r.error().message.c_str());
			continue;
		}
		alignas(8) uint64_t counters[6] = {};
		std::atomic<int> ready{ 0 };
		std::atomic<bool> ok{ true };
		auto work = [&] {
			ready++;
			while (ready.load() < 2) {
			}
			auto res = (*r)->ex->run(counters, sizeof counters);
			if (!res)
				ok = false;
		};
		std::thread t1(work), t2(work);
		t1.join();
		t2.join();
		check(ok, "atomics: both runs succeed [%s]", v.name.c_str());
		check(counters[0] == 2u * N, "atomics: lock add from two threads counts %d [%s]: got %" PRIu64, 2 * N, v.name.c_str(), counters[0]);
		check((counters[1] & 0xffffffff) == 2u * N, "atomics: fetch_add32 from two threads counts %d [%s]: got %" PRIu64, 2 * N, v.name.c_str(), counters[1]);
		check(counters[2] == 2u * N, "atomics: cmpxchg loops from two threads count %d [%s]: got %" PRIu64, 2 * N, v.name.c_str(), counters[2]);
		check(counters[3] == 0, "atomics: an even number of xor toggles is 0 [%s]: got %" PRIu64, v.name.c_str(), counters[3]);
		check(counters[4] == 0, "atomics: fetch_or 2 then fetch_and ~2 ends at 0 [%s]: got %" PRIu64, v.name.c_str(), counters[4]);
		check(counters[5] == 7, "atomics: xchg leaves 7 [%s]: got %" PRIu64, v.name.c_str(), counters[5]);
	}
}

// --------------------------------------------------------- bounds checks

void test_bounds_checks()
{
	alignas(8) static uint8_t ro[64];
	alignas(8) static uint8_t rw[64];
	for (int i = 0; i < 64; i++)
		ro[i] = static_cast<uint8_t>(i + 1);
	auto setup = [](program &p) {
		p.regions = { { reinterpret_cast<uint64_t>(ro), sizeof ro, false },
			      { reinterpret_cast<uint64_t>(rw), sizeof rw, true } };
	};
	const uint64_t ro_addr = reinterpret_cast<uint64_t>(ro);
	const uint64_t rw_addr = reinterpret_cast<uint64_t>(rw);
	uint64_t ro56;
	std::memcpy(&ro56, ro + 56, 8);
	const code X = exit_insn();

	struct row {
		const char *name;
		code prog;
		std::optional<uint64_t> value; // else EFAULT
		uint32_t pc = 0;
		const char *dir = "load";
		uint32_t size = 8;
		int64_t addr_from_ctx = 0; // expected fault address - ctx
		bool addr_absolute = false;
		uint64_t addr = 0;
	};
	std::vector<row> rows = {
		{ "a load inside the context", P(ldx(BPF_DW, 0, 1, 8), X), 0x2200 },
		{ "a load crossing the end of the context faults", P(ldx(BPF_DW, 0, 1, 12), X), std::nullopt, 0, "load", 8, 12 },
		{ "a load just below the context faults", P(ldx(BPF_B, 0, 1, -1), X), std::nullopt, 0, "load", 1, -1 },
		{ "a store to a read-only region faults", P(lddw(2, ro_addr), st(BPF_DW, 2, 0, 1), X), std::nullopt, 2, "store", 8, 0, true, ro_addr },
		{ "a load at the end of a read-only region", P(lddw(2, ro_addr), ldx(BPF_DW, 0, 2, 56), X), ro56 },
		{ "a load crossing the end of a region faults", P(lddw(2, ro_addr), ldx(BPF_DW, 0, 2, 57), X), std::nullopt, 2, "load", 8, 0, true, ro_addr + 57 },
		{ "a store to a writable region", P(lddw(2, rw_addr), st(BPF_DW, 2, 8, 77), ldx(BPF_DW, 0, 2, 8), X), 77 },
		{ "the stack through another register", P(mov64_reg(7, 10), alu64_imm(BPF_ADD, 7, -16), st(BPF_DW, 7, 0, 5), ldx(BPF_DW, 0, 7, 0), X), 5 },
		{ "the bottom of the stack area", P(mov64_reg(7, 10), alu64_imm(BPF_ADD, 7, -4096), st(BPF_DW, 7, 0, 9), ldx(BPF_DW, 0, 7, 0), X), 9 },
		{ "a load below the stack area faults", P(mov64_reg(7, 10), alu64_imm(BPF_ADD, 7, -4097), ldx(BPF_B, 0, 7, 0), X), std::nullopt, 2, "load", 1 },
		{ "a load above the stack area faults", P(ldx(BPF_DW, 0, 10, 0), X), std::nullopt, 0, "load", 8 },
		{ "a null pointer load faults", P(mov64_imm(2, 0), ldx(BPF_DW, 0, 2, 0), X), std::nullopt, 1, "load", 8, 0, true, 0 },
		{ "an atomic add to a read-only region faults", P(lddw(2, ro_addr), mov64_imm(1, 1), atomic(BPF_DW, BPF_ADD, 2, 1, 0), X), std::nullopt, 3, "store", 8, 0, true, ro_addr },
		{ "an atomic fetch_or on the context", P(mov64_imm(2, 0x11), atomic(BPF_DW, BPF_OR | BPF_FETCH, 1, 2, 0), ldx(BPF_DW, 0, 1, 0), alu64_reg(BPF_ADD, 0, 2), X), 0x1111 + 0x1100 },
		{ "a cmpxchg on a writable region", P(lddw(2, rw_addr), st(BPF_DW, 2, 16, 3), mov64_imm(0, 3), mov64_imm(3, 8), atomic(BPF_DW, BPF_CMPXCHG, 2, 3, 16), ldx(BPF_DW, 0, 2, 16), X), 8 },
		{ "the slow path keeps r0-r5",
		  P(lddw(2, rw_addr), st(BPF_DW, 2, 0, 0x40), mov64_imm(0, 1), mov64_imm(3, 3), mov64_imm(4, 4), mov64_imm(5, 5),
		    ldx(BPF_DW, 6, 2, 0), alu64_reg(BPF_ADD, 0, 3), alu64_reg(BPF_ADD, 0, 4), alu64_reg(BPF_ADD, 0, 5),
		    alu64_reg(BPF_ADD, 0, 6), ldx(BPF_DW, 7, 1, 0), alu64_reg(BPF_ADD, 0, 7), X),
		  1 + 3 + 4 + 5 + 0x40 + 0x1100 },
		{ "a fault in a subprogram ends the whole run", P(mov64_imm(6, 0), call_local(1), X, ldx(BPF_DW, 0, 6, 0), X), std::nullopt, 3, "load", 8, 0, true, 0 },
		{ "a load through a copy of a null pointer faults", P(mov64_imm(2, 0), mov64_reg(3, 2), ldx(BPF_DW, 0, 3, 0), X), std::nullopt, 2, "load", 8, 0, true, 0 },
		{ "a store in a loop through a loop constant to a read-only region faults",
		  P(mov64_imm(1, 0), lddw(2, ro_addr), alu64_reg(BPF_ADD, 2, 1), st(BPF_DW, 2, 0, 1), alu64_imm(BPF_ADD, 1, 8), jmp_imm(BPF_JNE, 1, 16, -6), X),
		  std::nullopt, 4, "store", 8, 0, true, ro_addr },
		{ "a load in a loop through a loop constant past a region's end faults",
		  P(mov64_imm(1, 0), lddw(2, ro_addr), ldx(BPF_DW, 0, 2, 57), alu64_imm(BPF_ADD, 1, 1), jmp_imm(BPF_JNE, 1, 2, -5), X),
		  std::nullopt, 3, "load", 8, 0, true, ro_addr + 57 },
	};
	for (const variant &v : g_variants) {
		if (!v.bounds)
			continue;
		for (const row &w : rows) {
			alignas(8) uint8_t ctx[16] = {};
			const uint64_t c0 = 0x1100, c1 = 0x2200;
			std::memcpy(ctx, &c0, 8);
			std::memcpy(ctx + 8, &c1, 8);
			auto r = run_once(w.prog, v, ctx, sizeof ctx, setup);
			if (w.value) {
				check(r.ok() && *r == *w.value, "bounds: %s [%s]: expected %s, got %s", w.name,
				      v.name.c_str(), hex(*w.value).c_str(),
				      r ? hex(*r).c_str() : r.error().message.c_str());
				continue;
			}
			char want[128];
			int n = std::snprintf(want, sizeof want, "%u: out of bounds memory %s of %u bytes at ",
					      w.pc, w.dir, w.size);
			if (w.addr_absolute || w.addr_from_ctx)
				std::snprintf(want + n, sizeof want - n, "0x%" PRIx64 " ",
					      w.addr_absolute ? w.addr :
								reinterpret_cast<uint64_t>(ctx) + w.addr_from_ctx);
			check(!r && r.error().code == EFAULT && r.error().message.rfind(want, 0) == 0,
			      "bounds: %s [%s]: expected EFAULT '%s...', got %s", w.name, v.name.c_str(), want,
			      r ? hex(*r).c_str() : r.error().message.c_str());
		}
	}

	// One executor: a good run, a fault, a good run again.
	for (const variant &v : g_variants) {
		if (!v.bounds)
			continue;
		auto r = build(P(ldx(BPF_DW, 2, 1, 0), ldx(BPF_DW, 0, 2, 0), exit_insn()), v, setup);
		if (!r) {
			check(false, "bounds: compile: %s", r.error().message.c_str());
			continue;
		}
		std::memcpy(rw, "\x2a\0\0\0\0\0\0\0", 8);
		uint64_t good[1] = { rw_addr }, bad[1] = { 8 };
		auto a = (*r)->ex->run(good, sizeof good);
		auto b = (*r)->ex->run(bad, sizeof bad);
		auto c = (*r)->ex->run(good, sizeof good);
		check(a.ok() && *a == 42 && !b && b.error().code == EFAULT && c.ok() && *c == 42,
		      "bounds: a run after a fault succeeds [%s]", v.name.c_str());
	}
}

// Without bounds checks no check code is emitted: ldxdw r0, [r1+8] is the
// single instruction mov rax, [rdi+8] (48 8b 47 08).
void test_no_check_code()
{
	code prog = P(ldx(BPF_DW, 0, 1, 8), exit_insn());
	const uint8_t mov[] = { 0x48, 0x8b, 0x47, 0x08 };
	for (bool bounds : { false, true }) {
		variant v{ "", true, { false }, bounds };
		auto r = build(prog, v);
		if (!r) {
			check(false, "codegen: compile: %s", r.error().message.c_str());
			continue;
		}
		auto code_bytes = jit_x64::code_of(*(*r)->ex);
		const bool has = std::search(code_bytes.begin(), code_bytes.end(), std::begin(mov),
					     std::end(mov)) != code_bytes.end();
		check(has == !bounds, "codegen: ldxdw is a bare mov %s bounds checks",
		      bounds ? "only without" : "without");
	}
	// Short jumps: a 3-instruction loop is at most a few dozen bytes.
	{
		variant v{ "", true, { false }, false };
		auto small = build(P(mov64_imm(0, 0), alu64_imm(BPF_ADD, 0, 1), jmp_imm(BPF_JLT, 0, 5, -2), exit_insn()), v);
		auto big = build(P(mov64_imm(0, 0), repeat(200, alu64_imm(BPF_ADD, 0, 1)), jmp_imm(BPF_JLT, 0, 5, -201), exit_insn()), v);
		if (small && big) {
			// Same program but the loop body: the difference is 199
			// adds of 4 bytes plus a rel8 jcc turned rel32 (+4).
			const long d = long(jit_x64::code_of(*(*big)->ex).size()) -
				       long(jit_x64::code_of(*(*small)->ex).size());
			check(d == 199 * 4 + 4, "codegen: short loops use rel8 jumps, long ones rel32 (size difference %ld, expected %d)", d, 199 * 4 + 4);
		}
	}
}

// ------------------------------------------------ call_function & misc

void test_call_function()
{
	// pc 2: r0 = r1 + 2 r2 + 3 r3 + 4 r4 + 5 r5, using the stack and r6.
	code prog = P(mov64_imm(0, 0), exit_insn(),
		      mov64_reg(0, 1), mov64_reg(6, 2), alu64_imm(BPF_LSH, 6, 1), alu64_reg(BPF_ADD, 0, 6),
		      alu64_imm(BPF_MUL, 3, 3), alu64_reg(BPF_ADD, 0, 3), alu64_imm(BPF_MUL, 4, 4),
		      stx(BPF_DW, 10, 4, -8), ldx(BPF_DW, 4, 10, -8), alu64_reg(BPF_ADD, 0, 4),
		      alu64_imm(BPF_MUL, 5, 5), alu64_reg(BPF_ADD, 0, 5), exit_insn());
	for (const variant &v : g_variants) {
		auto r = build(prog, v, [](program &p) { p.function_starts = { 0, 2 }; });
		if (!r) {
			check(false, "call_function: compile: %s", r.error().message.c_str());
			continue;
		}
		const uint64_t args[5] = { 1, 2, 3, 4, 5 };
		check((*r)->ex->call_function(2, args) == 55, "call_function runs a callback with r1-r5 [%s]", v.name.c_str());
		check((*r)->ex->call_function(0, args) == 0, "call_function runs the main function [%s]", v.name.c_str());
		check((*r)->ex->call_function(5, args) == 0, "call_function of a pc that starts no function returns 0 [%s]", v.name.c_str());
		check((*r)->ex->compile_time_ns() > 0, "compile_time_ns is measured [%s]", v.name.c_str());
	}
}

// ----------------------------------------------- through the vm: tail calls

// The vm backends of the tests that go through the vm class.
std::vector<backend> test_backends()
{
	std::vector<backend> out{ backend::jit_x64, backend::interpreter };
	if (backend_available(backend::llvm))
		out.push_back(backend::llvm);
	return out;
}

struct tail_env {
	std::vector<const vm *> progs;
};

const vm *resolve_tail(void *user, uint64_t prog_array, uint64_t index)
{
	auto *env = static_cast<tail_env *>(user);
	if (prog_array != 7 || index >= env->progs.size())
		return nullptr;
	return env->progs[index];
}

std::unique_ptr<vm> load_vm(backend b, const code &c, tail_env *env, bool bounds = false)
{
	vm_options o;
	o.bounds_check = bounds;
	// These programs test the JIT against the interpreter, with r1 as
	// plain memory: the machine, not the verifier's type discipline.
	o.type_check = false;
	auto v = std::make_unique<vm>(b, o);
	(void)v->register_helper(any_args_proto(HELPER_SUM, "weighted_sum", weighted_sum));
	(void)v->register_helper(any_args_proto(HELPER_LOOP, "loop", loop_helper));
	if (env)
		v->set_tail_call_resolver(resolve_tail, env);
	if (auto st = v->load(c); !st) {
		check(false, "vm load: %s", st.error().message.c_str());
		return nullptr;
	}
	return v;
}

void test_tail_calls()
{
	for (backend b : test_backends()) {
		const char *bn = backend_name(b).data();
		tail_env env;
		// index 0: returns ctx[0] + 1000.
		auto target = load_vm(b, P(ldx(BPF_DW, 0, 1, 0), alu64_imm(BPF_ADD, 0, 1000), exit_insn()), nullptr);
		// index 1: increments ctx[0] and tail-calls itself; returns ctx[0].
		auto chain = load_vm(b, P(mov64_reg(6, 1), ldx(BPF_DW, 0, 6, 0), alu64_imm(BPF_ADD, 0, 1),
					  stx(BPF_DW, 6, 0, 0), mov64_reg(1, 6), mov64_imm(2, 7), mov64_imm(3, 1),
					  call_helper(12), ldx(BPF_DW, 0, 6, 0), exit_insn()),
				     &env);
		// index 2: as 1 but returns the r0 of its failing tail call.
		auto chain_r0 = load_vm(b, P(mov64_reg(6, 1), ldx(BPF_DW, 0, 6, 0), alu64_imm(BPF_ADD, 0, 1),
					     stx(BPF_DW, 6, 0, 0), mov64_reg(1, 6), mov64_imm(2, 7), mov64_imm(3, 2),
					     call_helper(12), exit_insn()),
					&env);
		if (!target || !chain || !chain_r0)
			return;
		env.progs = { target.get(), chain.get(), chain_r0.get() };

		struct row {
			const char *name;
			code prog;
			uint64_t expect;
			uint64_t ctx_after;
		};
		const uint64_t enoent = static_cast<uint64_t>(-int64_t(ENOENT));
		const uint64_t eloop = static_cast<uint64_t>(-int64_t(ELOOP));
		std::vector<row> rows = {
			{ "a tail call's result is the program's", P(mov64_imm(2, 7), mov64_imm(3, 0), call_helper(12), mov64_imm(0, 5), exit_insn()), 1005, 5 },
			{ "a tail call to an empty slot falls through with -ENOENT", P(mov64_imm(2, 7), mov64_imm(3, 9), call_helper(12), exit_insn()), enoent, 5 },
			{ "a tail call from a subprogram ends the whole program", P(call_local(2), alu64_imm(BPF_ADD, 0, 1), exit_insn(), mov64_imm(2, 7), mov64_imm(3, 0), call_helper(12), mov64_imm(0, 3), exit_insn()), 1005, 5 },
			{ "callx of id 12 is a tail call", P(mov64_imm(6, 12), mov64_imm(2, 7), mov64_imm(3, 0), callx(6), mov64_imm(0, 5), exit_insn()), 1005, 5 },
			{ "a chain makes MAX_TAIL_CALL_CNT tail calls", P(mov64_imm(2, 7), mov64_imm(3, 1), call_helper(12), exit_insn()), 5 + MAX_TAIL_CALL_CNT, 5 + MAX_TAIL_CALL_CNT },
			{ "the tail call past the limit returns -ELOOP", P(mov64_imm(2, 7), mov64_imm(3, 2), call_helper(12), exit_insn()), eloop, 5 + MAX_TAIL_CALL_CNT },
		};
		for (const row &w : rows) {
			auto main = load_vm(b, w.prog, &env);
			if (!main)
				continue;
			uint64_t ctx[2] = { 5, 0 };
			auto r = main->exec(ctx, sizeof ctx);
			check(r.ok() && *r == w.expect && ctx[0] == w.ctx_after,
			      "tail call: %s [%s]: expected %s (ctx %" PRIu64 "), got %s (ctx %" PRIu64 ")", w.name, bn,
			      hex(w.expect).c_str(), w.ctx_after, r ? hex(*r).c_str() : r.error().message.c_str(), ctx[0]);
		}
	}
}

// A helper runs callbacks (BPF_PSEUDO_FUNC) that use the caller's stack
// through a pointer; in bounds-check mode that is allowed, and a callback
// that faults fails the run of the program that called the helper.
void test_callbacks()
{
	auto prog = [](bool fault) {
		code cb = fault ? P(mov64_imm(3, 0), ldx(BPF_DW, 3, 3, 0), mov64_imm(0, 0), exit_insn())
				: P(ldx(BPF_DW, 3, 2, 0), alu64_reg(BPF_ADD, 3, 1), stx(BPF_DW, 2, 3, 0), mov64_imm(0, 0), exit_insn());
		code pf = lddw(2, 0);
		pf[0].src_reg = BPF_PSEUDO_FUNC;
		pf[0].imm = 9 - 2 - 1;
		return P(st(BPF_DW, 10, -8, 0), mov64_imm(1, 10), pf, mov64_reg(3, 10), alu64_imm(BPF_ADD, 3, -8),
			 call_helper(HELPER_LOOP), ldx(BPF_DW, 0, 10, -8), exit_insn(), cb);
	};
	for (backend b : test_backends()) {
		const char *bn = backend_name(b).data();
		for (bool bounds : { false, true }) {
			auto v = load_vm(b, prog(false), nullptr, bounds);
			if (!v)
				continue;
			auto r = v->exec(nullptr, 0);
			check(r.ok() && *r == 45, "callbacks: a callback adds to its caller's stack%s [%s]: got %s",
			      bounds ? " under bounds checks" : "", bn, r ? hex(*r).c_str() : r.error().message.c_str());
		}
		auto v = load_vm(b, prog(true), nullptr, true);
		if (!v)
			continue;
		auto r = v->exec(nullptr, 0);
		check(!r && r.error().code == EFAULT && r.error().message.rfind("10: out of bounds memory load of 8 bytes at 0x0 ", 0) == 0,
		      "callbacks: a faulting callback fails the run with EFAULT [%s]: got %s", bn,
		      r ? hex(*r).c_str() : r.error().message.c_str());
	}
}

// ------------------------------------------- random differential programs

// Generates valid programs without undefined reads: every register is set
// first, the stack frame is filled, memory is the frame (through r10 or r9
// = r10 - 256), jumps go forward except for one counted loop in r8, and r1-r5
// are set again after each helper call (calls scratch them).
class program_generator {
    public:
	explicit program_generator(uint64_t seed) : rng_(seed)
	{
	}

	code generate()
	{
		units_.clear();
		for (uint8_t r = 0; r <= 7; r++)
			unit(lddw(r, value()));
		unit(mov64_imm(8, 0));
		unit(mov64_reg(9, 10));
		unit(alu64_imm(BPF_ADD, 9, -256));
		for (int off = -512; off < 0; off += 8)
			unit(st(BPF_DW, 10, static_cast<int16_t>(off), static_cast<int32_t>(value())));
		const size_t body = 10 + pick(60);
		for (size_t i = 0; i < body; i++)
			random_unit(true);
		// Fold every register and a few stack words into r0.
		for (uint8_t r = 1; r <= 7; r++) {
			unit(alu64_imm(BPF_MUL, 0, 0x1000193));
			unit(alu64_reg(BPF_XOR, 0, r));
		}
		for (int k = 0; k < 6; k++) {
			unit(ldx(BPF_DW, 1, 10, static_cast<int16_t>(-8 - 8 * pick(64))));
			unit(alu64_imm(BPF_MUL, 0, 31));
			unit(alu64_reg(BPF_ADD, 0, 1));
		}
		unit(exit_insn());
		return link();
	}

    private:
	struct pending_jump {
		size_t unit;
		size_t target_unit;
	};
	struct loop_range {
		size_t head; // first unit of the body
		size_t tail; // the jne back to head
	};

	uint64_t pick(uint64_t n)
	{
		return rng_() % n;
	}

	uint64_t value()
	{
		static const uint64_t edges[] = { 0, 1, 2, 7, 31, 32, 63, 64, 0x7f, 0x80, 0xff, 0x7fff, 0x8000,
						  0x7fffffff, 0x80000000, 0xffffffff, 0x100000000, I64MIN,
						  0x7fffffffffffffff, ALL, ALL - 1 };
		switch (pick(3)) {
		case 0:
			return edges[pick(sizeof edges / sizeof edges[0])];
		case 1:
			return static_cast<uint64_t>(static_cast<int64_t>(static_cast<int8_t>(rng_())));
		default:
			return rng_();
		}
	}

	int32_t imm()
	{
		return static_cast<int32_t>(static_cast<uint32_t>(value()));
	}

	// Registers a unit may write: r0-r7. Sources may also read the loop
	// counter r8; r9 (a stack address) and r10 only serve as bases,
	// their values differ between backends.
	uint8_t reg(bool with_r8 = false)
	{
		return static_cast<uint8_t>(pick(with_r8 ? 9 : 8));
	}

	void unit(code c)
	{
		units_.push_back(std::move(c));
	}

	int16_t frame_off(uint32_t size)
	{
		// Somewhere in the frame, through r10 or r9 (= r10 - 256).
		return static_cast<int16_t>(-static_cast<int>(size) - static_cast<int>(pick(512 - size + 1)));
	}

	void random_unit(bool allow_loop)
	{
		static const uint8_t alu_ops[] = { BPF_ADD, BPF_SUB, BPF_MUL, BPF_DIV, BPF_OR, BPF_AND, BPF_LSH,
						   BPF_RSH, BPF_MOD, BPF_XOR, BPF_MOV, BPF_ARSH };
		static const uint8_t jmp_ops[] = { BPF_JEQ, BPF_JGT, BPF_JGE, BPF_JSET, BPF_JNE, BPF_JSGT,
						   BPF_JSGE, BPF_JLT, BPF_JLE, BPF_JSLT, BPF_JSLE };
		static const uint8_t sizes[] = { BPF_B, BPF_H, BPF_W, BPF_DW };
		static const uint32_t bytes[] = { 1, 2, 4, 8 };
		const uint8_t d = reg();
		switch (pick(17)) {
		case 0:
		case 1:
		case 2:
		case 3: {
			const uint8_t op = alu_ops[pick(sizeof alu_ops)];
			const bool is64 = pick(2);
			int16_t off = (op == BPF_DIV || op == BPF_MOD) ? static_cast<int16_t>(pick(2)) : 0;
			const bool x = pick(2);
			if (op == BPF_MOV && x && pick(2)) {
				static const int16_t sx64[] = { 8, 16, 32 }, sx32[] = { 8, 16 };
				off = is64 ? sx64[pick(3)] : sx32[pick(2)];
			}
			if (x)
				unit(is64 ? alu64_reg(op, d, reg(true), off) : alu32_reg(op, d, reg(true), off));
			else
				unit(is64 ? alu64_imm(op, d, imm(), off) : alu32_imm(op, d, imm(), off));
			return;
		}
		case 4: {
			const int32_t widths[] = { 16, 32, 64 };
			const int32_t w = widths[pick(3)];
			switch (pick(4)) {
			case 0:
				unit(le(d, w));
				return;
			case 1:
				unit(be(d, w));
				return;
			case 2:
				unit(bswap(d, w));
				return;
			default:
				unit(pick(2) ? neg64(d) : neg32(d));
				return;
			}
		}
		case 5:
			unit(lddw(d, value()));
			return;
		case 6:
		case 7: {
			const size_t s = pick(4);
			const bool via9 = pick(2);
			const int16_t off = static_cast<int16_t>(frame_off(bytes[s]) + (via9 ? 256 : 0));
			const uint8_t base = via9 ? 9 : 10;
			switch (pick(4)) {
			case 0:
				unit(ldx(sizes[s], d, base, off));
				return;
			case 1:
				unit(s == 3 ? ldx(BPF_DW, d, base, off) : ldxs(sizes[s], d, base, off));
				return;
			case 2:
				unit(st(sizes[s], base, off, imm()));
				return;
			default:
				unit(stx(sizes[s], base, reg(), off));
				return;
			}
		}
		case 8: {
			static const int32_t ops[] = { BPF_ADD, BPF_OR, BPF_AND, BPF_XOR, BPF_ADD | BPF_FETCH,
						       BPF_OR | BPF_FETCH, BPF_AND | BPF_FETCH, BPF_XOR | BPF_FETCH,
						       BPF_XCHG, BPF_CMPXCHG };
			const bool dw = pick(2);
			const int16_t off = static_cast<int16_t>(frame_off(dw ? 8 : 4) & ~(dw ? 7 : 3));
			const int32_t op = ops[pick(10)];
			uint8_t src = reg();
			// cmpxchg with r0 as the source has its own rows in
			// atomic_cases(); kept out of here so that one known
			// disagreement does not hide others.
			if (op == BPF_CMPXCHG && src == 0)
				src = 1;
			unit(atomic(dw ? BPF_DW : BPF_W, op, 10, src, off));
			return;
		}
		case 9:
		case 10:
		case 11: {
			// Forward conditional jump over the next few units.
			const uint8_t op = jmp_ops[pick(sizeof jmp_ops)];
			const bool is32 = pick(2), x = pick(2);
			code j = x ? (is32 ? jmp32_reg(op, d, reg(true), 0) : jmp_reg(op, d, reg(true), 0))
				   : (is32 ? jmp32_imm(op, d, imm(), 0) : jmp_imm(op, d, imm(), 0));
			jumps_.push_back({ units_.size(), units_.size() + 1 + pick(6) });
			unit(j);
			return;
		}
		case 12:
			jumps_.push_back({ units_.size(), units_.size() + 1 + pick(4) });
			unit(pick(2) ? ja(0) : gotol(0));
			return;
		case 13:
			// Helper call: r0 = weighted sum; r1-r5 are set again.
			unit(call_helper(HELPER_SUM));
			for (uint8_t r = 1; r <= 5; r++)
				unit(mov64_imm(r, imm()));
			return;
		case 15: {
			// Address arithmetic on r9 and loads through it, the
			// last of which overwrites the address (one unit, so no
			// jump lands inside).
			const bool x = pick(2);
			const int32_t k = static_cast<int32_t>(pick(401)) - 200;
			uint8_t t = reg();
			if (t == d)
				t = static_cast<uint8_t>((d + 1) % 8);
			code g = x ? P(mov64_imm(t, k), mov64_reg(d, 9), alu64_reg(BPF_ADD, d, t))
				   : P(mov64_reg(d, 9), alu64_imm(BPF_ADD, d, k));
			const size_t loads = 1 + pick(3);
			for (size_t i = 0; i < loads; i++) {
				const size_t sz = pick(4);
				const uint8_t out = i + 1 == loads ? d : reg();
				const int16_t off = static_cast<int16_t>(static_cast<int>(pick(81)) - 40);
				// A non-final load into d would leave the address
				// lost; take another register.
				const uint8_t o = (out == d && i + 1 != loads) ? static_cast<uint8_t>((d + 2) % 8) : out;
				g = P(g, sz != 3 && pick(2) ? ldxs(sizes[sz], o, d, off) : ldx(sizes[sz], o, d, off));
			}
			unit(g);
			return;
		}
		case 14:
			if (allow_loop) {
				// r8 counts 1..4 iterations of a small straight
				// body: a backward jump.
				unit(mov64_imm(8, static_cast<int32_t>(1 + pick(4))));
				const size_t head = units_.size();
				const size_t n = 1 + pick(5);
				for (size_t i = 0; i < n; i++)
					random_straight();
				unit(alu64_imm(BPF_SUB, 8, 1));
				loops_.push_back({ head, units_.size() });
				jumps_.push_back({ units_.size(), head });
				unit(jmp_imm(BPF_JNE, 8, 0, 0));
			}
			return;
		default:
			random_straight();
			return;
		}
	}

	// An ALU instruction that leaves r8 alone.
	void random_straight()
	{
		static const uint8_t ops[] = { BPF_ADD, BPF_SUB, BPF_MUL, BPF_DIV, BPF_OR, BPF_AND, BPF_LSH,
					       BPF_RSH, BPF_MOD, BPF_XOR, BPF_MOV, BPF_ARSH };
		uint8_t d = reg();
		if (d == 8)
			d = 0;
		const uint8_t op = ops[pick(sizeof ops)];
		const int16_t off = (op == BPF_DIV || op == BPF_MOD) ? static_cast<int16_t>(pick(2)) : 0;
		if (pick(2))
			unit(alu64_reg(op, d, reg(true), off));
		else
			unit(alu32_imm(op, d, imm(), off));
	}

	code link()
	{
		std::vector<size_t> start(units_.size() + 1, 0);
		for (size_t i = 0; i < units_.size(); i++)
			start[i + 1] = start[i] + units_[i].size();
		for (const pending_jump &j : jumps_) {
			// Past the end of the body: jump to the fold-up code,
			// which begins well after every body unit.
			size_t t = std::min(j.target_unit, units_.size() - 1);
			// A forward jump never enters a counted loop past its
			// counter: it lands after the loop instead.
			for (const loop_range &l : loops_)
				if (j.unit < l.head && t >= l.head && t <= l.tail)
					t = l.tail + 1;
			const int64_t rel = int64_t(start[t]) - int64_t(start[j.unit]) - 1;
			insn &i = units_[j.unit][0];
			if (i.code == (BPF_JMP32 | BPF_JA))
				i.imm = static_cast<int32_t>(rel);
			else
				i.off = static_cast<int16_t>(rel);
		}
		jumps_.clear();
		loops_.clear();
		code out;
		for (const code &u : units_)
			out.insert(out.end(), u.begin(), u.end());
		return out;
	}

	std::mt19937_64 rng_;
	std::vector<code> units_;
	std::vector<pending_jump> jumps_;
	std::vector<loop_range> loops_;
};

void test_differential()
{
	const int N = 3000;
	int compared = 0;
	for (int i = 0; i < N; i++) {
		program_generator gen(0x5eed0000u + static_cast<uint64_t>(i));
		const code prog = gen.generate();
		uint64_t ctx[2] = { 1, 2 };
		auto want = run_once(prog, g_interp, ctx, sizeof ctx);
		if (!want) {
			check(false, "differential #%d: the interpreter fails: %s", i, want.error().message.c_str());
			continue;
		}
		for (const variant &v : g_variants) {
			// LLVM compiles each program in milliseconds, not
			// microseconds: a seeded tenth of them in the suite,
			// every one with --full (bench/README.md).
			if (v.llvm && !g_full_differential && i % 10 != 0)
				continue;
			auto got = run_once(prog, v, ctx, sizeof ctx);
			check(got.ok() && *got == *want, "differential #%d (%zu insns) [%s]: interpreter %s, jit %s", i,
			      prog.size(), v.name.c_str(), hex(*want).c_str(),
			      got ? hex(*got).c_str() : got.error().message.c_str());
		}
		compared++;
	}
	std::printf("differential: %d random programs compared with the interpreter on %zu variants "
		    "(llvm: %s)\n",
		    compared, g_variants.size(), g_full_differential ? "all" : "every tenth");
}

// ------------------------------------------- C programs: clang-19 vs gcc

const char *c_source = R"C(
typedef unsigned long u64;
typedef unsigned int u32;
typedef unsigned short u16;
typedef unsigned char u8;
typedef long s64;
typedef int s32;
typedef short s16;
typedef signed char s8;

u64 checksum(const u8 *p, u64 n)
{
	u64 sum = 0;
	for (u64 i = 0; i + 1 < n; i += 2)
		sum += (u64)p[i] << 8 | p[i + 1];
	if (n & 1)
		sum += (u64)p[n - 1] << 8;
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return (u16)~sum;
}

u64 fnv1a(const u8 *p, u64 n)
{
	u64 h = 0xcbf29ce484222325UL;
	for (u64 i = 0; i < n; i++) {
		h ^= p[i];
		h *= 0x100000001b3UL;
	}
	return h;
}

u64 sieve(u8 *p, u64 n)
{
	u64 count = 0;
	for (u64 i = 0; i < n; i++)
		p[i] = 1;
	for (u64 i = 2; i < n; i++) {
		if (!p[i])
			continue;
		count++;
		for (u64 j = i * i; j < n; j += i)
			p[j] = 0;
	}
	return count;
}

u64 copy_words(u64 *p, u64 n)
{
	u64 words = n / 16, acc = 0;
	u64 *dst = p + words;
	for (u64 i = 0; i < words; i++)
		dst[i] = p[i];
	for (u64 i = 0; i < words; i++)
		acc += dst[i] ^ i;
	return acc;
}

struct point {
	s64 x, y;
	s32 w;
	s16 h;
	s8 k;
	u8 flag;
};

static __attribute__((noinline)) u64 sum_points(struct point *pts, u64 n)
{
	u64 s = 0;
	for (u64 i = 0; i < n; i++)
		s += pts[i].x * pts[i].w - pts[i].y + pts[i].h * pts[i].k + pts[i].flag;
	return s;
}

u64 structs(const u8 *p, u64 n)
{
	struct point pts[16];
	if (n == 0)
		return 0;
	for (u64 i = 0; i < 16; i++) {
		pts[i].x = (s8)p[i % n];
		pts[i].y = p[(i * 7) % n] * 1000;
		pts[i].w = -(s32)i;
		pts[i].h = (s16)(p[i % n] << 8);
		pts[i].k = (s8)p[(i + 3) % n];
		pts[i].flag = i & 1;
	}
	return sum_points(pts, 16);
}

static __attribute__((noinline)) u64 mix(u64 a, u64 b, u64 c, u64 d, u64 e)
{
	return (a * 31 + b) ^ (c << 7) ^ (d >> 3) ^ (e * 0x9e3779b97f4a7c15UL);
}

static __attribute__((noinline)) s64 sdivmod(s64 a, s64 b)
{
	if (b == 0)
		return 0;
	return a / b + a % b;
}

u64 math64(const u8 *p, u64 n)
{
	u64 acc = 0;
	for (u64 i = 0; i < n; i++) {
		s64 a = (s64)(p[i] * 0x10001UL) - 0x800000;
		s64 b = (s8)p[(i + 1) % n];
		acc += sdivmod(a, b);
		acc ^= mix(acc, i, p[i], a, b);
		acc += __builtin_bswap64(acc) >> (i & 63);
		acc += (u32)acc / (p[i] | 1) + (s32)acc % 7;
		acc += (u64)(s64)(s16)acc;
	}
	return acc;
}

u64 state_machine(const u8 *p, u64 n)
{
	u64 state = 0, out = 0;
	for (u64 i = 0; i < n; i++) {
		switch ((p[i] + state) % 9) {
		case 0: out += 1; state = 3; break;
		case 1: out ^= i; state = 0; break;
		case 2: out *= 3; state = 5; break;
		case 3: out -= p[i]; state = 1; break;
		case 4: out = out << 1 | out >> 63; state = 7; break;
		case 5: out += (s8)p[i]; state = 2; break;
		case 6: out = ~out; state = 8; break;
		case 7: out >>= 1; state = 4; break;
		default: out += 0x1234; state = 6; break;
		}
	}
	return out;
}

static __attribute__((noinline)) u64 depth3(u64 x)
{
	volatile u64 buf[8];
	for (int i = 0; i < 8; i++)
		buf[i] = x + i;
	return buf[x & 7] * 3;
}

static __attribute__((noinline)) u64 depth2(u64 x)
{
	volatile u64 b[4] = { x, x + 1, x + 2, x + 3 };
	return depth3(b[x & 3]) + b[(x + 1) & 3];
}

static __attribute__((noinline)) u64 depth1(u64 x)
{
	return depth2(x * 2) ^ depth2(x + 1);
}

u64 nested(const u8 *p, u64 n)
{
	u64 s = 0;
	for (u64 i = 0; i < n; i++)
		s += depth1(p[i] + i);
	return s;
}

u64 signed_ops(const u8 *p, u64 n)
{
	s64 acc = -12345;
	for (u64 i = 0; i < n; i++) {
		s32 v = (s32)(p[i] * 0x01010101u);
		s64 w = (s8)p[i];
		acc = acc * 3 + v / (w ? w : 1) - (v >> 5) + w * 8;
		if (acc > 1000000000L || acc < -1000000000L)
			acc %= 1000003;
	}
	return (u64)acc;
}
)C";

struct elf_text {
	code insns;
	std::map<std::string, uint32_t> functions; // global symbol -> pc
};

std::optional<std::string> read_file(const std::string &path)
{
	std::ifstream f(path, std::ios::binary);
	if (!f)
		return std::nullopt;
	std::stringstream ss;
	ss << f.rdbuf();
	return ss.str();
}

// Symbols and call relocations from the object; the instruction bytes from
// llvm-objcopy's .text.
std::optional<elf_text> load_bpf_object(const std::string &obj, const std::string &text_bin, std::string &why)
{
	auto o = read_file(obj), t = read_file(text_bin);
	if (!o || !t) {
		why = "cannot read " + obj;
		return std::nullopt;
	}
	const char *b = o->data();
	Elf64_Ehdr eh;
	std::memcpy(&eh, b, sizeof eh);
	std::vector<Elf64_Shdr> sh(eh.e_shnum);
	std::memcpy(sh.data(), b + eh.e_shoff, eh.e_shnum * sizeof(Elf64_Shdr));
	const char *shstr = b + sh[eh.e_shstrndx].sh_offset;
	int text = -1, symtab = -1, reltext = -1;
	for (int i = 0; i < eh.e_shnum; i++) {
		std::string name = shstr + sh[i].sh_name;
		if (name == ".text")
			text = i;
		else if (name == ".symtab")
			symtab = i;
		else if (name == ".rel.text")
			reltext = i;
	}
	if (text < 0 || symtab < 0 || t->size() != sh[text].sh_size || t->size() % 8) {
		why = "unexpected object layout";
		return std::nullopt;
	}
	elf_text out;
	out.insns.resize(t->size() / 8);
	std::memcpy(out.insns.data(), t->data(), t->size());
	const char *strtab = b + sh[sh[symtab].sh_link].sh_offset;
	std::vector<Elf64_Sym> syms(sh[symtab].sh_size / sizeof(Elf64_Sym));
	std::memcpy(syms.data(), b + sh[symtab].sh_offset, sh[symtab].sh_size);
	for (const Elf64_Sym &s : syms)
		if (ELF64_ST_TYPE(s.st_info) == STT_FUNC && s.st_shndx == text)
			out.functions[strtab + s.st_name] = static_cast<uint32_t>(s.st_value / 8);
	if (reltext >= 0) {
		std::vector<Elf64_Rel> rels(sh[reltext].sh_size / sizeof(Elf64_Rel));
		std::memcpy(rels.data(), b + sh[reltext].sh_offset, sh[reltext].sh_size);
		for (const Elf64_Rel &r : rels) {
			const Elf64_Sym &s = syms[ELF64_R_SYM(r.r_info)];
			const size_t pc = r.r_offset / 8;
			insn &i = out.insns[pc];
			if (ELF64_R_TYPE(r.r_info) != R_BPF_64_32 || i.code != (BPF_JMP | BPF_CALL) || s.st_shndx != text) {
				why = "unsupported relocation at pc " + std::to_string(pc);
				return std::nullopt;
			}
			// libbpf's rule: target = symbol + imm + 1.
			const int64_t target = int64_t(s.st_value / 8) + i.imm + 1;
			i.imm = static_cast<int32_t>(target - int64_t(pc) - 1);
		}
	}
	return out;
}

// Main function at pc 0 that calls `entry` with r1, r2 untouched.
code with_entry(const code &text, uint32_t entry)
{
	return P(call_local(static_cast<int32_t>(entry + 1)), exit_insn(), text);
}

using native_fn = uint64_t (*)(void *, uint64_t);

// Owns the temporary directory with the sources and builds, and the
// loaded native library; removes both when destroyed.
struct c_programs {
	std::string dir;
	elf_text bpf;
	void *so = nullptr;

	c_programs() = default;
	c_programs(const c_programs &) = delete;
	c_programs &operator=(const c_programs &) = delete;
	c_programs(c_programs &&o) noexcept
		: dir(std::exchange(o.dir, {})), bpf(std::move(o.bpf)),
		  so(std::exchange(o.so, nullptr))
	{
	}
	~c_programs()
	{
		if (so)
			dlclose(so);
		if (!dir.empty())
			std::filesystem::remove_all(dir);
	}

	native_fn native(const char *name) const
	{
		return reinterpret_cast<native_fn>(dlsym(so, name));
	}
};

std::optional<c_programs> build_c_programs(std::string &why)
{
	auto have = [](const char *tool) {
		return std::system((std::string("command -v ") + tool + " >/dev/null 2>&1").c_str()) == 0;
	};
	const char *objcopy = have("llvm-objcopy-19") ? "llvm-objcopy-19" : "llvm-objcopy";
	for (const char *tool : { "clang-19", "gcc", objcopy })
		if (!have(tool)) {
			why = std::string(tool) + " not found";
			return std::nullopt;
		}
	char tmpl[] = "/tmp/bpftime-jit-test-XXXXXX";
	if (!mkdtemp(tmpl)) {
		why = "mkdtemp failed";
		return std::nullopt;
	}
	std::optional<c_programs> built(std::in_place);
	c_programs &out = *built;
	out.dir = tmpl;
	{
		std::ofstream f(out.dir + "/progs.c");
		f << c_source;
	}
	const std::string d = out.dir;
	const std::string cmds[] = {
		// -fno-builtin: BPF has no memset/memcpy to turn loops into.
		"clang-19 -target bpf -mcpu=v4 -O2 -fno-builtin -c " + d + "/progs.c -o " + d + "/progs.bpf.o",
		std::string(objcopy) + " -O binary --only-section=.text " + d + "/progs.bpf.o " + d + "/progs.text",
		"gcc -O2 -fno-tree-vectorize -shared -fPIC " + d + "/progs.c -o " + d + "/progs.so",
	};
	for (const std::string &c : cmds)
		if (std::system((c + " 2>" + d + "/err.txt").c_str()) != 0) {
			why = "'" + c + "' failed: " + read_file(d + "/err.txt").value_or("");
			return std::nullopt;
		}
	auto text = load_bpf_object(d + "/progs.bpf.o", d + "/progs.text", why);
	if (!text)
		return std::nullopt;
	out.bpf = std::move(*text);
	out.so = dlopen((d + "/progs.so").c_str(), RTLD_NOW | RTLD_LOCAL);
	if (!out.so) {
		why = dlerror();
		return std::nullopt;
	}
	return built;
}

std::vector<uint8_t> test_bytes(size_t n, uint32_t seed)
{
	std::vector<uint8_t> v(n);
	uint32_t x = seed;
	for (auto &b : v) {
		x = x * 1103515245 + 12345;
		b = static_cast<uint8_t>(x >> 16);
	}
	return v;
}

const char *c_functions[] = { "checksum", "fnv1a", "sieve", "copy_words", "structs",
			      "math64", "state_machine", "nested", "signed_ops" };

void test_c_programs(const c_programs &cp)
{
	const size_t lengths[] = { 0, 1, 2, 3, 7, 64, 255, 1000, 4096 };
	for (const char *fn : c_functions) {
		auto it = cp.bpf.functions.find(fn);
		native_fn nf = cp.native(fn);
		if (it == cp.bpf.functions.end() || !nf) {
			check(false, "C: %s is missing from the BPF object or the native library", fn);
			continue;
		}
		const code prog = with_entry(cp.bpf.insns, it->second);
		std::vector<std::pair<const variant *, std::unique_ptr<runner>>> runners;
		for (const variant &v : g_variants) {
			auto r = build(prog, v);
			if (!r) {
				check(false, "C: %s: compile [%s]: %s", fn, v.name.c_str(), r.error().message.c_str());
				continue;
			}
			runners.emplace_back(&v, std::move(*r));
		}
		for (size_t len : lengths) {
			std::vector<uint8_t> base = test_bytes(len + 8, static_cast<uint32_t>(len * 7 + 1));
			std::vector<uint8_t> nbuf = base;
			const uint64_t want = nf(nbuf.data(), len);
			for (auto &[v, r] : runners) {
				std::vector<uint8_t> jbuf = base;
				auto got = r->ex->run(jbuf.data(), len);
				check(got.ok() && *got == want && jbuf == nbuf,
				      "C: %s(len %zu) [%s]: native %s, jit %s%s", fn, len, v->name.c_str(),
				      hex(want).c_str(), got ? hex(*got).c_str() : got.error().message.c_str(),
				      jbuf == nbuf ? "" : " (buffers differ)");
			}
		}
	}
}

// ------------------------------------------------------------ benchmark

double median(std::vector<double> v)
{
	std::sort(v.begin(), v.end());
	return v[v.size() / 2];
}

template <class F> double time_ns(F &&f, int iters)
{
	std::vector<double> samples;
	for (int rep = 0; rep < 11; rep++) {
		auto t0 = std::chrono::steady_clock::now();
		for (int i = 0; i < iters; i++)
			f();
		auto t1 = std::chrono::steady_clock::now();
		samples.push_back(std::chrono::duration<double, std::nano>(t1 - t0).count() / iters);
	}
	return median(samples);
}

void bench(const c_programs &cp)
{
	std::printf("\nbench: 64 KiB buffer, median of 11; native = gcc -O2 -fno-tree-vectorize\n");
	std::printf("%-14s %12s %12s %8s %14s %8s\n", "function", "native ns", "jit ns", "ratio", "interp ns", "ratio");
	const size_t len = 65536;
	for (const char *fn : { "checksum", "fnv1a", "sieve", "copy_words", "state_machine" }) {
		const code prog = with_entry(cp.bpf.insns, cp.bpf.functions.at(fn));
		variant v{ "jit", true, jit_x64::detect_features(), false };
		auto j = build(prog, v);
		auto in = build(prog, g_interp);
		native_fn nf = cp.native(fn);
		if (!j || !in || !nf)
			continue;
		std::vector<uint8_t> buf = test_bytes(len, 99);
		volatile uint64_t sink = 0;
		const int iters = 20;
		double tn = time_ns([&] { sink = sink + nf(buf.data(), len); }, iters);
		double tj = time_ns([&] { sink = sink + *(*j)->ex->run(buf.data(), len); }, iters);
		double ti = time_ns([&] { sink = sink + *(*in)->ex->run(buf.data(), len); }, 2);
		std::printf("%-14s %12.0f %12.0f %7.2fx %14.0f %7.2fx\n", fn, tn, tj, tj / tn, ti, ti / tn);
	}
}

} // namespace

int main(int argc, char **argv)
{
	const bool do_bench = argc > 1 && std::strcmp(argv[1], "--bench") == 0;
	g_full_differential = argc > 1 && std::strcmp(argv[1], "--full") == 0;
	init_variants();
	std::printf("variants:");
	for (const variant &v : g_variants)
		std::printf(" %s", v.name.c_str());
	std::printf("\n");

	struct group {
		const char *name;
		std::function<void()> run;
	};
	const group groups[] = {
		{ "alu", [] { run_value_cases("alu", alu_cases()); } },
		{ "jump table", test_jump_table },
		{ "control flow", [] { run_value_cases("control", control_cases()); } },
		{ "calls", [] { run_value_cases("calls", call_cases()); } },
		{ "call errors", test_call_errors },
		{ "memory", run_memory_cases },
		{ "branch over jump", test_branch_over_jump },
		{ "peepholes", [] { run_value_cases("peepholes", peephole_cases()); } },
		{ "lddw addresses", test_lddw_addresses },
		{ "loop constants", test_loop_constants },
		{ "atomics", [] { run_value_cases("atomics", atomic_cases()); } },
		{ "atomics, two threads", test_atomics_two_threads },
		{ "bounds checks", test_bounds_checks },
		{ "code shape", test_no_check_code },
		{ "call_function", test_call_function },
		{ "tail calls", test_tail_calls },
		{ "callbacks", test_callbacks },
		{ "differential", test_differential },
	};
	for (const group &g : groups) {
		const int before = g_failures;
		const int checks_before = g_checks;
		g.run();
		std::printf("%-22s %5d checks, %d failed\n", g.name, g_checks - checks_before, g_failures - before);
	}

	std::string why;
	auto cp = build_c_programs(why);
	if (!cp) {
		std::printf("C programs: SKIPPED: %s\n", why.c_str());
	} else {
		const int before = g_failures;
		const int checks_before = g_checks;
		test_c_programs(*cp);
		std::printf("%-22s %5d checks, %d failed\n", "C programs", g_checks - checks_before, g_failures - before);
		if (do_bench)
			bench(*cp);
	}

	std::printf("\n%d checks, %d failed\n", g_checks, g_failures);
	return g_failures == 0 ? 0 : 1;
}
