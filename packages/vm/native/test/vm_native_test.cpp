// vm_native_test.cpp: native tests of the vm core (opcode table, verifier,
// interpreter, vm, callbacks, tail calls, bounds checking).
//
//   bpftime-vm-native-test            every backend that is built
//   bpftime-vm-native-test -v         also print each passing case
//
// Each case is named for its behaviour; expected values are written from
// RFC 9669 (or the kernel, for verifier rules), never from our output. The
// run cases execute on the interpreter, on the interpreter in bounds-check
// mode, on the x86-64 JIT, and on the LLVM backend with and without bounds
// checks where its plugin is built (a backend that answers ENOTSUP is
// skipped, saying so). Exit status 0 when every case passes.
#include <bpftime/vm/opcodes.hpp>
#include <bpftime/vm/verifier.hpp>
#include <bpftime/vm/vm.hpp>

#include <atomic>
#include <csetjmp>
#include <csignal>
#include <sched.h>
#include <ucontext.h>
#include <cstdarg>
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <initializer_list>
#include <new>
#include <optional>
#include <string>
#include <utility>
#include <vector>

using namespace bpftime::vm;

// ---------------------------------------------------------------------------
// Allocation counting: the exec path must not allocate.

static std::atomic<bool> g_count_allocs{ false };
static std::atomic<uint64_t> g_allocs{ 0 };

void *operator new(size_t n)
{
	if (g_count_allocs.load(std::memory_order_relaxed))
		g_allocs.fetch_add(1, std::memory_order_relaxed);
	if (void *p = std::malloc(n ? n : 1))
		return p;
	throw std::bad_alloc();
}
void *operator new[](size_t n)
{
	return operator new(n);
}
void operator delete(void *p) noexcept
{
	std::free(p);
}
void operator delete[](void *p) noexcept
{
	std::free(p);
}
void operator delete(void *p, size_t) noexcept
{
	std::free(p);
}
void operator delete[](void *p, size_t) noexcept
{
	std::free(p);
}

// ---------------------------------------------------------------------------
// A tiny assembler: each builder returns the slots of one instruction.

using code = std::vector<insn>;

static code P(std::initializer_list<code> parts)
{
	code out;
	for (const code &c : parts)
		out.insert(out.end(), c.begin(), c.end());
	return out;
}

static code I(uint8_t op, uint8_t dst, uint8_t src, int16_t off, int32_t imm)
{
	return { insn{ op, dst, src, off, imm } };
}

// ALU64/ALU with an immediate or a register; `off` selects sdiv/smod/movsx.
static code alu64(uint8_t op, uint8_t dst, int32_t imm, int16_t off = 0)
{
	return I(BPF_ALU64 | op | BPF_K, dst, 0, off, imm);
}
static code alu64r(uint8_t op, uint8_t dst, uint8_t src, int16_t off = 0)
{
	return I(BPF_ALU64 | op | BPF_X, dst, src, off, 0);
}
static code alu32(uint8_t op, uint8_t dst, int32_t imm, int16_t off = 0)
{
	return I(BPF_ALU | op | BPF_K, dst, 0, off, imm);
}
static code alu32r(uint8_t op, uint8_t dst, uint8_t src, int16_t off = 0)
{
	return I(BPF_ALU | op | BPF_X, dst, src, off, 0);
}
static code mov(uint8_t dst, int32_t imm)
{
	return alu64(BPF_MOV, dst, imm);
}
static code movr(uint8_t dst, uint8_t src)
{
	return alu64r(BPF_MOV, dst, src);
}
static code lddw(uint8_t dst, uint64_t v, uint8_t pseudo = 0)
{
	return { insn{ BPF_LD | BPF_IMM | BPF_DW, dst, pseudo, 0,
		       static_cast<int32_t>(static_cast<uint32_t>(v)) },
		 insn{ 0, 0, 0, 0, static_cast<int32_t>(v >> 32) } };
}
static code jmp(uint8_t op, uint8_t dst, int32_t imm, int16_t off)
{
	return I(BPF_JMP | op | BPF_K, dst, 0, off, imm);
}
static code jmpr(uint8_t op, uint8_t dst, uint8_t src, int16_t off)
{
	return I(BPF_JMP | op | BPF_X, dst, src, off, 0);
}
static code ja(int16_t off)
{
	return I(BPF_JMP | BPF_JA, 0, 0, off, 0);
}
static code exit_()
{
	return I(BPF_JMP | BPF_EXIT, 0, 0, 0, 0);
}
static code call(int32_t id)
{
	return I(BPF_JMP | BPF_CALL, 0, BPF_HELPER_CALL, 0, id);
}
static code call_local(int32_t rel)
{
	return I(BPF_JMP | BPF_CALL, 0, BPF_PSEUDO_CALL, 0, rel);
}
static code call_kfunc(int32_t btf_id)
{
	return I(BPF_JMP | BPF_CALL, 0, BPF_PSEUDO_KFUNC_CALL, 0, btf_id);
}
static code ldx(uint8_t size, uint8_t dst, uint8_t src, int16_t off)
{
	return I(BPF_LDX | BPF_MEM | size, dst, src, off, 0);
}
static code ldxsx(uint8_t size, uint8_t dst, uint8_t src, int16_t off)
{
	return I(BPF_LDX | BPF_MEMSX | size, dst, src, off, 0);
}
static code st(uint8_t size, uint8_t dst, int16_t off, int32_t imm)
{
	return I(BPF_ST | BPF_MEM | size, dst, 0, off, imm);
}
static code stx(uint8_t size, uint8_t dst, uint8_t src, int16_t off)
{
	return I(BPF_STX | BPF_MEM | size, dst, src, off, 0);
}
static code atomic(uint8_t size, int32_t op, uint8_t dst, uint8_t src,
		   int16_t off)
{
	return I(BPF_STX | BPF_ATOMIC | size, dst, src, off, op);
}

constexpr uint8_t R0 = 0, R1 = 1, R2 = 2, R3 = 3, R4 = 4, R5 = 5, R6 = 6,
		  R7 = 7, R9 = 9, R10 = 10;

// ---------------------------------------------------------------------------
// Reporting.

// The cases of this file test the machine: the instruction set, calls,
// callbacks, tail calls and bounds checks, with hand-written programs that
// use r1 as plain memory and numbers as map pointers. They run without the
// verifier's type discipline (vm_options::type_check), as the
// bpf_conformance suite runs ISA programs; the structural passes still run.
// test_types() checks the type discipline itself.
static constexpr bool ISA_ONLY = false;

static int g_failed = 0, g_passed = 0, g_skipped = 0;
static bool g_verbose = false;

[[gnu::format(printf, 2, 3)]] static void check(bool ok, const char *fmt, ...)
{
	char buf[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (ok) {
		g_passed++;
		if (g_verbose)
			std::printf("ok   %s\n", buf);
	} else {
		g_failed++;
		std::printf("FAIL %s\n", buf);
	}
}

static void skip(const char *what, const std::string &why)
{
	g_skipped++;
	std::printf("skip %s: %s\n", what, why.c_str());
}

// ---------------------------------------------------------------------------
// Helpers the test programs call.

static uint64_t h_identity(uint64_t a, uint64_t, uint64_t, uint64_t, uint64_t)
{
	return a;
}
static uint64_t h_digits(uint64_t a, uint64_t b, uint64_t c, uint64_t d,
			 uint64_t e)
{
	return a + 10 * b + 100 * c + 1000 * d + 10000 * e;
}
static uint64_t k_mul3(uint64_t a, uint64_t, uint64_t, uint64_t, uint64_t)
{
	return a * 3;
}
// bpf_loop(nr_loops, callback_fn, callback_ctx, flags): calls the callback
// with (index, ctx) until it returns non-zero; returns the loops done.
static uint64_t h_loop(uint64_t n, uint64_t fn, uint64_t ctx, uint64_t,
		       uint64_t)
{
	uint64_t i = 0;
	while (i < n) {
		const uint64_t stop = invoke_callback(fn, i, ctx, 0, 0, 0);
		i++;
		if (stop)
			break;
	}
	return i;
}

constexpr uint32_t HELPER_IDENTITY = 5, HELPER_DIGITS = 6, HELPER_LOOP = 181,
		   KFUNC_MUL3 = 1234;

// Prototypes of the test helpers: what each reads, as the kernel would
// declare it (bpf_loop is the kernel's).
static helper_proto proto(uint32_t id, std::string_view name, helper_fn fn)
{
	helper_proto p{ .id = id, .name = name, .ret = RET_INTEGER,
			.args = { ARG_ANYTHING, ARG_ANYTHING, ARG_ANYTHING,
				  ARG_ANYTHING, ARG_ANYTHING },
			.fn = fn };
	if (id == HELPER_LOOP)
		p.args = { ARG_ANYTHING, ARG_PTR_TO_FUNC,
			   ARG_PTR_TO_STACK_OR_NULL, ARG_ANYTHING };
	return p;
}

static void register_all(vm &v)
{
	(void)v.register_helper(proto(HELPER_IDENTITY, "identity", h_identity));
	(void)v.register_helper(proto(HELPER_DIGITS, "digits", h_digits));
	(void)v.register_helper(proto(HELPER_LOOP, "bpf_loop", h_loop));
	(void)v.register_kfunc(KFUNC_MUL3, "mul3", k_mul3);
}

// ---------------------------------------------------------------------------
// Run cases: program, optional memory (r1/r2), expected r0.

struct run_case {
	const char *name;
	code prog;
	uint64_t expect;
	std::vector<uint8_t> mem = {};
};

constexpr uint64_t U64_MIN_S = 0x8000000000000000ull;

static code ret(code body)
{
	return P({ body, exit_() });
}

// setup; r0 = 1; if (jump) skip "r0 = 0"; exit  -> 1 when taken
static code taken(code setup, code jump)
{
	return P({ setup, mov(R0, 1), jump, mov(R0, 0), exit_() });
}

static std::vector<run_case> run_cases()
{
	std::vector<run_case> c;
	auto add = [&](const char *n, code p, uint64_t e,
		       std::vector<uint8_t> m = {}) {
		c.push_back({ n, std::move(p), e, std::move(m) });
	};

	// ALU64 / ALU: widths and wrap-around.
	add("add32 wraps and zero-extends the result",
	    ret(P({ mov(R0, -1), alu32(BPF_ADD, R0, 1) })), 0);
	add("add64 sign-extends its immediate",
	    ret(P({ mov(R0, 0), alu64(BPF_ADD, R0, -1) })), ~0ull);
	add("mov32 zero-extends its immediate", ret(alu32(BPF_MOV, R0, -1)),
	    0xffffffffull);
	add("mov64 sign-extends its immediate", ret(mov(R0, -2)),
	    0xfffffffffffffffeull);
	add("sub64 borrows through 64 bits",
	    ret(P({ mov(R0, 5), alu64(BPF_SUB, R0, 7) })), ~0ull - 1);
	add("sub32 of registers zero-extends",
	    ret(P({ mov(R0, 5), mov(R1, 7), alu32r(BPF_SUB, R0, R1) })),
	    0xfffffffeull);
	add("mul32 keeps the low 32 bits of the product",
	    ret(P({ mov(R0, 0x10000), alu32(BPF_MUL, R0, 0x10001) })),
	    0x10000ull);
	add("mul64 of registers",
	    ret(P({ lddw(R0, 0x100000001ull), mov(R1, 3),
		    alu64r(BPF_MUL, R0, R1) })),
	    0x300000003ull);
	add("or/and/xor 64-bit",
	    ret(P({ mov(R0, 0x0f0), alu64(BPF_OR, R0, 0x00f),
		    alu64(BPF_AND, R0, 0x0ff - 0x001),
		    alu64(BPF_XOR, R0, -1) })),
	    ~0x0feull);
	add("xor32 zero-extends",
	    ret(P({ mov(R0, -1), alu32(BPF_XOR, R0, 0x0f) })), 0xfffffff0ull);

	// Division and modulo (RFC 9669 4.1).
	add("div64 by a zero register gives 0",
	    ret(P({ mov(R0, 10), mov(R1, 0), alu64r(BPF_DIV, R0, R1) })), 0);
	add("div32 by a zero immediate gives 0",
	    ret(P({ mov(R0, 10), alu32(BPF_DIV, R0, 0) })), 0);
	add("mod64 by zero leaves dst unchanged",
	    ret(P({ mov(R0, -5), mov(R1, 0), alu64r(BPF_MOD, R0, R1) })),
	    0xfffffffffffffffbull);
	add("mod32 by zero leaves the low 32 bits, zero-extended",
	    ret(P({ lddw(R0, 0x100000005ull), alu32(BPF_MOD, R0, 0) })), 5);
	add("div64 by an immediate of -1 divides by 2^64-1",
	    ret(P({ mov(R0, -1), alu64(BPF_DIV, R0, -1) })), 1);
	add("div64 is unsigned",
	    ret(P({ mov(R0, -2), alu64(BPF_DIV, R0, 2) })),
	    0x7fffffffffffffffull);
	add("div32 is unsigned on the low 32 bits",
	    ret(P({ lddw(R0, 0xfffffffffffffffeull), alu32(BPF_DIV, R0, 2) })),
	    0x7fffffffull);
	add("div32 by an immediate uses it as unsigned 32-bit",
	    ret(P({ mov(R0, -1), alu32(BPF_DIV, R0, -1) })), 1);
	add("mod64 unsigned", ret(P({ mov(R0, 17), alu64(BPF_MOD, R0, 5) })),
	    2);
	add("sdiv64 INT64_MIN / -1 is INT64_MIN",
	    ret(P({ lddw(R0, U64_MIN_S), mov(R1, -1),
		    alu64r(BPF_DIV, R0, R1, 1) })),
	    U64_MIN_S);
	add("smod64 INT64_MIN % -1 is 0",
	    ret(P({ lddw(R0, U64_MIN_S), alu64(BPF_MOD, R0, -1, 1) })), 0);
	add("sdiv64 rounds toward zero",
	    ret(P({ mov(R0, -7), alu64(BPF_DIV, R0, 2, 1) })),
	    static_cast<uint64_t>(-3));
	add("smod64 takes the sign of the dividend",
	    ret(P({ mov(R0, -7), alu64(BPF_MOD, R0, 2, 1) })),
	    static_cast<uint64_t>(-1));
	add("smod64 with a negative divisor",
	    ret(P({ mov(R0, 7), mov(R1, -2), alu64r(BPF_MOD, R0, R1, 1) })),
	    1);
	add("sdiv64 by zero gives 0",
	    ret(P({ mov(R0, -7), alu64(BPF_DIV, R0, 0, 1) })), 0);
	add("smod64 by zero leaves dst",
	    ret(P({ mov(R0, -7), mov(R1, 0), alu64r(BPF_MOD, R0, R1, 1) })),
	    static_cast<uint64_t>(-7));
	add("sdiv32 INT32_MIN / -1 is INT32_MIN, zero-extended",
	    ret(P({ alu32(BPF_MOV, R0, INT32_MIN),
		    alu32(BPF_DIV, R0, -1, 1) })),
	    0x80000000ull);
	add("smod32 INT32_MIN % -1 is 0",
	    ret(P({ alu32(BPF_MOV, R0, INT32_MIN), mov(R1, -1),
		    alu32r(BPF_MOD, R0, R1, 1) })),
	    0);
	add("sdiv32 of negatives, zero-extended",
	    ret(P({ mov(R0, -9), alu32(BPF_DIV, R0, 2, 1) })), 0xfffffffcull);
	add("sdiv32 by zero gives 0",
	    ret(P({ mov(R0, -9), alu32(BPF_DIV, R0, 0, 1) })), 0);
	add("smod32 by zero keeps dst, zero-extended",
	    ret(P({ mov(R0, -1), alu32(BPF_MOD, R0, 0, 1) })), 0xffffffffull);
	add("smod32 -7 % 2 is -1, zero-extended",
	    ret(P({ mov(R0, -7), alu32(BPF_MOD, R0, 2, 1) })), 0xffffffffull);
	add("sdiv32 ignores the upper 32 bits",
	    ret(P({ lddw(R0, 0x7fffffff00000010ull), mov(R1, -4),
		    alu32r(BPF_DIV, R0, R1, 1) })),
	    0xfffffffcull);

	// Shifts: counts are masked.
	add("lsh64 masks a register count to 6 bits",
	    ret(P({ mov(R0, 1), mov(R1, 65), alu64r(BPF_LSH, R0, R1) })), 2);
	add("lsh32 masks an immediate count to 5 bits",
	    ret(P({ mov(R0, 1), alu32(BPF_LSH, R0, 33) })), 2);
	add("lsh32 drops bits above 32",
	    ret(P({ mov(R0, 3), alu32(BPF_LSH, R0, 31) })), 0x80000000ull);
	add("rsh32 is logical and zero-extends",
	    ret(P({ mov(R0, -1), alu32(BPF_RSH, R0, 4) })), 0x0fffffffull);
	add("rsh64 is logical",
	    ret(P({ lddw(R0, U64_MIN_S), alu64(BPF_RSH, R0, 63) })), 1);
	add("arsh64 fills with the sign",
	    ret(P({ mov(R0, -16), alu64(BPF_ARSH, R0, 2) })),
	    static_cast<uint64_t>(-4));
	add("arsh64 masks its count",
	    ret(P({ mov(R0, -16), mov(R1, 66), alu64r(BPF_ARSH, R0, R1) })),
	    static_cast<uint64_t>(-4));
	add("arsh32 fills bit 31 and zero-extends",
	    ret(P({ alu32(BPF_MOV, R0, INT32_MIN), alu32(BPF_ARSH, R0, 4) })),
	    0xf8000000ull);
	add("arsh32 ignores the upper half",
	    ret(P({ lddw(R0, 0x8000000040000000ull), alu32(BPF_ARSH, R0, 1) })),
	    0x20000000ull);

	// neg
	add("neg64", ret(P({ mov(R0, 5), alu64(BPF_NEG, R0, 0) })),
	    static_cast<uint64_t>(-5));
	add("neg64 of INT64_MIN is INT64_MIN",
	    ret(P({ lddw(R0, U64_MIN_S), alu64(BPF_NEG, R0, 0) })), U64_MIN_S);
	add("neg32 zero-extends",
	    ret(P({ mov(R0, 5), alu32(BPF_NEG, R0, 0) })), 0xfffffffbull);

	// mov and movsx
	add("mov32 of a register zero-extends",
	    ret(P({ mov(R1, -1), alu32r(BPF_MOV, R0, R1) })), 0xffffffffull);
	add("movsx8 to 64 bits sign-extends bit 7",
	    ret(P({ mov(R1, 0x180), alu64r(BPF_MOV, R0, R1, 8) })),
	    0xffffffffffffff80ull);
	add("movsx16 to 64 bits sign-extends bit 15",
	    ret(P({ mov(R1, 0x18000), alu64r(BPF_MOV, R0, R1, 16) })),
	    0xffffffffffff8000ull);
	add("movsx32 to 64 bits sign-extends bit 31",
	    ret(P({ lddw(R1, 0x1280000000ull), alu64r(BPF_MOV, R0, R1, 32) })),
	    0xffffffff80000000ull);
	add("movsx8 to 32 bits sign-extends then zero-extends",
	    ret(P({ mov(R1, 0x180), alu32r(BPF_MOV, R0, R1, 8) })),
	    0xffffff80ull);
	add("movsx16 to 32 bits sign-extends then zero-extends",
	    ret(P({ mov(R1, 0x8000), alu32r(BPF_MOV, R0, R1, 16) })),
	    0xffff8000ull);
	add("movsx8 of a positive byte",
	    ret(P({ mov(R1, 0x17f), alu64r(BPF_MOV, R0, R1, 8) })), 0x7f);

	// Byte order (RFC 9669 4.2; the host is little-endian).
	const uint64_t v = 0x1122334455667788ull;
	auto end = [&](uint8_t code, int32_t w) {
		return ret(P({ lddw(R0, v), I(code, R0, 0, 0, w) }));
	};
	add("le16 truncates to 16 bits", end(0xd4, 16), 0x7788);
	add("le32 truncates to 32 bits", end(0xd4, 32), 0x55667788);
	add("le64 is a no-op", end(0xd4, 64), v);
	add("be16 swaps and zero-extends", end(0xdc, 16), 0x8877);
	add("be32 swaps and zero-extends", end(0xdc, 32), 0x88776655);
	add("be64 swaps", end(0xdc, 64), 0x8877665544332211ull);
	add("bswap16 swaps unconditionally", end(0xd7, 16), 0x8877);
	add("bswap32 swaps unconditionally", end(0xd7, 32), 0x88776655);
	add("bswap64 swaps unconditionally", end(0xd7, 64),
	    0x8877665544332211ull);

	// lddw
	add("lddw loads all 64 bits",
	    ret(lddw(R0, 0x123456789abcdef0ull)), 0x123456789abcdef0ull);

	// Conditional jumps: 1 when taken.
	struct jc {
		const char *name;
		uint8_t op;
		bool is32, reg;
		uint64_t a;
		int64_t b;
		uint64_t expect;
	};
	const jc jumps[] = {
		{ "jeq taken on equal", BPF_JEQ, false, false, 5, 5, 1 },
		{ "jeq imm is sign-extended", BPF_JEQ, false, false, ~0ull, -1, 1 },
		{ "jeq compares all 64 bits", BPF_JEQ, false, true, 0x100000001ull, 1, 0 },
		{ "jeq32 compares the low 32 bits", BPF_JEQ, true, false, 0x100000001ull, 1, 1 },
		{ "jeq32 reg compares the low 32 bits", BPF_JEQ, true, true, 0x200000007ull, 7, 1 },
		{ "jne taken on different", BPF_JNE, false, true, 1, 2, 1 },
		{ "jne32 not taken on equal low halves", BPF_JNE, true, false, 0x300000002ull, 2, 0 },
		{ "jgt is unsigned", BPF_JGT, false, false, ~0ull, 1, 1 },
		{ "jgt not taken on equal", BPF_JGT, false, true, 3, 3, 0 },
		{ "jgt32 is unsigned on 32 bits", BPF_JGT, true, false, 0xffffffffull, 1, 1 },
		{ "jge taken on equal", BPF_JGE, false, false, 3, 3, 1 },
		{ "jge32 reg", BPF_JGE, true, true, 2, 3, 0 },
		{ "jlt is unsigned", BPF_JLT, false, false, 1, -1, 1 },
		{ "jlt32 reg", BPF_JLT, true, true, 0x1ffffffffull, 0, 0 },
		{ "jle taken on equal", BPF_JLE, false, true, 9, 9, 1 },
		{ "jle32 imm", BPF_JLE, true, false, 0x500000004ull, 4, 1 },
		{ "jset taken on a common bit", BPF_JSET, false, false, 0x6, 0x2, 1 },
		{ "jset not taken without common bits", BPF_JSET, false, true, 0x5, 0x2, 0 },
		{ "jset32 ignores the upper half", BPF_JSET, true, true, 0x100000000ull, 0x100000000ll, 0 },
		{ "jset32 imm", BPF_JSET, true, false, 0x80000000ull, INT32_MIN, 1 },
		{ "jsgt is signed", BPF_JSGT, false, false, ~0ull, 1, 0 },
		{ "jsgt positive over negative", BPF_JSGT, false, true, 1, -1, 1 },
		{ "jsgt32 is signed on 32 bits", BPF_JSGT, true, false, 0xffffffffull, 0, 0 },
		{ "jsgt32 reg", BPF_JSGT, true, true, 0x1, 0xffffffffll, 1 },
		{ "jsge taken on equal negatives", BPF_JSGE, false, false, ~0ull, -1, 1 },
		{ "jsge32 reg", BPF_JSGE, true, true, 0x80000000ull, 0, 0 },
		{ "jslt is signed", BPF_JSLT, false, false, ~0ull, 0, 1 },
		{ "jslt32 imm negative", BPF_JSLT, true, false, 0xfffffffeull, -1, 1 },
		{ "jslt reg", BPF_JSLT, false, true, 0, -5, 0 },
		{ "jsle taken on equal", BPF_JSLE, false, false, 4, 4, 1 },
		{ "jsle32 reg", BPF_JSLE, true, true, 0x7fffffffull, INT32_MIN, 0 },
		{ "jsle32 imm", BPF_JSLE, true, false, 0x180000000ull, INT32_MIN, 1 },
	};
	for (const jc &j : jumps) {
		const uint8_t cls = j.is32 ? BPF_JMP32 : BPF_JMP;
		code setup = P({ lddw(R1, j.a), lddw(R2, static_cast<uint64_t>(j.b)) });
		code jump = j.reg ? I(cls | j.op | BPF_X, R1, R2, 1, 0) :
				    I(cls | j.op | BPF_K, R1, 0, 1,
				      static_cast<int32_t>(j.b));
		add(j.name, taken(setup, jump), j.expect);
	}
	add("ja jumps by off", P({ mov(R0, 1), ja(1), mov(R0, 2), exit_() }), 1);
	add("ja32 (gotol) jumps by imm",
	    P({ mov(R0, 1), I(BPF_JMP32 | BPF_JA, 0, 0, 0, 1), mov(R0, 2),
		exit_() }),
	    1);
	add("a register compare drives a loop",
	    P({ mov(R0, 0), mov(R1, 0), mov(R2, 5), alu64(BPF_ADD, R1, 1),
		alu64(BPF_ADD, R0, 2), jmpr(BPF_JLT, R1, R2, -3), exit_() }),
	    10);
	add("a backward jump loops: sum of 1..10",
	    P({ mov(R0, 0), mov(R1, 10), alu64r(BPF_ADD, R0, R1),
		alu64(BPF_SUB, R1, 1), jmp(BPF_JNE, R1, 0, -3), exit_() }),
	    55);

	// Memory through r1 (a private copy of `mem`) and the stack.
	const std::vector<uint8_t> mem = { 0x81, 0x82, 0x83, 0x84, 0x85, 0x86,
					   0x87, 0x88, 0x01, 0x02 };
	add("ldxb zero-extends", ret(ldx(BPF_B, R0, R1, 0)), 0x81, mem);
	add("ldxh reads little-endian", ret(ldx(BPF_H, R0, R1, 0)), 0x8281,
	    mem);
	add("ldxw reads at an unaligned offset", ret(ldx(BPF_W, R0, R1, 1)),
	    0x85848382, mem);
	add("ldxdw", ret(ldx(BPF_DW, R0, R1, 0)), 0x8887868584838281ull, mem);
	add("ldxsb sign-extends", ret(ldxsx(BPF_B, R0, R1, 0)),
	    0xffffffffffffff81ull, mem);
	add("ldxsh sign-extends", ret(ldxsx(BPF_H, R0, R1, 0)),
	    0xffffffffffff8281ull, mem);
	add("ldxsw sign-extends", ret(ldxsx(BPF_W, R0, R1, 0)),
	    0xffffffff84838281ull, mem);
	add("ldxsh of a positive value", ret(ldxsx(BPF_H, R0, R1, 8)), 0x0201,
	    mem);
	add("r2 holds the memory length", ret(movr(R0, R2)), 10, mem);
	add("stb/sth/stw store the low bytes of imm",
	    ret(P({ st(BPF_B, R1, 0, 0x1ff), st(BPF_H, R1, 2, 0x12345),
		    st(BPF_W, R1, 4, -1), ldx(BPF_DW, R0, R1, 0) })),
	    0xffffffff234582ffull, mem);
	add("stdw sign-extends imm",
	    ret(P({ st(BPF_DW, R10, -8, -2), ldx(BPF_DW, R0, R10, -8) })),
	    0xfffffffffffffffeull);
	add("stx of each size",
	    ret(P({ lddw(R2, 0x1122334455667788ull), st(BPF_DW, R10, -8, 0),
		    stx(BPF_B, R10, R2, -8), stx(BPF_H, R10, R2, -6),
		    stx(BPF_W, R10, R2, -4), ldx(BPF_DW, R0, R10, -8) })),
	    0x5566778877880088ull);
	add("stxdw and ldxdw through the stack",
	    ret(P({ lddw(R2, 0xdeadbeefcafef00dull), stx(BPF_DW, R10, R2, -512),
		    ldx(BPF_DW, R0, R10, -512) })),
	    0xdeadbeefcafef00dull);

	// Atomics (RFC 9669 5.3).
	auto at64 = [&](int32_t op, uint64_t init, uint64_t operand,
			bool want_src) {
		return P({ lddw(R2, init), stx(BPF_DW, R10, R2, -8),
			   lddw(R3, operand), mov(R0, 0),
			   atomic(BPF_DW, op, R10, R3, -8),
			   want_src ? movr(R0, R3) : ldx(BPF_DW, R0, R10, -8),
			   exit_() });
	};
	add("atomic add64", at64(BPF_ADD, 40, 2, false), 42);
	add("atomic fetch_add64 returns the old value",
	    at64(BPF_ADD | BPF_FETCH, 40, 2, true), 40);
	add("atomic or64", at64(BPF_OR, 0xf0, 0x0f, false), 0xff);
	add("atomic fetch_or64", at64(BPF_OR | BPF_FETCH, 0xf0, 0x0f, true),
	    0xf0);
	add("atomic and64", at64(BPF_AND, 0xf0, 0x3c, false), 0x30);
	add("atomic fetch_and64", at64(BPF_AND | BPF_FETCH, 0xf0, 0x3c, true),
	    0xf0);
	add("atomic xor64", at64(BPF_XOR, 0xff, 0x0f, false), 0xf0);
	add("atomic fetch_xor64", at64(BPF_XOR | BPF_FETCH, 0xff, 0x0f, true),
	    0xff);
	add("atomic xchg64 stores src", at64(BPF_XCHG, 1, 2, false), 2);
	add("atomic xchg64 returns the old value in src",
	    at64(BPF_XCHG, 1, 2, true), 1);
	add("atomic cmpxchg64 stores when r0 matches",
	    P({ st(BPF_DW, R10, -8, 7), mov(R0, 7), mov(R3, 9),
		atomic(BPF_DW, BPF_CMPXCHG, R10, R3, -8),
		ldx(BPF_DW, R1, R10, -8), alu64(BPF_LSH, R1, 8),
		alu64r(BPF_OR, R0, R1), exit_() }),
	    (9ull << 8) | 7);
	add("atomic cmpxchg64 leaves memory and loads r0 on mismatch",
	    P({ st(BPF_DW, R10, -8, 7), mov(R0, 6), mov(R3, 9),
		atomic(BPF_DW, BPF_CMPXCHG, R10, R3, -8),
		ldx(BPF_DW, R1, R10, -8), alu64(BPF_LSH, R1, 8),
		alu64r(BPF_OR, R0, R1), exit_() }),
	    (7ull << 8) | 7);
	add("atomic add32 leaves the neighbouring word",
	    P({ st(BPF_DW, R10, -8, -1), mov(R3, 1),
		atomic(BPF_W, BPF_ADD, R10, R3, -8), ldx(BPF_DW, R0, R10, -8),
		exit_() }),
	    0xffffffff00000000ull);
	add("atomic fetch_add32 zero-extends the old value",
	    P({ st(BPF_W, R10, -4, -1), mov(R3, 1),
		atomic(BPF_W, BPF_ADD | BPF_FETCH, R10, R3, -4), movr(R0, R3),
		exit_() }),
	    0xffffffffull);
	add("atomic fetch_or32/and32/xor32",
	    P({ st(BPF_W, R10, -4, 0x0f), mov(R3, 0xf0),
		atomic(BPF_W, BPF_OR | BPF_FETCH, R10, R3, -4), mov(R4, 0x3c),
		atomic(BPF_W, BPF_AND | BPF_FETCH, R10, R4, -4), mov(R5, 0xff),
		atomic(BPF_W, BPF_XOR | BPF_FETCH, R10, R5, -4),
		ldx(BPF_W, R0, R10, -4), alu64(BPF_LSH, R0, 8),
		alu64r(BPF_OR, R0, R5), alu64(BPF_LSH, R0, 8),
		alu64r(BPF_OR, R0, R4), alu64(BPF_LSH, R0, 8),
		alu64r(BPF_OR, R0, R3), exit_() }),
	    // memory ((0x0f|0xf0)&0x3c)^0xff = 0xc3; fetched 0x3c, 0xff, 0x0f
	    0xc33cff0full);
	add("atomic xchg32",
	    P({ st(BPF_W, R10, -4, 5), mov(R3, -1),
		atomic(BPF_W, BPF_XCHG, R10, R3, -4), ldx(BPF_W, R0, R10, -4),
		alu64(BPF_LSH, R0, 8), alu64r(BPF_OR, R0, R3), exit_() }),
	    0xffffffff05ull);
	add("atomic cmpxchg32 compares the low 32 bits of r0",
	    P({ st(BPF_W, R10, -4, 7), lddw(R0, 0x500000007ull), mov(R3, 9),
		atomic(BPF_W, BPF_CMPXCHG, R10, R3, -4),
		ldx(BPF_W, R1, R10, -4), alu64(BPF_LSH, R1, 40),
		alu64r(BPF_OR, R0, R1), exit_() }),
	    (9ull << 40) | 7);
	add("atomic add32 through r1 (memory)",
	    P({ mov(R3, 1), atomic(BPF_W, BPF_ADD, R1, R3, 4),
		ldx(BPF_W, R0, R1, 4), exit_() }),
	    0x88878686, mem);

	// Calls.
	add("a helper gets r1-r5 in order",
	    P({ mov(R1, 1), mov(R2, 2), mov(R3, 3), mov(R4, 4), mov(R5, 5),
		call(HELPER_DIGITS), exit_() }),
	    54321);
	add("a kfunc is called by BTF id",
	    P({ mov(R1, 14), call_kfunc(KFUNC_MUL3), exit_() }), 42);
	add("callx calls the helper whose id is in dst",
	    P({ mov(R1, 77), mov(R2, HELPER_IDENTITY),
		I(BPF_JMP | BPF_CALL | BPF_X, R2, 0, 0, 0), exit_() }),
	    77);
	add("a local call preserves r6-r9 and the caller's frame",
	    P({ st(BPF_DW, R10, -8, 100), mov(R6, 6), mov(R1, 5),
		call_local(4), ldx(BPF_DW, R1, R10, -8),
		alu64r(BPF_ADD, R0, R1), alu64r(BPF_ADD, R0, R6), exit_(),
		// callee at 8
		st(BPF_DW, R10, -8, 7), mov(R6, 1000), movr(R0, R1),
		alu64(BPF_MUL, R0, 2), exit_() }),
	    116);
	add("a callee writes through a pointer into its caller's frame",
	    P({ st(BPF_DW, R10, -8, 0), movr(R1, R10), alu64(BPF_ADD, R1, -8),
		call_local(2), ldx(BPF_DW, R0, R10, -8), exit_(),
		st(BPF_DW, R1, 0, 77), mov(R0, 0), exit_() }),
	    77);
	{
		// main + 7 nested calls = MAX_CALL_FRAMES frames
		code p;
		for (int k = 0; k < 7; k++)
			p = P({ p, call_local(2), alu64(BPF_ADD, R0, 1),
				exit_() });
		p = P({ p, mov(R0, 0), exit_() });
		add("eight frames of local calls run", p, 7);
	}
	{
		// bpf_loop-style callback: sum of the indexes 0..9 into a
		// stack slot of the caller, through the ctx pointer.
		code p = P({ st(BPF_DW, R10, -8, 0), mov(R1, 10),
			     lddw(R2, 7, BPF_PSEUDO_FUNC), movr(R3, R10),
			     alu64(BPF_ADD, R3, -8), mov(R4, 0),
			     call(HELPER_LOOP), ldx(BPF_DW, R0, R10, -8),
			     exit_(),
			     // callback at 10: (index, ctx)
			     ldx(BPF_DW, R3, R2, 0), alu64r(BPF_ADD, R3, R1),
			     stx(BPF_DW, R2, R3, 0), mov(R0, 0), exit_() });
		add("a callback passed to a helper runs with its arguments", p,
		    45);
	}
	return c;
}

// ---------------------------------------------------------------------------

struct backend_under_test {
	const char *name;
	backend b;
	bool bounds_check;
};

static const backend_under_test g_backends[] = {
	{ "interpreter", backend::interpreter, false },
	{ "interpreter+bounds", backend::interpreter, true },
	{ "jit", backend::jit_x64, false },
	{ "llvm", backend::llvm, false },
	{ "llvm+bounds", backend::llvm, true },
};

// Whether a backend is built here: load a trivial program.
static std::string backend_unavailable(const backend_under_test &bt)
{
	vm v(bt.b, vm_options{ false, true, nullptr, ISA_ONLY });
	const code p = P({ mov(R0, 0), exit_() });
	auto loaded = v.load(p);
	if (!loaded && loaded.error().code == ENOTSUP)
		return loaded.error().message;
	return {};
}

static void test_run_cases(const backend_under_test &bt)
{
	for (const run_case &rc : run_cases()) {
		vm v(bt.b, vm_options{ bt.bounds_check, true, nullptr, ISA_ONLY });
		register_all(v);
		auto loaded = v.load(rc.prog);
		if (!loaded) {
			check(false, "[%s] %s: load: %s", bt.name, rc.name,
			      loaded.error().message.c_str());
			continue;
		}
		std::vector<uint8_t> mem = rc.mem;
		auto r = v.exec(mem.empty() ? nullptr : mem.data(), mem.size());
		if (!r) {
			check(false, "[%s] %s: exec: %s", bt.name, rc.name,
			      r.error().message.c_str());
			continue;
		}
		check(*r == rc.expect,
		      "[%s] %s: got 0x%" PRIx64 ", want 0x%" PRIx64, bt.name,
		      rc.name, *r, rc.expect);
	}
}

// ---------------------------------------------------------------------------
// Tail calls.

struct tail_table {
	const vm *slots[4] = {};
};

static const vm *resolve_tail(void *user, uint64_t prog_array, uint64_t index)
{
	auto *t = static_cast<tail_table *>(user);
	return index < 4 ? t->slots[index] : nullptr;
}

static void test_tail_calls(const backend_under_test &bt)
{
	const vm_options o{ bt.bounds_check, true, nullptr, ISA_ONLY };
	tail_table table;
	vm target(bt.b, o);
	check(target.load(P({ mov(R0, 42), exit_() })).ok(),
	      "[%s] tail call target loads", bt.name);
	table.slots[1] = &target;

	// r2 = prog_array (unused by the resolver), r3 = index
	auto caller = [&](int32_t index) {
		return P({ mov(R2, 0), mov(R3, index), call(12),
			   alu64(BPF_ADD, R0, 1000), exit_() });
	};
	{
		vm v(bt.b, o);
		v.set_tail_call_resolver(resolve_tail, &table);
		(void)v.load(caller(1));
		auto r = v.exec(nullptr, 0);
		check(r && *r == 42,
		      "[%s] a successful tail call returns the target's result "
		      "from the whole program",
		      bt.name);
	}
	{
		vm v(bt.b, o);
		v.set_tail_call_resolver(resolve_tail, &table);
		(void)v.load(caller(2));
		auto r = v.exec(nullptr, 0);
		check(r && *r == static_cast<uint64_t>(-ENOENT) + 1000,
		      "[%s] a tail call to an empty slot falls through with "
		      "r0 = -ENOENT",
		      bt.name);
	}
	{
		// Each run increments *(u64 *)ctx, then tail-calls itself:
		// MAX_TAIL_CALL_CNT calls succeed, the next falls through.
		vm self(bt.b, o);
		tail_table t2;
		t2.slots[0] = &self;
		self.set_tail_call_resolver(resolve_tail, &t2);
		auto loaded = self.load(P({ movr(R7, R1), ldx(BPF_DW, R6, R7, 0),
					alu64(BPF_ADD, R6, 1),
					stx(BPF_DW, R7, R6, 0), mov(R2, 0),
					mov(R3, 0), call(12),
					ldx(BPF_DW, R0, R7, 0), exit_() }));
		uint64_t counter = 0;
		auto r = loaded ? self.exec(&counter, sizeof counter) :
			      bpftime::result<uint64_t>(loaded.error());
		check(r && *r == MAX_TAIL_CALL_CNT + 1 &&
			      counter == MAX_TAIL_CALL_CNT + 1,
		      "[%s] tail calls stop after MAX_TAIL_CALL_CNT (got %s)",
		      bt.name,
		      r ? std::to_string(*r).c_str() :
			  r.error().message.c_str());
	}
	{
		vm v(bt.b, o);
		auto loaded = v.load(caller(1));
		check(!loaded && loaded.error().message.find("unknown helper #12") !=
				     std::string::npos,
		      "[%s] a tail call without a resolver is an unknown "
		      "helper",
		      bt.name);
	}
}

// ---------------------------------------------------------------------------
// Callbacks, executor::call_function, invoke_callback.

static void test_callbacks(const backend_under_test &bt)
{
	vm v(bt.b, vm_options{ bt.bounds_check, true, nullptr, ISA_ONLY });
	register_all(v);
	// main stores the callback's address in r0; the callback returns
	// r1 * 2 + r5.
	auto loaded = v.load(P({ lddw(R0, 2, BPF_PSEUDO_FUNC), exit_(),
			     movr(R0, R1), alu64(BPF_MUL, R0, 2),
			     alu64r(BPF_ADD, R0, R5), exit_() }));
	check(loaded.ok(), "[%s] a program with a callback loads", bt.name);
	if (!loaded)
		return;
	auto fn = v.exec(nullptr, 0);
	check(fn && *fn != 0, "[%s] BPF_PSEUDO_FUNC evaluates to a non-null "
			      "callback value",
	      bt.name);
	if (!fn)
		return;
	check(invoke_callback(*fn, 20, 0, 0, 0, 2) == 42,
	      "[%s] invoke_callback runs the callback with r1-r5", bt.name);
	check(invoke_callback(0, 1, 2, 3, 4, 5) == 0,
	      "[%s] invoke_callback of a null callback returns 0", bt.name);
	check(v.instructions().size() == 7 && v.instructions()[0].src_reg == 0,
	      "[%s] instructions() shows the resolved lddw", bt.name);
}

// ---------------------------------------------------------------------------
// Bounds-check mode.

static void expect_fault(const char *what, vm &v, const code &p, void *ctx,
			 uint64_t len, const char *needle)
{
	auto loaded = v.load(p);
	if (!loaded) {
		check(false, "%s: load: %s", what, loaded.error().message.c_str());
		return;
	}
	auto r = v.exec(ctx, len);
	check(!r && r.error().code == EFAULT &&
		      r.error().message.find(needle) != std::string::npos,
	      "%s (got %s)", what,
	      r ? ("0x" + std::to_string(*r)).c_str() :
		  r.error().message.c_str());
}

// vm::get_runner(): the same r0 as exec(), the errno of a failing run, and
// a tail call's result (decided outside the program's exit).
static void test_runner(const backend_under_test &bt)
{
	const vm_options o{ bt.bounds_check, true, nullptr, ISA_ONLY };
	{
		vm v(bt.b, o);
		check(!v.get_runner(), "[%s] runner: empty before load", bt.name);
		(void)v.load(P({ movr(R0, R2), alu64(BPF_ADD, R0, 5), exit_() }));
		bpftime::vm::runner run = v.get_runner();
		int err = -1;
		uint64_t r0 = run ? run(nullptr, 37, &err) : 0;
		check(run && r0 == 42 && err == 0,
		      "[%s] runner: r2 = ctx_len, r0 back, err 0 (got %" PRIu64
		      ", %d)",
		      bt.name, r0, err);
	}
	{
		// r1 = ctx, and frames of local calls on the runner's stack.
		vm v(bt.b, o);
		(void)v.load(P({ ldx(BPF_DW, R6, R1, 8), st(BPF_DW, R10, -8, 5),
				 call_local(4), ldx(BPF_DW, R2, R10, -8),
				 alu64r(BPF_ADD, R0, R2), alu64r(BPF_ADD, R0, R6),
				 exit_(), st(BPF_DW, R10, -8, 7),
				 ldx(BPF_DW, R0, R10, -8), exit_() }));
		uint64_t ctx[2] = { 1, 30 };
		int err = -1;
		uint64_t r0 = v.get_runner()(ctx, sizeof ctx, &err);
		check(r0 == 42 && err == 0,
		      "[%s] runner: r1 = ctx and a local call's own frame (got "
		      "%" PRIu64 ", %d)",
		      bt.name, r0, err);
	}
	{
		tail_table table;
		vm target(bt.b, o);
		(void)target.load(P({ mov(R0, 42), exit_() }));
		table.slots[1] = &target;
		vm v(bt.b, o);
		v.set_tail_call_resolver(resolve_tail, &table);
		(void)v.load(P({ mov(R2, 0), mov(R3, 1), call(12),
				 alu64(BPF_ADD, R0, 1000), exit_() }));
		int err = -1;
		uint64_t r0 = v.get_runner()(nullptr, 0, &err);
		check(r0 == 42 && err == 0,
		      "[%s] runner: a tail call's result (got %" PRIu64 ", %d)",
		      bt.name, r0, err);
	}
	{
		vm v(bt.b, vm_options{ true, true, nullptr, ISA_ONLY });
		uint8_t buf[4] = { 1, 2, 3, 4 };
		(void)v.load(P({ ldx(BPF_DW, R0, R1, 0), exit_() }));
		int err = 0;
		uint64_t r0 = v.get_runner()(buf, sizeof buf, &err);
		check(r0 == 0 && err == EFAULT,
		      "[%s] runner: a bounds fault gives 0 and EFAULT (got %" PRIu64
		      ", %d)",
		      bt.name, r0, err);
	}
}

static void test_bounds_check()
{
	const vm_options checked{ true, true, nullptr, ISA_ONLY };
	uint8_t buf[4] = { 1, 2, 3, 4 };
	{
		vm v(backend::interpreter, checked);
		expect_fault("bounds: a load past the end of ctx faults", v,
			     P({ mov(R0, 0), ldx(BPF_W, R0, R1, 4), exit_() }),
			     buf, sizeof buf,
			     "1: out of bounds memory load of 4 bytes at 0x");
	}
	{
		vm v(backend::interpreter, checked);
		expect_fault("bounds: a load straddling the end of ctx faults",
			     v, P({ ldx(BPF_DW, R0, R1, 0), exit_() }), buf,
			     sizeof buf, "0: out of bounds memory load of 8");
	}
	{
		vm v(backend::interpreter, checked);
		expect_fault("bounds: a load through a null ctx faults", v,
			     P({ ldx(BPF_B, R0, R1, 0), exit_() }), nullptr,
			     0, "at 0x0 ");
	}
	{
		vm v(backend::interpreter, checked);
		expect_fault("bounds: a store above the frame pointer faults",
			     v,
			     P({ movr(R1, R10), st(BPF_DW, R1, 0, 1),
				 mov(R0, 0), exit_() }),
			     nullptr, 0, "1: out of bounds memory store of 8");
	}
	{
		vm v(backend::interpreter, checked);
		expect_fault("bounds: an atomic outside any region faults", v,
			     P({ lddw(R1, 0x1000), mov(R2, 1),
				 atomic(BPF_DW, BPF_ADD, R1, R2, 0),
				 mov(R0, 0), exit_() }),
			     nullptr, 0, "3: out of bounds memory store of 8");
	}
	static uint64_t ro = 0x1234, rw = 0;
	{
		vm v(backend::interpreter, checked);
		v.add_memory_region({ reinterpret_cast<uint64_t>(&ro), 8, false });
		auto loaded = v.load(P({ lddw(R1, reinterpret_cast<uint64_t>(&ro)),
				     ldx(BPF_DW, R0, R1, 0), exit_() }));
		auto r = loaded ? v.exec(nullptr, 0) :
			      bpftime::result<uint64_t>(loaded.error());
		check(r && *r == 0x1234,
		      "bounds: a load from a read-only region is allowed");
	}
	{
		vm v(backend::interpreter, checked);
		v.add_memory_region({ reinterpret_cast<uint64_t>(&ro), 8, false });
		expect_fault("bounds: a store into a read-only region faults", v,
			     P({ lddw(R1, reinterpret_cast<uint64_t>(&ro)),
				 st(BPF_W, R1, 0, 1), mov(R0, 0), exit_() }),
			     nullptr, 0, "2: out of bounds memory store of 4");
	}
	{
		vm v(backend::interpreter, checked);
		v.add_memory_region({ reinterpret_cast<uint64_t>(&rw), 8, true });
		auto loaded = v.load(P({ lddw(R1, reinterpret_cast<uint64_t>(&rw)),
				     st(BPF_DW, R1, 0, 99),
				     ldx(BPF_DW, R0, R1, 0), exit_() }));
		auto r = loaded ? v.exec(nullptr, 0) :
			      bpftime::result<uint64_t>(loaded.error());
		check(r && *r == 99 && rw == 99,
		      "bounds: a store into a writable region is allowed");
	}
	{
		// The callback writes into its caller's stack: allowed.
		vm v(backend::interpreter, checked);
		register_all(v);
		auto loaded = v.load(P({ st(BPF_DW, R10, -8, 0), mov(R1, 3),
				     lddw(R2, 7, BPF_PSEUDO_FUNC),
				     movr(R3, R10), alu64(BPF_ADD, R3, -8),
				     mov(R4, 0), call(HELPER_LOOP),
				     ldx(BPF_DW, R0, R10, -8), exit_(),
				     ldx(BPF_DW, R3, R2, 0),
				     alu64(BPF_ADD, R3, 1),
				     stx(BPF_DW, R2, R3, 0), mov(R0, 0),
				     exit_() }));
		auto r = loaded ? v.exec(nullptr, 0) :
			      bpftime::result<uint64_t>(loaded.error());
		check(r && *r == 3,
		      "bounds: a callback may use its caller's stack");
	}
	{
		// A faulting callback fails the program whose helper ran it.
		vm v(backend::interpreter, checked);
		register_all(v);
		auto loaded = v.load(P({ mov(R1, 1), lddw(R2, 6, BPF_PSEUDO_FUNC),
				     mov(R3, 0), mov(R4, 0), call(HELPER_LOOP),
				     mov(R0, 0), exit_(),
				     // callback at 8
				     ldx(BPF_DW, R0, R2, 0), exit_() }));
		auto r = loaded ? v.exec(nullptr, 0) :
			      bpftime::result<uint64_t>(loaded.error());
		check(!r && r.error().code == EFAULT &&
			      r.error().message.starts_with("8: out of bounds"),
		      "bounds: a faulting callback fails the calling program "
		      "(got %s)",
		      r ? std::to_string(*r).c_str() :
			  r.error().message.c_str());
	}
}

// ---------------------------------------------------------------------------
// Verifier: one case per rule, with the index and reason it must name.

struct reject_case {
	const char *name;
	code prog;
	const char *message; // expected prefix ("index: reason")
	int err = EINVAL;
	bool strict = true;
};

static std::vector<reject_case> reject_cases()
{
	std::vector<reject_case> c;
	auto add = [&](const char *n, code p, const char *m, int e = EINVAL,
		       bool strict = true) {
		c.push_back({ n, std::move(p), m, e, strict });
	};
	add("refuses an opcode outside the table",
	    P({ mov(R0, 0), I(0xff, 0, 0, 0, 0), exit_() }),
	    "1: invalid opcode 0xff");
	add("refuses the ALU64 form of be (0xdf)",
	    P({ mov(R0, 0), I(0xdf, R0, 0, 0, 16), exit_() }),
	    "1: invalid opcode 0xdf");
	add("refuses call in JMP32 (0x86)",
	    P({ mov(R0, 0), I(0x86, 0, 0, 0, 5), exit_() }),
	    "1: invalid opcode 0x86");
	add("refuses legacy BPF_LD_ABS with a clear message",
	    P({ mov(R0, 0), I(BPF_LD | BPF_ABS | BPF_W, 0, 0, 0, 0), exit_() }),
	    "1: legacy packet load BPF_LD_ABS/BPF_LD_IND (opcode 0x20) is not "
	    "supported");
	add("refuses legacy BPF_LD_IND",
	    P({ mov(R0, 0), I(BPF_LD | BPF_IND | BPF_B, 0, 1, 0, 0), exit_() }),
	    "1: legacy packet load");
	add("refuses a non-zero src_reg in an immediate ALU op",
	    P({ mov(R0, 0), I(0x07, R0, R1, 0, 1), exit_() }),
	    "1: add (opcode 0x07): src_reg 1 must be 0");
	add("refuses a non-zero off in add",
	    P({ mov(R0, 0), I(0x07, R0, 0, 1, 1), exit_() }),
	    "1: add (opcode 0x07): off 1 must be 0");
	add("refuses a non-zero imm in a register ALU op",
	    P({ mov(R0, 0), I(0x0f, R0, R0, 0, 1), exit_() }),
	    "1: add (opcode 0x0f): imm 1 must be 0");
	add("refuses off 2 in div (only 0 and 1 are defined)",
	    P({ mov(R0, 0), alu64(BPF_DIV, R0, 1, 2), exit_() }),
	    "1: div (opcode 0x37): off 2 must be 0 (unsigned) or 1 (signed)");
	add("refuses movsx32 (off 32) in the ALU class",
	    P({ mov(R0, 0), alu32r(BPF_MOV, R0, R0, 32), exit_() }),
	    "1: mov32 (opcode 0xbc): off 32 must be 0, 8 or 16");
	add("refuses an off in mov with an immediate",
	    P({ alu64(BPF_MOV, R0, 1, 8), exit_() }),
	    "0: mov (opcode 0xb7): off 8 must be 0");
	add("refuses le with a width other than 16/32/64",
	    P({ mov(R0, 0), I(0xd4, R0, 0, 0, 17), exit_() }),
	    "1: le (opcode 0xd4): imm 17 must be 16, 32 or 64");
	add("refuses neg with a register source",
	    P({ mov(R0, 0), I(0x8f, R0, 0, 0, 0), exit_() }),
	    "1: invalid opcode 0x8f");
	add("refuses an unknown atomic operation",
	    P({ mov(R0, 0), atomic(BPF_DW, 0x10, R10, R0, -8), exit_() }),
	    "1: atomic64 (opcode 0xdb): imm 16 must be an atomic operation");
	add("refuses atomics of 16 bits",
	    P({ mov(R0, 0), atomic(BPF_H, BPF_ADD, R10, R0, -8), exit_() }),
	    "1: invalid opcode 0xcb");
	add("refuses a register above r10",
	    P({ I(0xb7, 11, 0, 0, 0), mov(R0, 0), exit_() }),
	    "0: invalid register r11 in dst_reg of mov (opcode 0xb7)");
	add("refuses a source register above r10",
	    P({ mov(R0, 0), I(0xbf, R0, 15, 0, 0), exit_() }),
	    "1: invalid register r15 in src_reg");
	add("refuses a write into r10 by an ALU op",
	    P({ mov(R0, 0), alu64(BPF_ADD, R10, -8), exit_() }),
	    "1: frame pointer is read only");
	add("refuses a load into r10",
	    P({ mov(R0, 0), ldx(BPF_DW, R10, R10, -8), exit_() }),
	    "1: frame pointer is read only");
	add("refuses an atomic fetch into r10",
	    P({ mov(R0, 0), atomic(BPF_DW, BPF_ADD | BPF_FETCH, R1, R10, 0),
		exit_() }),
	    "1: frame pointer is read only");
	add("refuses a reserved field in exit",
	    P({ mov(R0, 0), I(0x95, 0, 0, 0, 1) }),
	    "1: exit (opcode 0x95): imm 1 must be 0");
	add("refuses a call with src_reg 3",
	    P({ mov(R0, 0), I(0x85, 0, 3, 0, 1), exit_() }),
	    "1: call (opcode 0x85): src_reg 3 must be 0 (helper), 1 (local "
	    "call) or 2 (kfunc)");
	add("refuses a lddw with an unknown pseudo kind",
	    P({ lddw(R0, 0, 7), exit_() }),
	    "0: lddw (opcode 0x18): src_reg 7 must be 0 or a BPF_PSEUDO_* "
	    "kind 1-6");
	add("refuses a lddw whose second slot is cut off",
	    P({ mov(R0, 0), exit_(), I(0x18, R0, 0, 0, 0) }),
	    "2: incomplete lddw");
	add("refuses a lddw whose second slot has an opcode",
	    P({ I(0x18, R0, 0, 0, 0), I(0x07, 0, 0, 0, 0), exit_() }),
	    "0: invalid lddw: the second slot must have code, registers and "
	    "off 0");
	add("refuses a jump past the end",
	    P({ mov(R0, 0), ja(5), exit_() }),
	    "1: jump out of range from insn 1 to 7");
	add("refuses a jump before the start",
	    P({ mov(R0, 0), jmp(BPF_JEQ, R0, 0, -3), exit_() }),
	    "1: jump out of range from insn 1 to -1");
	add("refuses a jump into the second slot of lddw",
	    P({ mov(R0, 0), jmp(BPF_JEQ, R0, 0, 1), lddw(R1, 5), exit_() }),
	    "1: jump into the middle of the lddw at 2");
	add("refuses a ja32 past the end",
	    P({ mov(R0, 0), I(0x06, 0, 0, 0, 100), exit_() }),
	    "1: jump out of range from insn 1 to 102");
	add("refuses a program that falls off its end",
	    P({ mov(R0, 0), mov(R1, 0) }),
	    "1: falls through off the end of the program");
	add("refuses a conditional jump as the last instruction",
	    P({ mov(R0, 0), jmp(BPF_JEQ, R0, 0, -2) }),
	    "1: falls through off the end of the program");
	add("refuses a program whose exit cannot be reached",
	    P({ ja(-1), exit_() }),
	    "0: no reachable exit in the function that starts here");
	add("refuses an unknown helper by number",
	    P({ call(99), exit_() }), "0: call to unknown helper #99");
	add("refuses an unknown kfunc",
	    P({ call_kfunc(77), exit_() }),
	    "0: call to unknown kfunc btf_id 77");
	add("refuses a local call past the end",
	    P({ call_local(10), exit_() }),
	    "0: call to invalid destination 11");
	add("refuses a local call into the second slot of lddw",
	    P({ call_local(2), exit_(), lddw(R0, 1), exit_() }),
	    "0: call into the middle of the lddw at 2");
	add("refuses a BPF_PSEUDO_FUNC naming a pc past the end",
	    P({ lddw(R1, 40, BPF_PSEUDO_FUNC), mov(R0, 0), exit_() }),
	    "0: BPF_PSEUDO_FUNC reference to invalid destination 41");
	{
		code p;
		for (int k = 0; k < 8; k++)
			p = P({ p, call_local(2), alu64(BPF_ADD, R0, 1),
				exit_() });
		p = P({ p, mov(R0, 0), exit_() });
		add("refuses calls nested nine frames deep", p,
		    "21: call stack of 9 frames is too deep (max 8)");
	}
	add("refuses a recursive local call",
	    P({ call_local(1), exit_(), call_local(-1), exit_() }),
	    "2: recursive call to the function at 2");
	add("refuses a jump from one function into another",
	    P({ call_local(2), ja(2), exit_(), mov(R0, 0), exit_() }),
	    "1: jump out of range from insn 1 to 4: outside its function "
	    "[0, 3)");
	add("refuses a function that falls into the next",
	    P({ call_local(1), mov(R0, 0), mov(R0, 1), exit_() }),
	    "1: falls through into the function at 2");
	add("refuses a stack load at r10+0",
	    P({ ldx(BPF_DW, R0, R10, 0), exit_() }),
	    "0: invalid stack access off=0 size=8: outside the frame [-512, "
	    "0) of r10");
	add("refuses a stack store that crosses r10",
	    P({ mov(R0, 0), stx(BPF_DW, R10, R0, -4), exit_() }),
	    "1: invalid stack access off=-4 size=8");
	add("refuses a stack store below the frame",
	    P({ mov(R0, 0), st(BPF_B, R10, -513, 0), exit_() }),
	    "1: invalid stack access off=-513 size=1");
	add("refuses an atomic on the stack outside the frame",
	    P({ mov(R0, 0), atomic(BPF_W, BPF_ADD, R10, R0, 0), exit_() }),
	    "1: invalid stack access off=0 size=4");
	add("refuses reading a never-written register",
	    P({ movr(R0, R3), exit_() }),
	    "0: R3 !read_ok: r3 is read before it is written on some path");
	add("refuses a register written on only one path",
	    P({ jmp(BPF_JEQ, R1, 0, 1), mov(R3, 1), movr(R0, R3), exit_() }),
	    "2: R3 !read_ok");
	add("refuses reading r1 after a helper call clobbers it",
	    P({ call(HELPER_IDENTITY), movr(R0, R1), exit_() }),
	    "1: R1 !read_ok");
	add("refuses an exit with r0 never written",
	    P({ mov(R1, 0), exit_() }), "1: R0 !read_ok");
	add("refuses reading r6 in a sub-program (not passed)",
	    P({ mov(R6, 1), call_local(1), exit_(), movr(R0, R6), exit_() }),
	    "3: R6 !read_ok");
	add("refuses a store of an uninitialised register",
	    P({ stx(BPF_DW, R10, R4, -8), mov(R0, 0), exit_() }),
	    "0: R4 !read_ok");
	add("refuses an empty program", code{}, "0: empty program");
	return c;
}

static verify_options test_verify_options(bool strict)
{
	verify_options o;
	o.helper_proto_of = [](uint32_t id) -> std::optional<helper_proto> {
		if (id == HELPER_IDENTITY || id == HELPER_DIGITS ||
		    id == HELPER_LOOP)
			return proto(id, "test", h_identity);
		return std::nullopt;
	};
	o.kfunc_known = [](uint32_t id) { return id == KFUNC_MUL3; };
	o.strict = strict;
	o.types = false; // the structural passes alone; test_types() has the rest
	return o;
}

static void test_verifier()
{
	for (const reject_case &rc : reject_cases()) {
		auto r = verify(rc.prog, test_verify_options(rc.strict));
		check(!r && r.error().code == rc.err &&
			      r.error().message.starts_with(rc.message),
		      "verifier %s: want \"%s\", got \"%s\"", rc.name,
		      rc.message, r ? "accepted" : r.error().message.c_str());
		// vm::load reports the same verdict (its type discipline, on by
		// default, may name an earlier instruction: test_types()).
		vm v(backend::interpreter, vm_options{ false, true, nullptr, ISA_ONLY });
		register_all(v);
		auto loaded = v.load(rc.prog);
		check(!loaded && loaded.error().message.starts_with(rc.message),
		      "vm::load %s", rc.name);
	}

	struct accept_case {
		const char *name;
		code prog;
		bool strict = true;
	};
	const accept_case accepts[] = {
		{ "accepts a shift immediate above the width",
		  P({ mov(R0, 1), alu64(BPF_LSH, R0, 200),
		      alu32(BPF_RSH, R0, -1), exit_() }) },
		{ "accepts a division by a zero immediate",
		  P({ mov(R0, 1), alu64(BPF_DIV, R0, 0), alu32(BPF_MOD, R0, 0),
		      exit_() }) },
		{ "accepts r10 as the base of a store and a spill of r10",
		  P({ stx(BPF_DW, R10, R10, -8), mov(R0, 0), exit_() }) },
		{ "accepts the full frame [-512, 0)",
		  P({ st(BPF_DW, R10, -512, 0), st(BPF_B, R10, -1, 0),
		      mov(R0, 0), exit_() }) },
		{ "accepts r1 and r2 as initialised at entry",
		  P({ movr(R0, R1), alu64r(BPF_ADD, R0, R2), exit_() }) },
		{ "accepts r1-r5 as initialised in a sub-program",
		  P({ mov(R1, 0), mov(R2, 0), mov(R3, 0), mov(R4, 0),
		      mov(R5, 0), call_local(1), exit_(), movr(R0, R5),
		      exit_() }) },
		{ "accepts a read of a register written on every path",
		  P({ jmp(BPF_JEQ, R1, 0, 2), mov(R3, 1), ja(1), mov(R3, 2),
		      movr(R0, R3), exit_() }) },
		{ "accepts an uninitialised read when not strict",
		  P({ movr(R0, R3), exit_() }), false },
		{ "accepts unreachable code after an exit",
		  P({ mov(R0, 0), exit_(), movr(R0, R9), exit_() }) },
		{ "accepts eight frames of calls",
		  P({ call_local(2), alu64(BPF_ADD, R0, 1), exit_(),
		      call_local(2), alu64(BPF_ADD, R0, 1), exit_(),
		      call_local(2), alu64(BPF_ADD, R0, 1), exit_(),
		      call_local(2), alu64(BPF_ADD, R0, 1), exit_(),
		      call_local(2), alu64(BPF_ADD, R0, 1), exit_(),
		      call_local(2), alu64(BPF_ADD, R0, 1), exit_(),
		      call_local(2), alu64(BPF_ADD, R0, 1), exit_(),
		      mov(R0, 0), exit_() }) },
	};
	for (const accept_case &a : accepts) {
		auto r = verify(a.prog, test_verify_options(a.strict));
		check(r.ok(), "verifier %s%s%s", a.name, r ? "" : ": ",
		      r ? "" : r.error().message.c_str());
	}

	{
		std::vector<insn> big(BPF_MAX_INSNS + 1,
				      insn{ 0xb7, 0, 0, 0, 0 });
		auto r = verify(big, test_verify_options(true));
		check(!r && r.error().code == E2BIG,
		      "verifier refuses more than BPF_MAX_INSNS with E2BIG");
	}
	{
		// function_starts: main, a local call target, a callback.
		const code p = P({ call_local(3), lddw(R1, 4, BPF_PSEUDO_FUNC),
				   exit_(), mov(R0, 1), exit_(), mov(R0, 2),
				   exit_() });
		auto r = verify(p, test_verify_options(true));
		check(r && r->function_starts == std::vector<uint32_t>{ 0, 4, 6 },
		      "verifier lists the main, called and callback functions");
	}
	{
		auto r = verify(P({ st(BPF_W, R10, -20, 0), mov(R0, 0),
				    exit_() }),
				test_verify_options(true));
		check(r && r->max_stack == 24,
		      "verifier rounds max_stack up to 8 (got %u)",
		      r ? r->max_stack : 0);
		r = verify(P({ movr(R1, R10), st(BPF_W, R10, -8, 0), mov(R0, 0),
			       exit_() }),
			   test_verify_options(true));
		check(r && r->max_stack == MAX_BPF_STACK,
		      "verifier gives a full frame when r10 escapes");
		r = verify(P({ mov(R0, 0), exit_() }), test_verify_options(true));
		check(r && r->max_stack == 0,
		      "verifier gives 0 for a program without stack");
	}
}

// ---------------------------------------------------------------------------
// may_write_context: which programs can run on a probe's registers in place.

static void test_context_writes()
{
	// Helper 4 writes through r1 (probe_read), 173 reads its ctx argument
	// (get_func_ip), 5 takes no argument (ktime_get_ns), 181 hands r3 to a
	// callback (bpf_loop); any other id may write through all five.
	const auto written_args = [](uint32_t id) -> uint16_t {
		switch (id) {
		case 4:
			return 1u << 1;
		case 5:
		case 173:
			return 0;
		case 181:
			return 1u << 3;
		default:
			return 0x3e;
		}
	};
	struct ctx_case {
		const char *name;
		code prog;
		bool writes;
	};
	const ctx_case cases[] = {
		{ "an empty program", P({ mov(R0, 0), exit_() }), false },
		{ "loads through ctx and a copy of it",
		  P({ ldx(BPF_DW, R0, R1, 112), movr(R6, R1),
		      ldx(BPF_DW, R2, R6, 80), alu64r(BPF_ADD, R0, R2), exit_() }),
		  false },
		{ "a store to the stack of a value read from ctx",
		  P({ ldx(BPF_DW, R2, R1, 112), stx(BPF_DW, R10, R2, -8),
		      ldx(BPF_DW, R3, R10, -8), stx(BPF_DW, R3, R2, 0),
		      mov(R0, 0), exit_() }),
		  false },
		{ "ctx in r1 of a helper that reads it",
		  P({ call(173), exit_() }), false },
		{ "ctx left in r1 at a helper without arguments",
		  P({ call(5), exit_() }), false },
		{ "ctx in r3 of a helper that writes only through r1",
		  P({ movr(R3, R1), mov(R1, 0), mov(R2, 0), call(4), exit_() }),
		  false },
		{ "a store through r1",
		  P({ st(BPF_DW, R1, 80, 0), mov(R0, 0), exit_() }), true },
		{ "a store through ctx plus an offset",
		  P({ movr(R6, R1), alu64(BPF_ADD, R6, 16), mov(R2, 7),
		      stx(BPF_DW, R6, R2, 0), mov(R0, 0), exit_() }),
		  true },
		{ "a store through a value rebuilt from ctx in a scalar",
		  P({ mov(R2, 8), alu64r(BPF_ADD, R2, R1), st(BPF_W, R2, 0, 1),
		      mov(R0, 0), exit_() }),
		  true },
		{ "an atomic add into ctx",
		  P({ mov(R2, 1), atomic(BPF_DW, BPF_ADD, R1, R2, 0), mov(R0, 0),
		      exit_() }),
		  true },
		{ "a store on one branch only",
		  P({ jmp(BPF_JEQ, R2, 0, 1), st(BPF_DW, R1, 0, 0), mov(R0, 0),
		      exit_() }),
		  true },
		{ "ctx spilled to the stack, reloaded and written through",
		  P({ stx(BPF_DW, R10, R1, -8), ldx(BPF_DW, R3, R10, -8),
		      st(BPF_DW, R3, 0, 0), mov(R0, 0), exit_() }),
		  true },
		{ "ctx stored outside the stack",
		  P({ lddw(R2, 0x1000), stx(BPF_DW, R2, R1, 0), mov(R0, 0),
		      exit_() }),
		  true },
		{ "ctx in r1 of a helper that writes through r1",
		  P({ mov(R2, 8), mov(R3, 0), call(4), exit_() }), true },
		{ "ctx handed to a callback through bpf_loop",
		  P({ movr(R3, R1), mov(R1, 4), mov(R2, 0), call(181), exit_() }),
		  true },
		{ "ctx in r1 of a helper nothing is known of",
		  P({ call(6), exit_() }), true },
		{ "ctx handed to a kfunc",
		  P({ call_kfunc(KFUNC_MUL3), exit_() }), true },
		{ "a sub-program that writes its r1, called with ctx",
		  P({ call_local(2), mov(R0, 0), exit_(), st(BPF_DW, R1, 0, 0),
		      mov(R0, 0), exit_() }),
		  true },
		{ "a sub-program that writes its r1, called with a scalar",
		  P({ mov(R1, 0), call_local(2), mov(R0, 0), exit_(),
		      st(BPF_DW, R1, 0, 0), mov(R0, 0), exit_() }),
		  false },
		{ "a sub-program that writes through the caller's r6 unwritten",
		  P({ movr(R6, R1), call_local(2), mov(R0, 0), exit_(),
		      st(BPF_DW, R6, 0, 0), mov(R0, 0), exit_() }),
		  true },
		{ "a sub-program that returns ctx, written through by the caller",
		  P({ call_local(3), st(BPF_DW, R0, 0, 0), exit_(), movr(R0, R1),
		      exit_(), mov(R0, 0), exit_() }),
		  true },
		{ "ctx kept in r6 across a helper call, then written",
		  P({ movr(R6, R1), mov(R1, 0), call(5), st(BPF_DW, R6, 0, 0), mov(R0, 0),
		      exit_() }),
		  true },
		{ "ctx in r1 is gone after a helper call",
		  P({ call(173), st(BPF_DW, R1, 0, 0), mov(R0, 0), exit_() }),
		  false },
		{ "a store through ctx after a loop that moves it",
		  P({ mov(R2, 0), movr(R3, R2), alu64(BPF_ADD, R2, 1),
		      movr(R2, R1), jmp(BPF_JLT, R2, 10, -4),
		      st(BPF_DW, R3, 0, 0), mov(R0, 0), exit_() }),
		  true },
		{ "a program the verifier rejects", P({ mov(R0, 0) }), true },
	};
	for (const ctx_case &c : cases) {
		const bool got = may_write_context(c.prog, written_args);
		check(got == c.writes, "may_write_context %s: want %s", c.name,
		      c.writes ? "true" : "false");
	}
	check(may_write_context(P({ call(173), exit_() }), nullptr),
	      "may_write_context without a helper table lets every helper "
	      "write through all its arguments");
}

// ---------------------------------------------------------------------------
// Helper prototypes: calls checked against their argument kinds, and the
// written-argument facts derived from them.

static const helper_proto LOOKUP_PROTO{
	.id = 1, .name = "map_lookup_elem",
	.ret = RET_PTR_TO_MAP_VALUE_OR_NULL,
	.args = { ARG_CONST_MAP_PTR, ARG_PTR_TO_MAP_KEY },
	.fn = h_identity };
static const helper_proto UPDATE_PROTO{
	.id = 2, .name = "map_update_elem", .ret = RET_INTEGER,
	.args = { ARG_CONST_MAP_PTR, ARG_PTR_TO_MAP_KEY, ARG_PTR_TO_MAP_VALUE,
		  ARG_ANYTHING },
	.fn = h_identity };
static const helper_proto READ_PROTO{
	.id = 4, .name = "probe_read", .ret = RET_INTEGER,
	.args = { ARG_PTR_TO_UNINIT_MEM, ARG_CONST_SIZE_OR_ZERO, ARG_ANYTHING },
	.fn = h_identity };
static const helper_proto STRTOL_PROTO{
	.id = 105, .name = "strtol", .ret = RET_INTEGER,
	.args = { ARG_PTR_TO_MEM | MEM_RDONLY, ARG_CONST_SIZE, ARG_ANYTHING,
		  ARG_PTR_TO_LONG },
	.fn = h_identity };

static std::optional<helper_proto> proto_table(uint32_t id)
{
	for (const helper_proto *p :
	     { &LOOKUP_PROTO, &UPDATE_PROTO, &READ_PROTO, &STRTOL_PROTO })
		if (p->id == id)
			return *p;
	return std::nullopt;
}

static void test_helper_protos()
{
	constexpr uint8_t FD = BPF_PSEUDO_MAP_FD;
	verify_options o;
	o.types = false; // the argument pass alone
	o.helper_proto_of = proto_table;
	// Map 5 has 4-byte keys and 8-byte values.
	o.map_sizes = [](uint32_t map) -> std::optional<std::pair<uint32_t, uint32_t>> {
		if (map == 5)
			return std::make_pair(4u, 8u);
		return std::nullopt;
	};
	struct arg_case {
		const char *name;
		code prog;
		const char *message; // nullptr: accepted
	};
	const arg_case cases[] = {
		{ "refuses a number as the map argument",
		  P({ mov(R1, 0), movr(R2, R10), alu64(BPF_ADD, R2, -8), call(1),
		      exit_() }),
		  "3: helper #1: R1 is not a map on every path (the kernel's "
		  "verifier: R1 type=scalar expected=map_ptr)" },
		{ "refuses the stack as the map argument",
		  P({ movr(R1, R10), movr(R2, R10), alu64(BPF_ADD, R2, -8),
		      call(1), exit_() }),
		  "3: helper #1: R1 is not a map" },
		{ "refuses a map on one path only",
		  P({ ldx(BPF_DW, R3, R1, 0), lddw(R1, 5, FD), jmp(BPF_JEQ, R3, 0, 1),
		      mov(R1, 0), movr(R2, R10), alu64(BPF_ADD, R2, -8), call(1),
		      exit_() }),
		  "7: helper #1: R1 is not a map on every path" },
		{ "refuses a constant as the key",
		  P({ lddw(R1, 5, FD), mov(R2, 0), call(1), exit_() }),
		  "3: helper #1: R2 may be a constant, not a pointer to the stack, "
		  "a map value or the context" },
		{ "refuses a number loaded from the context as the value",
		  P({ ldx(BPF_DW, R3, R1, 0), lddw(R1, 5, FD), movr(R2, R10),
		      alu64(BPF_ADD, R2, -8), mov(R4, 0), call(2), exit_() }),
		  "6: helper #2: R3 may be a number" },
		{ "refuses a key in the stack shorter than the map's key_size",
		  P({ lddw(R1, 5, FD), movr(R2, R10), alu64(BPF_ADD, R2, -2),
		      call(1), exit_() }),
		  "4: helper #1: R2 points into the stack, but 4 bytes at fp-2 "
		  "leave the 512-byte frame" },
		{ "refuses a buffer that leaves the frame",
		  P({ movr(R1, R10), alu64(BPF_ADD, R1, -8), mov(R2, 16), mov(R3, 0),
		      call(4), exit_() }),
		  "4: helper #4: R1 points into the stack, but 16 bytes at fp-8 "
		  "leave the 512-byte frame (the kernel's verifier: invalid "
		  "indirect access to stack R1)" },
		{ "refuses a buffer in the stack of a size the program computes",
		  P({ ldx(BPF_W, R2, R1, 0), movr(R1, R10), alu64(BPF_ADD, R1, -64),
		      mov(R3, 0), call(4), exit_() }),
		  "4: helper #4: R1 points into the stack, but R2 (its size) is not "
		  "a known constant" },
		{ "refuses an ARG_PTR_TO_LONG with less than 8 bytes of frame",
		  P({ movr(R1, R10), alu64(BPF_ADD, R1, -16), mov(R2, 4), mov(R3, 0),
		      movr(R4, R10), alu64(BPF_ADD, R4, -4), call(105), exit_() }),
		  "6: helper #105: R4 points into the stack, but 8 bytes at fp-4" },
		{ "accepts a key in the stack and a map value as the next key",
		  P({ st(BPF_W, R10, -4, 0), lddw(R1, 5, FD), movr(R2, R10),
		      alu64(BPF_ADD, R2, -4), call(1), jmp(BPF_JEQ, R0, 0, 4),
		      movr(R2, R0), lddw(R1, 5, FD), call(1), exit_() }),
		  nullptr },
		{ "accepts a map spilled to the stack and loaded back",
		  P({ lddw(R6, 5, FD), stx(BPF_DW, R10, R6, -16), st(BPF_W, R10, -4, 0),
		      ldx(BPF_DW, R1, R10, -16), movr(R2, R10), alu64(BPF_ADD, R2, -4),
		      call(1), exit_() }),
		  nullptr },
		{ "accepts the context as a key",
		  P({ movr(R2, R1), lddw(R1, 5, FD), call(1), exit_() }), nullptr },
		{ "accepts a sub-program's argument as the map",
		  P({ lddw(R1, 5, FD), call_local(1), exit_(), movr(R2, R10),
		      alu64(BPF_ADD, R2, -8), call(1), exit_() }),
		  nullptr },
		{ "accepts a number as probe_read's destination (not the stack)",
		  P({ mov(R1, 4096), mov(R2, 4096), mov(R3, 0), call(4), exit_() }),
		  nullptr },
	};
	for (const arg_case &c : cases) {
		auto r = verify(c.prog, o);
		if (!c.message) {
			check(r.ok(), "helper args %s: got \"%s\"", c.name,
			      r ? "accepted" : r.error().message.c_str());
			continue;
		}
		check(!r && r.error().code == EINVAL &&
			      r.error().message.starts_with(c.message),
		      "helper args %s: want \"%s\", got \"%s\"", c.name, c.message,
		      r ? "accepted" : r.error().message.c_str());
		// check_helper_args() reports the same.
		auto a = check_helper_args(c.prog, o);
		check(!a && a.error().message == r.error().message,
		      "check_helper_args %s", c.name);
	}

	// vm::load checks calls against the registered prototypes.
	{
		vm v;
		check(v.register_helper(LOOKUP_PROTO).ok(), "register lookup proto");
		auto loaded = v.load(P({ mov(R1, 0), movr(R2, R10),
					 alu64(BPF_ADD, R2, -8), call(1), exit_() }));
		check(!loaded && loaded.error().code == EINVAL &&
			      loaded.error().message.starts_with(
				      "3: R1 type=scalar expected=map_ptr"),
		      "vm::load refuses a call with a wrong argument kind, naming "
		      "the pc and the argument: got \"%s\"",
		      loaded ? "loaded" : loaded.error().message.c_str());
	}
	// bpf_tail_call's prototype takes a map as its prog array; vm::load,
	// which knows no maps, leaves r2 to the resolver.
	{
		verify_options t;
		t.types = false;
		t.helper_proto_of = [](uint32_t id) -> std::optional<helper_proto> {
			if (id == BPF_FUNC_tail_call)
				return tail_call_proto;
			return std::nullopt;
		};
		const code prog = P({ mov(R2, 7), mov(R3, 0), call(12), mov(R0, 0),
				      exit_() });
		auto r = verify(prog, t);
		check(!r && r.error().message.starts_with(
				    "2: helper #12: R2 is not a map"),
		      "a tail call without a prog array is refused");
		vm v(backend::interpreter,
		     vm_options{ false, true, nullptr, ISA_ONLY });
		v.set_tail_call_resolver(
			[](void *, uint64_t, uint64_t) -> const vm * { return nullptr; },
			nullptr);
		check(v.load(prog).ok(),
		      "vm::load leaves a tail call's prog array to the resolver");
	}
	// check_helper_args leaves helpers without a prototype, and programs
	// the structural passes refuse, to verify().
	check(check_helper_args(P({ mov(R1, 0), call(99), exit_() }), o).ok(),
	      "check_helper_args skips a helper without a prototype");
	check(check_helper_args(P({ mov(R1, 0), call(1) }), o).ok(),
	      "check_helper_args accepts what only the structural passes refuse");

	// A helper without a prototype cannot be registered.
	{
		vm v;
		auto st = v.register_helper(
			helper_proto{ .id = 9, .name = "bare", .fn = h_identity });
		check(!st && st.error().code == EINVAL &&
			      st.error().message.find("'bare'") != std::string::npos &&
			      st.error().message.find("no prototype") != std::string::npos,
		      "register_helper refuses a helper without a prototype, "
		      "naming it: got \"%s\"",
		      st ? "registered" : st.error().message.c_str());
	}

	// Written arguments, from the kinds.
	const helper_proto pop{ .id = 88, .name = "map_pop_elem",
				.ret = RET_INTEGER,
				.args = { ARG_CONST_MAP_PTR,
					  ARG_PTR_TO_UNINIT_MAP_VALUE } };
	const helper_proto loop{ .id = 181, .name = "loop", .ret = RET_INTEGER,
				 .args = { ARG_ANYTHING, ARG_PTR_TO_FUNC,
					   ARG_PTR_TO_STACK_OR_NULL,
					   ARG_ANYTHING } };
	check(written_args(READ_PROTO) == 1u << 1,
	      "probe_read writes through r1 (ARG_PTR_TO_UNINIT_MEM)");
	check(written_args(STRTOL_PROTO) == 1u << 4,
	      "strtol writes through r4 only (ARG_PTR_TO_LONG; r1 MEM_RDONLY)");
	check(written_args(LOOKUP_PROTO) == 0 && written_args(UPDATE_PROTO) == 0,
	      "map lookup and update write through no argument");
	check(written_args(pop) == 1u << 2,
	      "map_pop_elem writes its uninitialised value in r2");
	check(written_args(loop) == 1u << 3,
	      "bpf_loop hands r3 (ARG_PTR_TO_STACK) to its callback");
	check(written_args(tail_call_proto) == 1u << 1,
	      "bpf_tail_call hands its ctx on to the next program");

	check(kernel_helper_name(1) == "map_lookup_elem" &&
		      kernel_helper_name(35) == "get_current_task" &&
		      kernel_helper_name(100000).empty() &&
		      kernel_helper_id("bpf_loop") == 181u &&
		      kernel_helper_id("loop") == BPF_FUNC_loop &&
		      !kernel_helper_id("no_such_helper"),
	      "kernel helper names and ids, both ways");
}

// ---------------------------------------------------------------------------
// vm API: lddw resolution, registration, backends.

static void test_vm_api()
{
	{
		vm v;
		auto loaded = v.load(P({ lddw(R0, 0, BPF_PSEUDO_MAP_FD), exit_() }));
		check(!loaded && loaded.error().code == EINVAL &&
			      loaded.error().message.starts_with(
				      "0: lddw with src_reg 1 (BPF_PSEUDO_MAP_FD) "
				      "needs a lddw resolver"),
		      "load refuses a map lddw without a resolver (%s)",
		      loaded ? "accepted" : loaded.error().message.c_str());
	}
	{
		vm v;
		lddw_request seen{};
		v.set_lddw_resolver([&](const lddw_request &rq)
					    -> bpftime::result<uint64_t> {
			seen = rq;
			return 0xabcdef0012345678ull;
		});
		code p = P({ mov(R0, 0), lddw(R0, 0, BPF_PSEUDO_MAP_VALUE),
			     exit_() });
		p[1].imm = 7;
		p[2].imm = 16;
		auto loaded = v.load(p);
		auto r = loaded ? v.exec(nullptr, 0) :
			      bpftime::result<uint64_t>(loaded.error());
		check(r && *r == 0xabcdef0012345678ull && seen.pc == 1 &&
			      seen.kind == BPF_PSEUDO_MAP_VALUE &&
			      seen.imm == 7 && seen.next_imm == 16,
		      "the lddw resolver gets pc, kind, imm and next_imm and "
		      "its value is loaded");
	}
	{
		vm v;
		v.set_lddw_resolver([](const lddw_request &)
					    -> bpftime::result<uint64_t> {
			return bpftime::fail(ENOENT, "map fd 3 not found");
		});
		auto loaded = v.load(P({ lddw(R0, 3, BPF_PSEUDO_MAP_FD), exit_() }));
		check(!loaded && loaded.error().code == ENOENT &&
			      loaded.error().message.find("map fd 3 not found") !=
				      std::string::npos,
		      "a resolver error fails the load with its errno");
		check(v.instructions().empty() && !v.exec(nullptr, 0),
		      "a failed load leaves no program");
	}
	{
		vm v;
		check(v.register_helper(proto(1, "a", h_identity)).ok(),
		      "register_helper accepts a new id");
		auto loaded = v.register_helper(proto(1, "b", h_identity));
		check(!loaded && loaded.error().code == EEXIST,
		      "register_helper refuses a registered id with EEXIST");
		loaded = v.register_helper(proto(2, "null", nullptr));
		check(!loaded && loaded.error().code == EINVAL,
		      "register_helper refuses a null function");
		loaded = v.register_helper(proto(1u << 20, "big", h_identity));
		check(!loaded && loaded.error().code == E2BIG,
		      "register_helper refuses an id above 65535");
		check(v.load(P({ mov(R0, 0), exit_() })).ok(), "load");
		loaded = v.register_helper(proto(3, "late", h_identity));
		check(!loaded && loaded.error().code == EBUSY,
		      "register_helper after load is EBUSY");
		v.unload();
		check(v.register_helper(proto(3, "late", h_identity)).ok(),
		      "register_helper after unload works");
		auto r = v.exec(nullptr, 0);
		check(!r && r.error().code == EINVAL,
		      "exec without a program is EINVAL");
	}
	{
		check(backend_name(backend::interpreter) == "interpreter" &&
			      backend_name(backend::jit_x64) == "jit" &&
			      backend_name(backend::llvm) == "llvm",
		      "backend names");
		auto b = parse_backend("jit");
		check(b && *b == backend::jit_x64, "parse_backend(\"jit\")");
		b = parse_backend("interpreter");
		check(b && *b == backend::interpreter,
		      "parse_backend(\"interpreter\")");
		b = parse_backend("llvm");
		check(b && *b == backend::llvm, "parse_backend(\"llvm\")");
		b = parse_backend("ubpf2");
		check(!b && b.error().code == EINVAL,
		      "parse_backend of an unknown name is EINVAL");
		// Loads where the plugin is, else ENOTSUP saying where it
		// was looked for.
		vm v(backend::llvm);
		auto loaded = v.load(P({ mov(R0, 0), exit_() }));
		const bool avail = backend_available(backend::llvm).ok();
		check(avail ? loaded.ok() :
			      !loaded && loaded.error().code == ENOTSUP &&
				      loaded.error().message.find("tried:") != std::string::npos,
		      "loading on the llvm backend works where its plugin is, else ENOTSUP");
	}
	{
		vm v;
		check(v.load(nullptr, 0).ok() == false, "load of 0 bytes fails");
		const uint8_t bytes[12] = { 0xb7 };
		auto loaded = v.load(bytes, sizeof bytes);
		check(!loaded && loaded.error().message.find("not a multiple of 8") !=
				     std::string::npos,
		      "load refuses a byte count that is not a multiple of 8");
	}
	{
		vm v;
		(void)v.load(P({ mov(R0, 3), exit_() }));
		auto loaded = v.load(v.instructions());
		auto r = loaded ? v.exec(nullptr, 0) :
				  bpftime::result<uint64_t>(loaded.error());
		check(r && *r == 3, "a vm reloads its own instructions()");
	}
	{
		vm a;
		check(a.load(P({ mov(R0, 9), exit_() })).ok(), "load");
		vm b(std::move(a));
		auto r = b.exec(nullptr, 0);
		check(r && *r == 9, "a moved vm keeps its program");
		check(!a.exec(nullptr, 0), "a moved-from vm has no program");
	}
	{
		vm v(backend::interpreter,
		     vm_options{ false, true, nullptr, ISA_ONLY });
		register_all(v);
		auto loaded = v.load(P({ mov(R2, 1234),
				     I(BPF_JMP | BPF_CALL | BPF_X, R2, 0, 0, 0),
				     exit_() }));
		auto r = loaded ? v.exec(nullptr, 0) :
			      bpftime::result<uint64_t>(loaded.error());
		check(!r && r.error().code == EINVAL &&
			      r.error().message.starts_with(
				      "1: callx to unregistered helper id 1234"),
		      "callx to an unregistered id fails the run (%s)",
		      r ? "ran" : r.error().message.c_str());
	}
}

// ---------------------------------------------------------------------------
// The type discipline (type_check.cpp): what the kernel's verifier refuses
// and accepts, with maps described as a registry describes them and the
// kernel's prototypes of the ring buffer helpers (kernel/bpf/ringbuf.c). The
// kernel-differential rows are in @bpftime/loader's verifier.test.ts; these
// are the classes that need map types the registry may not have here.

static uint64_t h_none(uint64_t, uint64_t, uint64_t, uint64_t, uint64_t)
{
	return 0;
}

static std::optional<helper_proto> kernel_protos(uint32_t id)
{
	switch (id) {
	case BPF_FUNC_map_lookup_elem:
		return helper_proto{ .id = id, .name = "map_lookup_elem",
				     .ret = RET_PTR_TO_MAP_VALUE_OR_NULL,
				     .args = { ARG_CONST_MAP_PTR, ARG_PTR_TO_MAP_KEY },
				     .fn = h_none };
	case BPF_FUNC_ringbuf_reserve:
		return helper_proto{ .id = id, .name = "ringbuf_reserve",
				     .ret = RET_PTR_TO_RINGBUF_MEM_OR_NULL,
				     .args = { ARG_CONST_MAP_PTR,
					       ARG_CONST_ALLOC_SIZE_OR_ZERO,
					       ARG_ANYTHING },
				     .fn = h_none };
	case BPF_FUNC_ringbuf_submit:
	case BPF_FUNC_ringbuf_discard:
		return helper_proto{ .id = id, .name = "ringbuf_submit",
				     .ret = RET_VOID,
				     .args = { ARG_PTR_TO_RINGBUF_MEM, ARG_ANYTHING },
				     .fn = h_none };
	case BPF_FUNC_ringbuf_output:
		return helper_proto{ .id = id, .name = "ringbuf_output",
				     .ret = RET_INTEGER,
				     .args = { ARG_CONST_MAP_PTR,
					       ARG_PTR_TO_MEM | MEM_RDONLY,
					       ARG_CONST_SIZE_OR_ZERO, ARG_ANYTHING },
				     .fn = h_none };
	case BPF_FUNC_loop:
		return helper_proto{ .id = id, .name = "loop",
				     .ret = RET_INTEGER,
				     .args = { ARG_ANYTHING, ARG_PTR_TO_FUNC,
					       ARG_PTR_TO_STACK_OR_NULL, ARG_ANYTHING },
				     .fn = h_none };
	case BPF_FUNC_ringbuf_reserve_dynptr:
		return helper_proto{ .id = id, .name = "ringbuf_reserve_dynptr",
				     .ret = RET_INTEGER,
				     .args = { ARG_CONST_MAP_PTR, ARG_ANYTHING,
					       ARG_ANYTHING, ARG_ANYTHING | MEM_WRITE },
				     .fn = h_none };
	case BPF_FUNC_ringbuf_submit_dynptr:
	case BPF_FUNC_ringbuf_discard_dynptr:
		return helper_proto{ .id = id, .name = "ringbuf_submit_dynptr",
				     .ret = RET_VOID,
				     .args = { ARG_ANYTHING | MEM_WRITE, ARG_ANYTHING },
				     .fn = h_none };
	case BPF_FUNC_get_prandom_u32:
		return helper_proto{ .id = id, .name = "get_prandom_u32",
				     .ret = RET_INTEGER, .fn = h_none };
	}
	return std::nullopt;
}

// map 1: a ring buffer of 4096 bytes; map 2: a hash u32 -> 16 bytes; map 3:
// an array of maps whose inner maps are arrays of u32 -> u64.
static verify_options typed_options()
{
	verify_options o;
	o.helper_proto_of = kernel_protos;
	o.ctx_size = 168;
	o.map_of = [](uint8_t, int32_t imm) -> std::optional<map_desc> {
		map_desc d;
		switch (imm) {
		case 1:
			d.type = 27; // BPF_MAP_TYPE_RINGBUF
			d.max_entries = 4096;
			return d;
		case 2:
			d.type = 1; // BPF_MAP_TYPE_HASH
			d.key_size = 4;
			d.value_size = 16;
			d.max_entries = 8;
			return d;
		case 3:
			d.type = 12; // BPF_MAP_TYPE_ARRAY_OF_MAPS
			d.key_size = 4;
			d.value_size = 4;
			d.max_entries = 2;
			d.inner_type = 2;
			d.inner_key_size = 4;
			d.inner_value_size = 8;
			d.inner_max_entries = 1;
			return d;
		}
		return std::nullopt;
	};
	return o;
}

static void test_types()
{
	const code reserve = P({ lddw(R1, 1, BPF_PSEUDO_MAP_FD), mov(R2, 16),
				 mov(R3, 0), call(BPF_FUNC_ringbuf_reserve) });
	const code key = P({ st(BPF_W, R10, -4, 0), movr(R2, R10),
			     alu64(BPF_ADD, R2, -4) });
	struct type_case {
		const char *name;
		code prog;
		const char *refused; // substring of the message, or nullptr
	};
	const type_case cases[] = {
		{ "a ring buffer record submitted on every path",
		  P({ reserve, jmp(BPF_JEQ, R0, 0, 4), st(BPF_DW, R0, 8, 1),
		      movr(R1, R0), mov(R2, 0), call(BPF_FUNC_ringbuf_submit),
		      mov(R0, 0), exit_() }),
		  nullptr },
		{ "a ring buffer record not released on one path",
		  P({ reserve, jmp(BPF_JEQ, R0, 0, 6), call(BPF_FUNC_get_prandom_u32),
		      jmp(BPF_JEQ, R0, 0, 4), mov(R0, 0), exit_(),
		      mov(R0, 0), exit_(), mov(R0, 0), exit_() }),
		  "Unreleased reference id=" },
		{ "a ring buffer record written after its submit",
		  P({ reserve, jmp(BPF_JEQ, R0, 0, 5), movr(R6, R0), movr(R1, R0),
		      mov(R2, 0), call(BPF_FUNC_ringbuf_submit),
		      st(BPF_DW, R6, 0, 1), mov(R0, 0), exit_() }),
		  "R6 invalid mem access 'scalar'" },
		{ "a ring buffer record submitted twice",
		  P({ reserve, jmp(BPF_JEQ, R0, 0, 7), movr(R6, R0), movr(R1, R0),
		      mov(R2, 0), call(BPF_FUNC_ringbuf_submit), movr(R1, R6),
		      mov(R2, 0), call(BPF_FUNC_ringbuf_submit), mov(R0, 0),
		      exit_() }),
		  "R1 type=scalar expected=ringbuf_mem" },
		{ "a ring buffer record written past its reserved size",
		  P({ reserve, jmp(BPF_JEQ, R0, 0, 4), st(BPF_DW, R0, 16, 1),
		      movr(R1, R0), mov(R2, 0), call(BPF_FUNC_ringbuf_submit),
		      mov(R0, 0), exit_() }),
		  "invalid access to memory, mem_size=16 off=16 size=8" },
		{ "a ring buffer record submitted before its NULL check",
		  P({ reserve, movr(R1, R0), mov(R2, 0),
		      call(BPF_FUNC_ringbuf_submit), mov(R0, 0), exit_() }),
		  "R1 type=ringbuf_mem_or_null expected=ringbuf_mem" },
		{ "a lookup in a ring buffer",
		  P({ key, lddw(R1, 1, BPF_PSEUDO_MAP_FD),
		      call(BPF_FUNC_map_lookup_elem), mov(R0, 0), exit_() }),
		  "cannot pass map_type 27 into func bpf_map_lookup_elem#1" },
		{ "the NULL check of a copy refines the original",
		  P({ key, lddw(R1, 2, BPF_PSEUDO_MAP_FD),
		      call(BPF_FUNC_map_lookup_elem), movr(R6, R0),
		      jmp(BPF_JEQ, R6, 0, 1), ldx(BPF_DW, R1, R0, 8), mov(R0, 0),
		      exit_() }),
		  nullptr },
		{ "a map of maps lookup gives a map, then a value of the inner map",
		  P({ key, lddw(R1, 3, BPF_PSEUDO_MAP_FD),
		      call(BPF_FUNC_map_lookup_elem), jmp(BPF_JEQ, R0, 0, 8),
		      movr(R1, R0), key, call(BPF_FUNC_map_lookup_elem),
		      jmp(BPF_JEQ, R0, 0, 1), ldx(BPF_DW, R1, R0, 0), mov(R0, 0),
		      exit_() }),
		  nullptr },
		{ "a map of maps lookup result read as a value",
		  P({ key, lddw(R1, 3, BPF_PSEUDO_MAP_FD),
		      call(BPF_FUNC_map_lookup_elem), jmp(BPF_JEQ, R0, 0, 1),
		      ldx(BPF_DW, R1, R0, 0), mov(R0, 0), exit_() }),
		  "R0 invalid mem access 'map_ptr'" },
		{ "a map the verifier is not told about used as a lookup's map",
		  P({ key, lddw(R1, 9, BPF_PSEUDO_MAP_FD),
		      call(BPF_FUNC_map_lookup_elem), mov(R0, 0), exit_() }),
		  "key size is not known to the verifier" },
		{ "bpf_loop with a callback that reads its stack context",
		  P({ st(BPF_DW, R10, -8, 3), mov(R1, 4), lddw(R2, 0, BPF_PSEUDO_FUNC),
		      movr(R3, R10), alu64(BPF_ADD, R3, -8), mov(R4, 0),
		      call(BPF_FUNC_loop), exit_(),
		      // callback(index, ctx)
		      ldx(BPF_DW, R0, R2, 0), mov(R0, 0), exit_() }),
		  nullptr },
		{ "an endless loop around a bpf_loop call",
		  // r10 >= 0 always holds: the outer loop never ends, however
		  // the callback's iterations converge.
		  P({ st(BPF_DW, R10, -8, 0), mov(R1, 4),
		      lddw(R2, 0, BPF_PSEUDO_FUNC), movr(R3, R10),
		      alu64(BPF_ADD, R3, -8), mov(R4, 0), call(BPF_FUNC_loop),
		      ldx(BPF_DW, R6, R10, -8), alu64r(BPF_ADD, R0, R6),
		      jmp(BPF_JGE, R10, 0, -11), exit_(),
		      ldx(BPF_DW, R1, R2, 0), alu64(BPF_ADD, R1, 1),
		      stx(BPF_DW, R2, R1, 0), mov(R0, 0), exit_() }),
		  "infinite loop detected" },
		{ "bpf_loop with a callback returning 2",
		  P({ mov(R1, 4), lddw(R2, 0, BPF_PSEUDO_FUNC), mov(R3, 0),
		      mov(R4, 0), call(BPF_FUNC_loop), exit_(), mov(R0, 2),
		      exit_() }),
		  "should have been in [0, 1]" },
		{ "a ring buffer dynptr reserved and submitted",
		  P({ lddw(R1, 1, BPF_PSEUDO_MAP_FD), mov(R2, 16), mov(R3, 0),
		      movr(R4, R10), alu64(BPF_ADD, R4, -16),
		      call(BPF_FUNC_ringbuf_reserve_dynptr), movr(R1, R10),
		      alu64(BPF_ADD, R1, -16), mov(R2, 0),
		      call(BPF_FUNC_ringbuf_submit_dynptr), mov(R0, 0), exit_() }),
		  nullptr },
		{ "a dynptr discarded where none was made (found by the fuzz)",
		  P({ lddw(R1, 1, BPF_PSEUDO_MAP_FD), mov(R2, 16), mov(R3, 0),
		      movr(R4, R10), alu64(BPF_ADD, R4, -16),
		      call(BPF_FUNC_ringbuf_reserve_dynptr), movr(R1, R10),
		      alu64(BPF_ADD, R1, -184), mov(R2, 0),
		      call(BPF_FUNC_ringbuf_discard_dynptr), mov(R0, 0), exit_() }),
		  "Expected an initialized dynptr as arg #1" },
		{ "a dynptr used after its submit",
		  P({ lddw(R1, 1, BPF_PSEUDO_MAP_FD), mov(R2, 16), mov(R3, 0),
		      movr(R4, R10), alu64(BPF_ADD, R4, -16),
		      call(BPF_FUNC_ringbuf_reserve_dynptr), movr(R1, R10),
		      alu64(BPF_ADD, R1, -16), mov(R2, 0),
		      call(BPF_FUNC_ringbuf_submit_dynptr), movr(R1, R10),
		      alu64(BPF_ADD, R1, -16), mov(R2, 0),
		      call(BPF_FUNC_ringbuf_discard_dynptr), mov(R0, 0), exit_() }),
		  "Expected an initialized dynptr as arg #1" },
		{ "a void helper's r0 read",
		  P({ reserve, jmp(BPF_JEQ, R0, 0, 3), movr(R1, R0), mov(R2, 0),
		      call(BPF_FUNC_ringbuf_discard), exit_() }),
		  "R0 !read_ok" },
	};
	// lddw(R2, 0, PSEUDO_FUNC) targets the instruction after the lddw's
	// second slot plus imm: point it at the callbacks above.
	for (const type_case &c : cases) {
		code prog = c.prog;
		for (size_t pc = 0; pc + 1 < prog.size(); pc++) {
			if (prog[pc].code == (BPF_LD | BPF_IMM | BPF_DW) &&
			    prog[pc].src_reg == BPF_PSEUDO_FUNC) {
				// The callback starts after the first exit that
				// follows the call.
				size_t t = pc + 2;
				while (t < prog.size() && prog[t].code != (BPF_JMP | BPF_EXIT))
					t++;
				prog[pc].imm = int32_t(t + 1) - int32_t(pc) - 1;
			}
			if (prog[pc].code == (BPF_LD | BPF_IMM | BPF_DW))
				pc++;
		}
		auto r = verify(prog, typed_options());
		if (!c.refused)
			check(r.ok(), "types: accepts %s (%s)", c.name,
			      r ? "" : r.error().message.c_str());
		else
			check(!r && r.error().message.find(c.refused) != std::string::npos,
			      "types: refuses %s with '%s' (got '%s')", c.name,
			      c.refused, r ? "accepted" : r.error().message.c_str());
	}

	// A 4,096-instruction program of straight-line and branching code
	// verifies well inside the kernel's complexity limit.
	code big;
	big.push_back(mov(R0, 0)[0]);
	for (int k = 0; k < 1022; k++) {
		for (const insn &i : P({ ldx(BPF_DW, R2, R1, 8 * (k % 20)),
					 jmp(BPF_JGT, R2, 100, 1),
					 alu64r(BPF_ADD, R0, R2), alu64(BPF_AND, R0, 0xffff) }))
			big.push_back(i);
	}
	big.push_back(exit_()[0]);
	verify_stats stats;
	auto r = verify(big, typed_options(), &stats);
	check(r.ok(), "types: a %zu-instruction program verifies (%s)", big.size(),
	      r ? "" : r.error().message.c_str());
	check(stats.insns_processed >= big.size() &&
		      stats.insns_processed < 200000,
	      "types: the program's paths are pruned (%" PRIu64 " processed)",
	      stats.insns_processed);
}

// ---------------------------------------------------------------------------
// The opcode table itself.

static void test_opcode_table()
{
	size_t valid = 0;
	for (const opcode_info &o : opcode_table)
		valid += o.valid;
	check(valid == opcode_count && opcode_count == 120,
	      "the opcode table has 120 distinct opcodes (got %zu/%zu)", valid,
	      opcode_count);
	check(!opcode_valid(0x20) && is_legacy_packet_load(0x20) &&
		      is_legacy_packet_load(0x50) && !is_legacy_packet_load(0x18),
	      "legacy packet loads are out of the table and recognised");
	check(insn_mnemonic(insn{ 0x3f, 0, 1, 1, 0 }) == "sdiv" &&
		      insn_mnemonic(insn{ 0x9c, 0, 1, 1, 0 }) == "smod32" &&
		      insn_mnemonic(insn{ 0xbc, 0, 1, 8, 0 }) == "movsx832" &&
		      insn_mnemonic(insn{ 0xdc, 0, 0, 0, 32 }) == "be32" &&
		      insn_mnemonic(insn{ 0xd7, 0, 0, 0, 64 }) == "bswap64" &&
		      insn_mnemonic(insn{ 0x07, 0, 0, 0, 1 }) == "add",
	      "insn_mnemonic names the variants");
	const reg_use u = register_use(insn{ 0xdb, 1, 2, 0, BPF_CMPXCHG });
	check(u.reads == 0b111 && u.writes == 0b1,
	      "cmpxchg reads dst, src and r0 and writes r0");
	const reg_use c = register_use(insn{ 0x85, 0, 0, 0, 1 });
	check(c.writes == 1 && c.clobbers == 0x3e,
	      "a call writes r0 and clobbers r1-r5");
	check(atomic_op_name(BPF_XCHG) == "xchg" &&
		      atomic_op_name(BPF_ADD | BPF_FETCH) == "fetch_add",
	      "atomic_op_name");
}

// ---------------------------------------------------------------------------

// vm::end_run_after_fault(), as a SIGSEGV handler calls it (the agent's,
// packages/agent/native/src/fault_guard.cpp): the runner's run ends with
// err = EFAULT and r0 = 0, and the next run is unaffected. A handler that
// cannot end the run jumps back here, so a failure is reported, not a crash.
static sigjmp_buf g_fault_escape;
static int g_faults_seen;

static void on_test_fault(int, siginfo_t *, void *uc)
{
	g_faults_seen++;
	if (!end_run_after_fault(uc))
		siglongjmp(g_fault_escape, 1);
}

static uint64_t h_deref(uint64_t p, uint64_t, uint64_t, uint64_t, uint64_t)
{
	return *reinterpret_cast<volatile const uint64_t *>(p);
}

// Programs that fault on purpose: the type checker would refuse them, as
// BPFTIME_VERIFIER=off lets through.
static vm_options fault_test_options()
{
	vm_options o;
	o.strict_verifier = false;
	o.type_check = false;
	return o;
}

static void test_fault_recovery(const backend_under_test &bt)
{
	if (bt.bounds_check)
		return; // a bad access is its own EFAULT there, no signal
	constexpr uint32_t HELPER_DEREF = 0x7001;
	struct sigaction sa, old;
	memset(&sa, 0, sizeof sa);
	sa.sa_sigaction = on_test_fault;
	sa.sa_flags = SA_SIGINFO;
	sigaction(SIGSEGV, &sa, &old);
	struct one_case {
		const char *what;
		code prog;
		void *ctx;
		bool jit_too; // see below
	};
	uint64_t good = 42;
	const one_case cases[] = {
		{ "a load through a bad context pointer",
		  P({ ldx(BPF_DW, R0, R1, 0), exit_() }),
		  reinterpret_cast<void *>(0x10), true },
		// bpf_loop's callback loads through its NULL context: the
		// whole run ends, not only the callback's.
		{ "a fault in a callback that a helper runs",
		  P({ mov(R1, 4), lddw(R2, 6, BPF_PSEUDO_FUNC), mov(R3, 0),
		      mov(R4, 0), call(HELPER_LOOP), mov(R0, 77), exit_(),
		      ldx(BPF_DW, R0, R2, 0), exit_() }),
		  &good, true },
		// On the JIT this one needs the thread-local the agent's build
		// enables (BPFTIME_VM_STATIC_TLS); packages/agent tests it.
		{ "a fault inside a helper",
		  P({ mov(R1, 0x18), call(HELPER_DEREF), exit_() }), &good,
		  false },
	};
	for (const one_case &c : cases) {
		if (bt.b == backend::jit_x64 && !c.jit_too)
			continue;
		vm v(bt.b, fault_test_options());
		register_all(v);
		(void)v.register_helper(proto(HELPER_DEREF, "deref", h_deref));
		auto loaded = v.load(c.prog);
		if (!loaded) {
			check(false, "[%s] fault: %s loads: %s", bt.name, c.what,
			      loaded.error().message.c_str());
			continue;
		}
		runner run = v.get_runner();
		// Twice: the first recovery leaves the runner usable.
		for (int k = 0; k < 2; k++) {
			g_faults_seen = 0;
			int err = -1;
			uint64_t r0 = 1;
			if (sigsetjmp(g_fault_escape, 1) == 0)
				r0 = run(c.ctx, 8, &err);
			else
				err = -2;
			check(err == EFAULT && r0 == 0 && g_faults_seen == 1,
			      "[%s] fault: %s ends the run with EFAULT, run %d "
			      "(got r0 %" PRIu64 ", err %d, %d faults)",
			      bt.name, c.what, k + 1, r0, err, g_faults_seen);
		}
	}
	{
		// A good run after the faults: nothing of them is left over.
		vm v(bt.b, fault_test_options());
		(void)v.load(P({ ldx(BPF_DW, R0, R1, 0), exit_() }));
		int err = -1;
		uint64_t r0 = v.get_runner()(&good, 8, &err);
		check(r0 == 42 && err == 0,
		      "[%s] fault: a run after them is unaffected (got %" PRIu64
		      ", %d)",
		      bt.name, r0, err);
	}
	ucontext_t uc;
	getcontext(&uc);
	check(!end_run_after_fault(&uc),
	      "[%s] fault: end_run_after_fault outside a run changes nothing",
	      bt.name);
	sigaction(SIGSEGV, &old, nullptr);
}

static void test_no_allocation(const backend_under_test &bt)
{
	vm v(bt.b, vm_options{ bt.bounds_check, true, nullptr, ISA_ONLY });
	register_all(v);
	uint64_t counter = 0;
	auto loaded = v.load(P({ st(BPF_DW, R10, -8, 0), mov(R1, 4),
			     lddw(R2, 7, BPF_PSEUDO_FUNC), movr(R3, R10),
			     alu64(BPF_ADD, R3, -8), mov(R4, 0),
			     call(HELPER_LOOP), ldx(BPF_DW, R0, R10, -8),
			     exit_(), ldx(BPF_DW, R3, R2, 0),
			     alu64r(BPF_ADD, R3, R1), stx(BPF_DW, R2, R3, 0),
			     mov(R1, 1), call_local(2), mov(R0, 0), exit_(),
			     movr(R0, R1), exit_() }));
	if (!loaded) {
		check(false, "[%s] allocation test loads: %s", bt.name,
		      loaded.error().message.c_str());
		return;
	}
	g_allocs = 0;
	g_count_allocs = true;
	uint64_t sum = 0;
	for (int k = 0; k < 100; k++) {
		auto r = v.exec(&counter, sizeof counter);
		sum += r ? *r : 1000000;
	}
	g_count_allocs = false;
	check(g_allocs == 0 && sum == 600,
	      "[%s] exec with helper, callback and local calls allocates "
	      "nothing (%" PRIu64 " allocations, sum %" PRIu64 ")",
	      bt.name, g_allocs.load(), sum);
}

// ---------------------------------------------------------------------------
// vm_options::insn_counter: the interpreter counts what it executes. Each
// expected count is the number of instructions the program runs, counted by
// hand from its control flow (a lddw is one instruction).

struct count_case {
	const char *name;
	code prog;
	uint64_t expect_r0;
	uint64_t expect_insns;
};

static std::vector<count_case> count_cases()
{
	return {
		// 2 movs, 10 trips of 3, exit. r0 = 10 + 9 + ... + 1.
		{ "a loop of 10 trips counts every instruction of every trip",
		  P({ mov(R0, 0), mov(R1, 10), alu64r(BPF_ADD, R0, R1),
		      alu64(BPF_SUB, R1, 1), jmp(BPF_JNE, R1, 0, -3),
		      exit_() }),
		  55, 33 },
		{ "a fused mov64 + add pair counts as two",
		  P({ mov(R1, 5), movr(R0, R1), alu64(BPF_ADD, R0, 3),
		      exit_() }),
		  8, 4 },
		{ "a fused mov32 + add pair counts as two",
		  P({ mov(R1, 5), alu32r(BPF_MOV, R0, R1),
		      alu32r(BPF_ADD, R0, R1), exit_() }),
		  10, 4 },
		{ "a fused lddw + add pair counts as two, the lddw once",
		  P({ lddw(R0, 0x100000000ull), alu64(BPF_ADD, R0, 1),
		      exit_() }),
		  0x100000001ull, 3 },
		// 2 movs, 4 trips of 5 (the first two fused), mov, exit.
		{ "a fused pair in a loop counts as two on every trip",
		  P({ mov(R2, 0), mov(R1, 4), movr(R0, R1),
		      alu64(BPF_MUL, R0, 2), alu64r(BPF_ADD, R2, R0),
		      alu64(BPF_SUB, R1, 1), jmp(BPF_JNE, R1, 0, -5),
		      movr(R0, R2), exit_() }),
		  20, 24 },
		// mov, mov, jeq (taken), the pair's second alone, exit.
		{ "a jump to the second of a fused pair counts it once",
		  P({ mov(R0, 7), mov(R1, 1), jmp(BPF_JEQ, R1, 1, 1),
		      movr(R0, R1), alu64(BPF_ADD, R0, 3), exit_() }),
		  10, 5 },
		// mov, call, the callee's mov and exit, the caller's exit.
		{ "a local call counts the call, the callee and both exits",
		  P({ mov(R1, 3), call_local(1), exit_(), movr(R0, R1),
		      exit_() }),
		  3, 5 },
		// main: mov, lddw, mov, mov, call, exit; bpf_loop runs the
		// callback (mov, exit) three times.
		{ "callbacks run by a helper count in the run that called it",
		  P({ mov(R1, 3), lddw(R2, 5, BPF_PSEUDO_FUNC), mov(R3, 0),
		      mov(R4, 0), call(HELPER_LOOP), exit_(), mov(R0, 0),
		      exit_() }),
		  3, 12 },
	};
}

static void test_insn_counter(const backend_under_test &bt)
{
	uint64_t count = 0;
	if (bt.b != backend::interpreter) {
		vm v(bt.b, vm_options{ bt.bounds_check, true, &count, ISA_ONLY });
		auto loaded = v.load(P({ mov(R0, 0), exit_() }));
		check(!loaded && loaded.error().code == ENOTSUP,
		      "[%s] insn_counter is refused with ENOTSUP outside the "
		      "interpreter",
		      bt.name);
		return;
	}
	for (const count_case &cc : count_cases()) {
		count = 0;
		vm v(bt.b, vm_options{ bt.bounds_check, true, &count, ISA_ONLY });
		register_all(v);
		auto loaded = v.load(cc.prog);
		if (!loaded) {
			check(false, "[%s] %s: load: %s", bt.name, cc.name,
			      loaded.error().message.c_str());
			continue;
		}
		auto r = v.exec(nullptr, 0);
		check(r && *r == cc.expect_r0 && count == cc.expect_insns,
		      "[%s] %s: r0 0x%" PRIx64 " (want 0x%" PRIx64
		      "), %" PRIu64 " instructions (want %" PRIu64 ")",
		      bt.name, cc.name, r ? *r : 0, cc.expect_r0, count,
		      cc.expect_insns);
		auto again = v.exec(nullptr, 0);
		check(again && count == 2 * cc.expect_insns,
		      "[%s] %s: a second exec adds to the counter (%" PRIu64
		      ")",
		      bt.name, cc.name, count);
	}
}

// vm::set_inline_resolver: the JIT emits an array lookup in place of a call
// whose r1 is one lddw's value on every path; the interpreter, and the JIT
// where r1 may come from elsewhere, call the helper.
static uint64_t h_lookup_marker(uint64_t, uint64_t, uint64_t, uint64_t, uint64_t)
{
	return 0xca11;
}

static void test_inline_lookups(const backend_under_test &bt)
{
	const vm_options o{ bt.bounds_check, true, nullptr, ISA_ONLY };
	static uint64_t values[5] = { 10, 11, 12, 13, 14 };
	constexpr uint64_t MAP = 0x5000;
	int asked = 0, asked_other = 0;
	auto prepare = [&](vm &v) {
		(void)v.register_helper(proto(1, "lookup", h_lookup_marker));
		v.set_inline_resolver([&](uint32_t id, uint64_t r1) -> std::optional<inline_helper> {
			if (id != 1 || r1 != MAP) {
				asked_other++;
				return std::nullopt;
			}
			asked++;
			inline_helper h;
			h.kind = inline_helper::array_lookup;
			h.base = uint64_t(uintptr_t(values));
			h.stride = 8;
			h.max_entries = 4; // values[4] lies past the end
			return h;
		});
		if (bt.bounds_check)
			v.add_memory_region({ uint64_t(uintptr_t(values)), sizeof values, false });
	};
	// *(u32 *)(r10 - 4) = key; r0 = lookup(MAP, r10 - 4); r0 = r0 ? *r0 : 99
	auto straight = [&](int32_t key) {
		return P({ mov(R6, key), stx(BPF_W, R10, R6, -4), lddw(R1, MAP), movr(R2, R10),
			   alu64(BPF_ADD, R2, -4), call(1), jmp(BPF_JEQ, R0, 0, 2),
			   ldx(BPF_DW, R0, R0, 0), exit_(), mov(R0, 99), exit_() });
	};
	const bool jit = bt.b == backend::jit_x64;
	for (int32_t key : { 0, 3, 4, -1 }) {
		vm v(bt.b, o);
		prepare(v);
		auto loaded = v.load(straight(key));
		check(loaded.ok(), "[%s] the lookup program loads", bt.name);
		// Inline: the element, or NULL past max_entries. The
		// interpreter calls the helper, whose marker is no address:
		// its rows are loaded, not run.
		if (jit && loaded) {
			auto r = v.exec(nullptr, 0);
			const uint64_t want = key >= 0 && key < 4 ? values[key] : 99;
			check(r && *r == want, "[%s] an inlined array lookup of index %d gives %" PRIu64 " (got %s)",
			      bt.name, key, want, r ? std::to_string(*r).c_str() : r.error().message.c_str());
		}
	}
	check(jit ? asked == 4 : asked == 0, "[%s] the resolver is asked by the JIT only (%d)", bt.name, asked);
	// r1 chosen on a branch: no single lddw, the helper is called.
	{
		vm v(bt.b, o);
		prepare(v);
		int before = asked;
		auto loaded = v.load(P({ lddw(R1, MAP), jmp(BPF_JEQ, R2, 7, 2), lddw(R1, MAP + 8),
					 mov(R2, 0), call(1), exit_() }));
		auto r = loaded ? v.exec(nullptr, 0) : bpftime::result<uint64_t>(loaded.error());
		check(r && *r == 0xca11 && asked == before,
		      "[%s] a call whose r1 is set on two paths calls the helper", bt.name);
	}
	(void)asked_other;
	// Per-CPU: base + index * stride + cpu * cpu_stride, cpu as
	// sched_getcpu() says (read again when the thread moved meanwhile).
	if (jit) {
		static uint8_t area[4096];
		vm v(bt.b, o);
		(void)v.register_helper(proto(1, "lookup", h_lookup_marker));
		v.set_inline_resolver([&](uint32_t, uint64_t r1) -> std::optional<inline_helper> {
			if (r1 != MAP)
				return std::nullopt;
			inline_helper h;
			h.kind = inline_helper::percpu_array_lookup;
			h.base = uint64_t(uintptr_t(area));
			h.stride = 16;
			h.max_entries = 2;
			h.cpu_stride = 32;
			return h;
		});
		// r0 = the lookup's pointer itself
		auto loaded = v.load(P({ mov(R6, 1), stx(BPF_W, R10, R6, -4), lddw(R1, MAP), movr(R2, R10),
					 alu64(BPF_ADD, R2, -4), call(1), exit_() }));
		bool same = false;
		uint64_t got = 0, want = 0;
		for (int tries = 0; tries < 100 && loaded && !same; tries++) {
			int before = sched_getcpu();
			auto r = v.exec(nullptr, 0);
			int after = sched_getcpu();
			got = r ? *r : 0;
			want = uint64_t(uintptr_t(area)) + 16 + uint64_t(before) * 32;
			same = before == after;
		}
		check(loaded && same && got == want,
		      "[%s] an inlined per-CPU array lookup adds the CPU's offset (got %#" PRIx64 ", want %#" PRIx64 ")",
		      bt.name, got, want);
	}
}

int main(int argc, char **argv)
{
	for (int a = 1; a < argc; a++)
		if (std::strcmp(argv[a], "-v") == 0)
			g_verbose = true;

	test_opcode_table();
	test_verifier();
	test_context_writes();
	test_helper_protos();
	test_types();
	test_vm_api();
	test_bounds_check();
	for (const backend_under_test &bt : g_backends) {
		if (std::string why = backend_unavailable(bt); !why.empty()) {
			skip(bt.name, why);
			continue;
		}
		test_run_cases(bt);
		test_tail_calls(bt);
		test_inline_lookups(bt);
		test_runner(bt);
		test_fault_recovery(bt);
		test_callbacks(bt);
		test_no_allocation(bt);
		test_insn_counter(bt);
	}
	std::printf("%d passed, %d failed, %d skipped\n", g_passed, g_failed,
		    g_skipped);
	return g_failed ? 1 : 0;
}
