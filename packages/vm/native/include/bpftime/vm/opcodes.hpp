// opcodes.hpp: the one opcode table of bpftime, after the kernel's
// BPF_INSN_MAP (kernel/bpf/core.c).
//
// BPFTIME_VM_OPCODES(X) lists every opcode byte that RFC 9669 defines for
// "cpu v4", once. Everything that must agree on what an opcode is expands it:
// the verifier's validity check (opcode_table, check_fields), the
// interpreter's label table and the x86-64 JIT. The TypeScript disassembler
// decodes on its own (it runs without the addon); the binding exports the
// table's verdict (opcodeTableAccepts) and test/opcode-table.test.ts holds
// the disassembler to it. A byte that is not in the list is not an
// instruction, whatever a backend might be able to do with it.
//
//   const auto &info = bpftime::vm::opcode_table[i.code];
//   if (!info.valid) reject("invalid opcode");
//   if (auto f = bpftime::vm::check_fields(i); f != insn_field::none) ...
//
// Not in the table, on purpose: the legacy packet loads BPF_LD | BPF_ABS and
// BPF_LD | BPF_IND (0x20 0x28 0x30 0x40 0x48 0x50). They read an skb that a
// user-space runtime does not have; the verifier names them when it refuses
// them (is_legacy_packet_load). Neither are the 8/16-bit atomics and the
// load-acquire/store-release forms that came after RFC 9669.
#pragma once

#include <bpftime/vm/insn.hpp>

#include <array>
#include <cstdint>
#include <string_view>

namespace bpftime::vm {

// What kind of instruction an opcode is: the mnemonic class a disassembler
// prints and the shape a backend emits.
enum class insn_kind : uint8_t {
	invalid,
	alu,    // ALU/ALU64 binary operation and mov (dst op= src|imm)
	neg,    // dst = -dst
	endian, // le/be (ALU) and unconditional bswap (ALU64), width in imm
	jcond,  // conditional jump, pc += off + 1 when taken
	ja,     // JMP|JA: pc += off + 1
	ja32,   // JMP32|JA ("gotol"): pc += imm + 1
	call,   // helper (src 0), local (src 1) or kfunc (src 2) call
	callx,  // helper call through a register holding the id (dst field)
	exit,
	lddw,   // 64-bit immediate load, two slots
	ldx,    // dst = *(uN *)(src + off), zero-extended
	ldxsx,  // dst = *(sN *)(src + off), sign-extended (BPF_MEMSX)
	st,     // *(uN *)(dst + off) = imm
	stx,    // *(uN *)(dst + off) = src
	atomic, // atomic read-modify-write at dst + off, operation in imm
};

// Which values a field may hold; check_fields() applies them.
enum class field_rule : uint8_t {
	zero,        // reserved: must be 0
	any,         // every value has a meaning
	reg,         // a register number, 0..10
	pseudo_ld,   // lddw src_reg: 0 or a BPF_PSEUDO_* kind (1..6)
	pseudo_call, // call src_reg: helper 0, BPF_PSEUDO_CALL 1, kfunc 2
	divmod,      // 0 = unsigned, 1 = signed (sdiv/smod)
	movsx32,     // 0 = mov, 8 or 16 = movsx (ALU)
	movsx64,     // 0 = mov, 8, 16 or 32 = movsx (ALU64)
	endian,      // 16, 32 or 64
	atomic_op,   // one of BPFTIME_VM_ATOMIC_OPS
};

// X(code, name, mnemonic, kind, dst, src, off, imm)
//   code      the opcode byte
//   name      a C identifier, unique (interpreter labels, JIT cases)
//   mnemonic  the base mnemonic in the syntax of the bpf_conformance
//             assembler (ALU64 ops bare, ALU and JMP32 ops with "32");
//             insn_mnemonic() refines it by off/imm where those select a
//             variant (sdiv, movsx8, be16, ...)
//   kind      insn_kind
//   dst..imm  field_rule of each field
#define BPFTIME_VM_OPCODES(X)                                                  \
	/* ALU64: dst = dst op (imm sign-extended to 64 bits | src) */         \
	X(0x07, add64_imm, "add", alu, reg, zero, zero, any)                   \
	X(0x0f, add64_reg, "add", alu, reg, reg, zero, zero)                   \
	X(0x17, sub64_imm, "sub", alu, reg, zero, zero, any)                   \
	X(0x1f, sub64_reg, "sub", alu, reg, reg, zero, zero)                   \
	X(0x27, mul64_imm, "mul", alu, reg, zero, zero, any)                   \
	X(0x2f, mul64_reg, "mul", alu, reg, reg, zero, zero)                   \
	X(0x37, div64_imm, "div", alu, reg, zero, divmod, any)                 \
	X(0x3f, div64_reg, "div", alu, reg, reg, divmod, zero)                 \
	X(0x47, or64_imm, "or", alu, reg, zero, zero, any)                     \
	X(0x4f, or64_reg, "or", alu, reg, reg, zero, zero)                     \
	X(0x57, and64_imm, "and", alu, reg, zero, zero, any)                   \
	X(0x5f, and64_reg, "and", alu, reg, reg, zero, zero)                   \
	X(0x67, lsh64_imm, "lsh", alu, reg, zero, zero, any)                   \
	X(0x6f, lsh64_reg, "lsh", alu, reg, reg, zero, zero)                   \
	X(0x77, rsh64_imm, "rsh", alu, reg, zero, zero, any)                   \
	X(0x7f, rsh64_reg, "rsh", alu, reg, reg, zero, zero)                   \
	X(0x87, neg64, "neg", neg, reg, zero, zero, zero)                      \
	X(0x97, mod64_imm, "mod", alu, reg, zero, divmod, any)                 \
	X(0x9f, mod64_reg, "mod", alu, reg, reg, divmod, zero)                 \
	X(0xa7, xor64_imm, "xor", alu, reg, zero, zero, any)                   \
	X(0xaf, xor64_reg, "xor", alu, reg, reg, zero, zero)                   \
	X(0xb7, mov64_imm, "mov", alu, reg, zero, zero, any)                   \
	X(0xbf, mov64_reg, "mov", alu, reg, reg, movsx64, zero)                \
	X(0xc7, arsh64_imm, "arsh", alu, reg, zero, zero, any)                 \
	X(0xcf, arsh64_reg, "arsh", alu, reg, reg, zero, zero)                 \
	X(0xd7, bswap, "bswap", endian, reg, zero, zero, endian)               \
	/* ALU: 32-bit operation, result zero-extended to 64 bits */           \
	X(0x04, add32_imm, "add32", alu, reg, zero, zero, any)                 \
	X(0x0c, add32_reg, "add32", alu, reg, reg, zero, zero)                 \
	X(0x14, sub32_imm, "sub32", alu, reg, zero, zero, any)                 \
	X(0x1c, sub32_reg, "sub32", alu, reg, reg, zero, zero)                 \
	X(0x24, mul32_imm, "mul32", alu, reg, zero, zero, any)                 \
	X(0x2c, mul32_reg, "mul32", alu, reg, reg, zero, zero)                 \
	X(0x34, div32_imm, "div32", alu, reg, zero, divmod, any)               \
	X(0x3c, div32_reg, "div32", alu, reg, reg, divmod, zero)               \
	X(0x44, or32_imm, "or32", alu, reg, zero, zero, any)                   \
	X(0x4c, or32_reg, "or32", alu, reg, reg, zero, zero)                   \
	X(0x54, and32_imm, "and32", alu, reg, zero, zero, any)                 \
	X(0x5c, and32_reg, "and32", alu, reg, reg, zero, zero)                 \
	X(0x64, lsh32_imm, "lsh32", alu, reg, zero, zero, any)                 \
	X(0x6c, lsh32_reg, "lsh32", alu, reg, reg, zero, zero)                 \
	X(0x74, rsh32_imm, "rsh32", alu, reg, zero, zero, any)                 \
	X(0x7c, rsh32_reg, "rsh32", alu, reg, reg, zero, zero)                 \
	X(0x84, neg32, "neg32", neg, reg, zero, zero, zero)                    \
	X(0x94, mod32_imm, "mod32", alu, reg, zero, divmod, any)               \
	X(0x9c, mod32_reg, "mod32", alu, reg, reg, divmod, zero)               \
	X(0xa4, xor32_imm, "xor32", alu, reg, zero, zero, any)                 \
	X(0xac, xor32_reg, "xor32", alu, reg, reg, zero, zero)                 \
	X(0xb4, mov32_imm, "mov32", alu, reg, zero, zero, any)                 \
	X(0xbc, mov32_reg, "mov32", alu, reg, reg, movsx32, zero)              \
	X(0xc4, arsh32_imm, "arsh32", alu, reg, zero, zero, any)               \
	X(0xcc, arsh32_reg, "arsh32", alu, reg, reg, zero, zero)               \
	X(0xd4, le, "le", endian, reg, zero, zero, endian)                     \
	X(0xdc, be, "be", endian, reg, zero, zero, endian)                     \
	/* JMP: 64-bit comparisons, imm sign-extended */                       \
	X(0x05, ja, "ja", ja, zero, zero, any, zero)                           \
	X(0x15, jeq_imm, "jeq", jcond, reg, zero, any, any)                    \
	X(0x1d, jeq_reg, "jeq", jcond, reg, reg, any, zero)                    \
	X(0x25, jgt_imm, "jgt", jcond, reg, zero, any, any)                    \
	X(0x2d, jgt_reg, "jgt", jcond, reg, reg, any, zero)                    \
	X(0x35, jge_imm, "jge", jcond, reg, zero, any, any)                    \
	X(0x3d, jge_reg, "jge", jcond, reg, reg, any, zero)                    \
	X(0x45, jset_imm, "jset", jcond, reg, zero, any, any)                  \
	X(0x4d, jset_reg, "jset", jcond, reg, reg, any, zero)                  \
	X(0x55, jne_imm, "jne", jcond, reg, zero, any, any)                    \
	X(0x5d, jne_reg, "jne", jcond, reg, reg, any, zero)                    \
	X(0x65, jsgt_imm, "jsgt", jcond, reg, zero, any, any)                  \
	X(0x6d, jsgt_reg, "jsgt", jcond, reg, reg, any, zero)                  \
	X(0x75, jsge_imm, "jsge", jcond, reg, zero, any, any)                  \
	X(0x7d, jsge_reg, "jsge", jcond, reg, reg, any, zero)                  \
	X(0x85, call, "call", call, zero, pseudo_call, zero, any)              \
	X(0x8d, callx, "callx", callx, reg, zero, zero, zero)                  \
	X(0x95, exit, "exit", exit, zero, zero, zero, zero)                    \
	X(0xa5, jlt_imm, "jlt", jcond, reg, zero, any, any)                    \
	X(0xad, jlt_reg, "jlt", jcond, reg, reg, any, zero)                    \
	X(0xb5, jle_imm, "jle", jcond, reg, zero, any, any)                    \
	X(0xbd, jle_reg, "jle", jcond, reg, reg, any, zero)                    \
	X(0xc5, jslt_imm, "jslt", jcond, reg, zero, any, any)                  \
	X(0xcd, jslt_reg, "jslt", jcond, reg, reg, any, zero)                  \
	X(0xd5, jsle_imm, "jsle", jcond, reg, zero, any, any)                  \
	X(0xdd, jsle_reg, "jsle", jcond, reg, reg, any, zero)                  \
	/* JMP32: comparisons of the low 32 bits */                            \
	X(0x06, ja32, "ja32", ja32, zero, zero, zero, any)                     \
	X(0x16, jeq32_imm, "jeq32", jcond, reg, zero, any, any)                \
	X(0x1e, jeq32_reg, "jeq32", jcond, reg, reg, any, zero)                \
	X(0x26, jgt32_imm, "jgt32", jcond, reg, zero, any, any)                \
	X(0x2e, jgt32_reg, "jgt32", jcond, reg, reg, any, zero)                \
	X(0x36, jge32_imm, "jge32", jcond, reg, zero, any, any)                \
	X(0x3e, jge32_reg, "jge32", jcond, reg, reg, any, zero)                \
	X(0x46, jset32_imm, "jset32", jcond, reg, zero, any, any)              \
	X(0x4e, jset32_reg, "jset32", jcond, reg, reg, any, zero)              \
	X(0x56, jne32_imm, "jne32", jcond, reg, zero, any, any)                \
	X(0x5e, jne32_reg, "jne32", jcond, reg, reg, any, zero)                \
	X(0x66, jsgt32_imm, "jsgt32", jcond, reg, zero, any, any)              \
	X(0x6e, jsgt32_reg, "jsgt32", jcond, reg, reg, any, zero)              \
	X(0x76, jsge32_imm, "jsge32", jcond, reg, zero, any, any)              \
	X(0x7e, jsge32_reg, "jsge32", jcond, reg, reg, any, zero)              \
	X(0xa6, jlt32_imm, "jlt32", jcond, reg, zero, any, any)                \
	X(0xae, jlt32_reg, "jlt32", jcond, reg, reg, any, zero)                \
	X(0xb6, jle32_imm, "jle32", jcond, reg, zero, any, any)                \
	X(0xbe, jle32_reg, "jle32", jcond, reg, reg, any, zero)                \
	X(0xc6, jslt32_imm, "jslt32", jcond, reg, zero, any, any)              \
	X(0xce, jslt32_reg, "jslt32", jcond, reg, reg, any, zero)              \
	X(0xd6, jsle32_imm, "jsle32", jcond, reg, zero, any, any)              \
	X(0xde, jsle32_reg, "jsle32", jcond, reg, reg, any, zero)              \
	/* LD: only the 64-bit immediate load (see the comment above) */       \
	X(0x18, lddw, "lddw", lddw, reg, pseudo_ld, zero, any)                 \
	/* LDX: zero-extending (MEM) and sign-extending (MEMSX) loads */       \
	X(0x61, ldxw, "ldxw", ldx, reg, reg, any, zero)                        \
	X(0x69, ldxh, "ldxh", ldx, reg, reg, any, zero)                        \
	X(0x71, ldxb, "ldxb", ldx, reg, reg, any, zero)                        \
	X(0x79, ldxdw, "ldxdw", ldx, reg, reg, any, zero)                      \
	X(0x81, ldxsw, "ldxsw", ldxsx, reg, reg, any, zero)                    \
	X(0x89, ldxsh, "ldxsh", ldxsx, reg, reg, any, zero)                    \
	X(0x91, ldxsb, "ldxsb", ldxsx, reg, reg, any, zero)                    \
	/* ST: store of the immediate (stdw sign-extends it) */                \
	X(0x62, stw, "stw", st, reg, zero, any, any)                           \
	X(0x6a, sth, "sth", st, reg, zero, any, any)                           \
	X(0x72, stb, "stb", st, reg, zero, any, any)                           \
	X(0x7a, stdw, "stdw", st, reg, zero, any, any)                         \
	/* STX: store of a register, and the atomics */                        \
	X(0x63, stxw, "stxw", stx, reg, reg, any, zero)                        \
	X(0x6b, stxh, "stxh", stx, reg, reg, any, zero)                        \
	X(0x73, stxb, "stxb", stx, reg, reg, any, zero)                        \
	X(0x7b, stxdw, "stxdw", stx, reg, reg, any, zero)                      \
	X(0xc3, atomic32, "atomic32", atomic, reg, reg, any, atomic_op)        \
	X(0xdb, atomic64, "atomic64", atomic, reg, reg, any, atomic_op)

// The imm values of BPF_STX | BPF_ATOMIC: X(imm, name). BPF_FETCH (0x01)
// returns the old value in src; xchg and cmpxchg always fetch, cmpxchg
// compares with and returns in r0.
#define BPFTIME_VM_ATOMIC_OPS(X)                                               \
	X(0x00, add)                                                           \
	X(0x01, fetch_add)                                                     \
	X(0x40, or)                                                            \
	X(0x41, fetch_or)                                                      \
	X(0x50, and)                                                           \
	X(0x51, fetch_and)                                                     \
	X(0xa0, xor)                                                           \
	X(0xa1, fetch_xor)                                                     \
	X(0xe1, xchg)                                                          \
	X(0xf1, cmpxchg)

// One entry per opcode byte; `valid` is false for bytes not in the table.
struct opcode_info {
	uint8_t code = 0;
	bool valid = false;
	insn_kind kind = insn_kind::invalid;
	std::string_view name;
	std::string_view mnemonic;
	field_rule dst = field_rule::zero;
	field_rule src = field_rule::zero;
	field_rule off = field_rule::zero;
	field_rule imm = field_rule::zero;
};

namespace detail {
constexpr std::array<opcode_info, 256> make_opcode_table()
{
	std::array<opcode_info, 256> t{};
	for (unsigned i = 0; i < 256; i++)
		t[i].code = static_cast<uint8_t>(i);
#define BPFTIME_VM_OPCODE_ENTRY(code_, name_, mnem_, kind_, dst_, src_,        \
				off_, imm_)                                    \
	t[code_] = opcode_info{ code_,                                         \
				true,                                          \
				insn_kind::kind_,                              \
				#name_,                                        \
				mnem_,                                         \
				field_rule::dst_,                              \
				field_rule::src_,                              \
				field_rule::off_,                              \
				field_rule::imm_ };
	BPFTIME_VM_OPCODES(BPFTIME_VM_OPCODE_ENTRY)
#undef BPFTIME_VM_OPCODE_ENTRY
	return t;
}
} // namespace detail

inline constexpr std::array<opcode_info, 256> opcode_table =
	detail::make_opcode_table();

inline constexpr size_t opcode_count = 0
#define BPFTIME_VM_COUNT_ONE(...) +1
	BPFTIME_VM_OPCODES(BPFTIME_VM_COUNT_ONE)
#undef BPFTIME_VM_COUNT_ONE
	;

constexpr bool opcode_valid(uint8_t code)
{
	return opcode_table[code].valid;
}

// The legacy packet loads that the table leaves out on purpose.
constexpr bool is_legacy_packet_load(uint8_t code)
{
	return bpf_class(code) == BPF_LD &&
	       (bpf_mode(code) == BPF_ABS || bpf_mode(code) == BPF_IND);
}

constexpr bool atomic_op_valid(int32_t imm)
{
	switch (imm) {
#define BPFTIME_VM_ATOMIC_CASE(imm_, name_) case imm_:
		BPFTIME_VM_ATOMIC_OPS(BPFTIME_VM_ATOMIC_CASE)
#undef BPFTIME_VM_ATOMIC_CASE
		return true;
	default:
		return false;
	}
}

constexpr std::string_view atomic_op_name(int32_t imm)
{
	switch (imm) {
#define BPFTIME_VM_ATOMIC_NAME(imm_, name_)                                    \
	case imm_:                                                             \
		return #name_;
		BPFTIME_VM_ATOMIC_OPS(BPFTIME_VM_ATOMIC_NAME)
#undef BPFTIME_VM_ATOMIC_NAME
	default:
		return {};
	}
}

constexpr bool field_ok(field_rule rule, int64_t v)
{
	switch (rule) {
	case field_rule::zero:
		return v == 0;
	case field_rule::any:
		return true;
	case field_rule::reg:
		return v >= 0 && v < MAX_BPF_REG;
	case field_rule::pseudo_ld:
		return v >= 0 && v <= BPF_PSEUDO_MAP_IDX_VALUE;
	case field_rule::pseudo_call:
		return v == BPF_HELPER_CALL || v == BPF_PSEUDO_CALL ||
		       v == BPF_PSEUDO_KFUNC_CALL;
	case field_rule::divmod:
		return v == 0 || v == 1;
	case field_rule::movsx32:
		return v == 0 || v == 8 || v == 16;
	case field_rule::movsx64:
		return v == 0 || v == 8 || v == 16 || v == 32;
	case field_rule::endian:
		return v == 16 || v == 32 || v == 64;
	case field_rule::atomic_op:
		return v >= INT32_MIN && v <= INT32_MAX &&
		       atomic_op_valid(static_cast<int32_t>(v));
	}
	return false;
}

// The first field of `i` that its opcode does not allow, or `none`. The
// caller has checked opcode_valid(i.code). Registers above 10 are reported
// here too (field_rule::reg), so a verifier needs no second check.
enum class insn_field : uint8_t { none, dst, src, off, imm };

constexpr insn_field check_fields(const insn &i)
{
	const opcode_info &o = opcode_table[i.code];
	if (!field_ok(o.dst, i.dst_reg))
		return insn_field::dst;
	if (!field_ok(o.src, i.src_reg))
		return insn_field::src;
	if (!field_ok(o.off, i.off))
		return insn_field::off;
	if (!field_ok(o.imm, i.imm))
		return insn_field::imm;
	return insn_field::none;
}

constexpr std::string_view field_name(insn_field f)
{
	switch (f) {
	case insn_field::dst:
		return "dst_reg";
	case insn_field::src:
		return "src_reg";
	case insn_field::off:
		return "off";
	case insn_field::imm:
		return "imm";
	case insn_field::none:
		break;
	}
	return {};
}

// Bytes accessed by a load/store/atomic opcode, 0 for the others.
constexpr uint32_t access_size(uint8_t code)
{
	switch (opcode_table[code].kind) {
	case insn_kind::ldx:
	case insn_kind::ldxsx:
	case insn_kind::st:
	case insn_kind::stx:
	case insn_kind::atomic:
		switch (bpf_size(code)) {
		case BPF_B:
			return 1;
		case BPF_H:
			return 2;
		case BPF_W:
			return 4;
		default:
			return 8;
		}
	default:
		return 0;
	}
}

// True for ALU64 and JMP opcodes, false for ALU and JMP32 (32-bit operands).
constexpr bool is_64bit(uint8_t code)
{
	return bpf_class(code) == BPF_ALU64 || bpf_class(code) == BPF_JMP;
}

// The mnemonic of a valid instruction, refined by the fields that select a
// variant of its opcode: sdiv/smod (off 1), movsx8/16/32 (off; "32" suffix
// for ALU as the bpf_conformance assembler spells it), le16/be32/bswap64
// (imm). Atomics keep their opcode mnemonic; atomic_op_name() names imm.
constexpr std::string_view insn_mnemonic(const insn &i)
{
	const opcode_info &o = opcode_table[i.code];
	const bool is64 = is_64bit(i.code);
	switch (o.kind) {
	case insn_kind::alu:
		if (o.off == field_rule::divmod && i.off == 1) {
			if (bpf_op(i.code) == BPF_DIV)
				return is64 ? "sdiv" : "sdiv32";
			return is64 ? "smod" : "smod32";
		}
		if (bpf_op(i.code) == BPF_MOV && i.off != 0) {
			switch (i.off) {
			case 8:
				return is64 ? "movsx8" : "movsx832";
			case 16:
				return is64 ? "movsx16" : "movsx1632";
			case 32:
				return "movsx32";
			}
		}
		break;
	case insn_kind::endian: {
		const std::string_view names[3][3] = {
			{ "le16", "le32", "le64" },
			{ "be16", "be32", "be64" },
			{ "bswap16", "bswap32", "bswap64" },
		};
		const int row = i.code == 0xd4 ? 0 : i.code == 0xdc ? 1 : 2;
		const int col = i.imm == 16 ? 0 : i.imm == 32 ? 1 : 2;
		return names[row][col];
	}
	default:
		break;
	}
	return o.mnemonic;
}

// Registers an instruction reads and writes, as bit masks (bit n = rN).
// Calls write r0 and leave r1-r5 scratched (`clobbers`): a reader of r1-r5
// after a call reads garbage, as in the kernel. r10 is never written by a
// valid program; a verifier refuses any instruction whose `writes` has bit 10.
struct reg_use {
	uint16_t reads = 0;
	uint16_t writes = 0;
	uint16_t clobbers = 0;
};

constexpr reg_use register_use(const insn &i)
{
	const opcode_info &o = opcode_table[i.code];
	const uint16_t dst = static_cast<uint16_t>(1u << i.dst_reg);
	const uint16_t src = static_cast<uint16_t>(1u << i.src_reg);
	constexpr uint16_t r0 = 1u << 0;
	constexpr uint16_t r1_r5 = 0x3e;
	switch (o.kind) {
	case insn_kind::alu:
		if (bpf_op(i.code) == BPF_MOV)
			return { bpf_src(i.code) == BPF_X ? src : uint16_t(0),
				 dst, 0 };
		return { static_cast<uint16_t>(
				 dst | (bpf_src(i.code) == BPF_X ? src : 0)),
			 dst, 0 };
	case insn_kind::neg:
	case insn_kind::endian:
		return { dst, dst, 0 };
	case insn_kind::jcond:
		return { static_cast<uint16_t>(
				 dst | (bpf_src(i.code) == BPF_X ? src : 0)),
			 0, 0 };
	case insn_kind::call:
		return { 0, r0, r1_r5 };
	case insn_kind::callx:
		return { dst, r0, r1_r5 };
	case insn_kind::exit:
		return { r0, 0, 0 };
	case insn_kind::lddw:
		return { 0, dst, 0 };
	case insn_kind::ldx:
	case insn_kind::ldxsx:
		return { src, dst, 0 };
	case insn_kind::st:
		return { dst, 0, 0 };
	case insn_kind::stx:
		return { static_cast<uint16_t>(dst | src), 0, 0 };
	case insn_kind::atomic:
		if (i.imm == BPF_CMPXCHG)
			return { static_cast<uint16_t>(dst | src | r0), r0,
				 0 };
		if (i.imm & BPF_FETCH)
			return { static_cast<uint16_t>(dst | src), src, 0 };
		return { static_cast<uint16_t>(dst | src), 0, 0 };
	case insn_kind::ja:
	case insn_kind::ja32:
	case insn_kind::invalid:
		break;
	}
	return {};
}

} // namespace bpftime::vm
