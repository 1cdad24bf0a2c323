// insn.hpp: the eBPF instruction encoding of RFC 9669, with the kernel's names.
//
// An instruction is 8 bytes: opcode, dst and src registers (4 bits each, dst in
// the low nibble on little-endian hosts), a signed 16-bit offset and a signed
// 32-bit immediate. lddw (BPF_LD | BPF_IMM | BPF_DW) takes two slots; the
// second holds the upper 32 bits of the immediate in its imm field.
#pragma once

#include <cstdint>

namespace bpftime::vm {

struct insn {
	uint8_t code;
	uint8_t dst_reg : 4;
	uint8_t src_reg : 4;
	int16_t off;
	int32_t imm;

	bool operator==(const insn &) const = default;
};
static_assert(sizeof(insn) == 8, "eBPF instructions are 8 bytes");

// Instruction classes (low 3 bits of the opcode).
inline constexpr uint8_t BPF_LD = 0x00;
inline constexpr uint8_t BPF_LDX = 0x01;
inline constexpr uint8_t BPF_ST = 0x02;
inline constexpr uint8_t BPF_STX = 0x03;
inline constexpr uint8_t BPF_ALU = 0x04;
inline constexpr uint8_t BPF_JMP = 0x05;
inline constexpr uint8_t BPF_JMP32 = 0x06;
inline constexpr uint8_t BPF_ALU64 = 0x07;

// Load/store sizes (bits 3-4).
inline constexpr uint8_t BPF_W = 0x00;
inline constexpr uint8_t BPF_H = 0x08;
inline constexpr uint8_t BPF_B = 0x10;
inline constexpr uint8_t BPF_DW = 0x18;

// Load/store modes (bits 5-7).
inline constexpr uint8_t BPF_IMM = 0x00;
inline constexpr uint8_t BPF_ABS = 0x20;
inline constexpr uint8_t BPF_IND = 0x40;
inline constexpr uint8_t BPF_MEM = 0x60;
inline constexpr uint8_t BPF_MEMSX = 0x80;
inline constexpr uint8_t BPF_ATOMIC = 0xc0;

// Source operand (bit 3) for ALU and JMP classes.
inline constexpr uint8_t BPF_K = 0x00;
inline constexpr uint8_t BPF_X = 0x08;
// Byte-swap direction for BPF_END, in the same bit.
inline constexpr uint8_t BPF_TO_LE = 0x00;
inline constexpr uint8_t BPF_TO_BE = 0x08;

// ALU operations (bits 4-7).
inline constexpr uint8_t BPF_ADD = 0x00;
inline constexpr uint8_t BPF_SUB = 0x10;
inline constexpr uint8_t BPF_MUL = 0x20;
inline constexpr uint8_t BPF_DIV = 0x30;
inline constexpr uint8_t BPF_OR = 0x40;
inline constexpr uint8_t BPF_AND = 0x50;
inline constexpr uint8_t BPF_LSH = 0x60;
inline constexpr uint8_t BPF_RSH = 0x70;
inline constexpr uint8_t BPF_NEG = 0x80;
inline constexpr uint8_t BPF_MOD = 0x90;
inline constexpr uint8_t BPF_XOR = 0xa0;
inline constexpr uint8_t BPF_MOV = 0xb0;
inline constexpr uint8_t BPF_ARSH = 0xc0;
inline constexpr uint8_t BPF_END = 0xd0;

// Jump operations (bits 4-7).
inline constexpr uint8_t BPF_JA = 0x00;
inline constexpr uint8_t BPF_JEQ = 0x10;
inline constexpr uint8_t BPF_JGT = 0x20;
inline constexpr uint8_t BPF_JGE = 0x30;
inline constexpr uint8_t BPF_JSET = 0x40;
inline constexpr uint8_t BPF_JNE = 0x50;
inline constexpr uint8_t BPF_JSGT = 0x60;
inline constexpr uint8_t BPF_JSGE = 0x70;
inline constexpr uint8_t BPF_CALL = 0x80;
inline constexpr uint8_t BPF_EXIT = 0x90;
inline constexpr uint8_t BPF_JLT = 0xa0;
inline constexpr uint8_t BPF_JLE = 0xb0;
inline constexpr uint8_t BPF_JSLT = 0xc0;
inline constexpr uint8_t BPF_JSLE = 0xd0;

// Atomic operations, in the imm field of BPF_STX | BPF_ATOMIC.
inline constexpr int32_t BPF_FETCH = 0x01;
inline constexpr int32_t BPF_XCHG = 0xe0 | BPF_FETCH;
inline constexpr int32_t BPF_CMPXCHG = 0xf0 | BPF_FETCH;

// src_reg of lddw: how the 64-bit immediate is to be resolved.
inline constexpr uint8_t BPF_PSEUDO_MAP_FD = 1;
inline constexpr uint8_t BPF_PSEUDO_MAP_VALUE = 2;
inline constexpr uint8_t BPF_PSEUDO_BTF_ID = 3;
inline constexpr uint8_t BPF_PSEUDO_FUNC = 4;
inline constexpr uint8_t BPF_PSEUDO_MAP_IDX = 5;
inline constexpr uint8_t BPF_PSEUDO_MAP_IDX_VALUE = 6;

// src_reg of BPF_JMP | BPF_CALL.
inline constexpr uint8_t BPF_HELPER_CALL = 0;
inline constexpr uint8_t BPF_PSEUDO_CALL = 1;
inline constexpr uint8_t BPF_PSEUDO_KFUNC_CALL = 2;

inline constexpr int MAX_BPF_REG = 11; // r0..r10
inline constexpr int BPF_REG_FP = 10;
inline constexpr int MAX_BPF_STACK = 512;        // bytes per frame
inline constexpr int MAX_CALL_FRAMES = 8;        // kernel's MAX_CALL_FRAMES
inline constexpr int MAX_TAIL_CALL_CNT = 33;     // kernel's MAX_TAIL_CALL_CNT
inline constexpr uint32_t BPF_MAX_INSNS = 1000000; // kernel's BPF_COMPLEXITY_LIMIT_INSNS

constexpr uint8_t bpf_class(uint8_t code)
{
	return code & 0x07;
}
constexpr uint8_t bpf_size(uint8_t code)
{
	return code & 0x18;
}
constexpr uint8_t bpf_mode(uint8_t code)
{
	return code & 0xe0;
}
constexpr uint8_t bpf_op(uint8_t code)
{
	return code & 0xf0;
}
constexpr uint8_t bpf_src(uint8_t code)
{
	return code & 0x08;
}

} // namespace bpftime::vm
