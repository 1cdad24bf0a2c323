// The eBPF instruction encoding of RFC 9669 section 3, as plain data.
//
// An `Insn` is one 8-byte slot. The wide lddw instruction takes two slots and
// is two `Insn`s here, the second with only `imm` set (its `next_imm`), so an
// array of `Insn` indexes exactly like the kernel's `struct bpf_insn[]` and
// like every jump offset in the program.
//
//   decode(Buffer.from('b700000001000000', 'hex'))
//   // [{ code: 0xb7, dst: 0, src: 0, off: 0, imm: 1 }]

import { BpftimeError } from '@bpftime/common';

/** One 8-byte instruction slot, fields as the kernel's `struct bpf_insn` names them. */
export interface Insn {
	/** Opcode byte: class in the low 3 bits. */
	code: number;
	/** dst_reg, 0..15 in the encoding (0..10 are registers). */
	dst: number;
	/** src_reg, 0..15 in the encoding; lddw and call reuse it as a subtype. */
	src: number;
	/** Signed 16-bit offset. */
	off: number;
	/** Signed 32-bit immediate. */
	imm: number;
}

export const INSN_SIZE = 8;

// Classes (RFC 9669 3.3).
export const BPF_LD = 0x00;
export const BPF_LDX = 0x01;
export const BPF_ST = 0x02;
export const BPF_STX = 0x03;
export const BPF_ALU = 0x04;
export const BPF_JMP = 0x05;
export const BPF_JMP32 = 0x06;
export const BPF_ALU64 = 0x07;

// Load/store sizes and modes (RFC 9669 5).
export const BPF_W = 0x00;
export const BPF_H = 0x08;
export const BPF_B = 0x10;
export const BPF_DW = 0x18;
export const BPF_IMM = 0x00;
export const BPF_ABS = 0x20;
export const BPF_IND = 0x40;
export const BPF_MEM = 0x60;
export const BPF_MEMSX = 0x80;
export const BPF_ATOMIC = 0xc0;

// Source bit of ALU and JMP classes; the same bit picks the byte order of END.
export const BPF_K = 0x00;
export const BPF_X = 0x08;
export const BPF_TO_LE = 0x00;
export const BPF_TO_BE = 0x08;

// ALU operations (RFC 9669 4.1).
export const BPF_ADD = 0x00;
export const BPF_SUB = 0x10;
export const BPF_MUL = 0x20;
export const BPF_DIV = 0x30;
export const BPF_OR = 0x40;
export const BPF_AND = 0x50;
export const BPF_LSH = 0x60;
export const BPF_RSH = 0x70;
export const BPF_NEG = 0x80;
export const BPF_MOD = 0x90;
export const BPF_XOR = 0xa0;
export const BPF_MOV = 0xb0;
export const BPF_ARSH = 0xc0;
export const BPF_END = 0xd0;

// Jump operations (RFC 9669 4.3).
export const BPF_JA = 0x00;
export const BPF_JEQ = 0x10;
export const BPF_JGT = 0x20;
export const BPF_JGE = 0x30;
export const BPF_JSET = 0x40;
export const BPF_JNE = 0x50;
export const BPF_JSGT = 0x60;
export const BPF_JSGE = 0x70;
export const BPF_CALL = 0x80;
export const BPF_EXIT = 0x90;
export const BPF_JLT = 0xa0;
export const BPF_JLE = 0xb0;
export const BPF_JSLT = 0xc0;
export const BPF_JSLE = 0xd0;

// Atomic operations, in imm of STX|ATOMIC (RFC 9669 5.3).
export const BPF_FETCH = 0x01;
export const BPF_XCHG = 0xe0 | BPF_FETCH;
export const BPF_CMPXCHG = 0xf0 | BPF_FETCH;

// src_reg of lddw (RFC 9669 5.4).
export const BPF_PSEUDO_MAP_FD = 1;
export const BPF_PSEUDO_MAP_VALUE = 2;
export const BPF_PSEUDO_BTF_ID = 3;
export const BPF_PSEUDO_FUNC = 4;
export const BPF_PSEUDO_MAP_IDX = 5;
export const BPF_PSEUDO_MAP_IDX_VALUE = 6;

// src_reg of JMP|CALL (RFC 9669 4.3.1, 4.3.2).
export const BPF_HELPER_CALL = 0;
export const BPF_PSEUDO_CALL = 1;
export const BPF_PSEUDO_KFUNC_CALL = 2;

/** lddw: BPF_LD | BPF_IMM | BPF_DW. */
export const BPF_LDDW = BPF_LD | BPF_IMM | BPF_DW;

export function bpfClass(code: number): number {
	return code & 0x07;
}
export function bpfSize(code: number): number {
	return code & 0x18;
}
export function bpfMode(code: number): number {
	return code & 0xe0;
}
export function bpfOp(code: number): number {
	return code & 0xf0;
}
export function bpfSrc(code: number): number {
	return code & 0x08;
}

function checkField(name: string, value: unknown, min: number, max: number, type: string): number {
	if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
		throw new BpftimeError('EINVAL', `Expected ${type} for ${name} but received ${String(value)} (${typeof value})`);
	}
	return value;
}

/**
 * Encode instruction slots as little-endian bytes, 8 per slot.
 *
 * `imm` takes any 32-bit pattern, signed or unsigned (0xffffffff and -1 are the
 * same bits); `off` likewise takes -32768..65535.
 */
export function encode(insns: readonly Insn[]): Buffer {
	const out = Buffer.alloc(insns.length * INSN_SIZE);
	insns.forEach((insn, i) => {
		const at = i * INSN_SIZE;
		const code = checkField(`insns[${i}].code`, insn.code, 0, 0xff, 'u8');
		const dst = checkField(`insns[${i}].dst`, insn.dst, 0, 0xf, 'u4');
		const src = checkField(`insns[${i}].src`, insn.src, 0, 0xf, 'u4');
		const off = checkField(`insns[${i}].off`, insn.off, -0x8000, 0xffff, 's16');
		const imm = checkField(`insns[${i}].imm`, insn.imm, -0x80000000, 0xffffffff, 's32');
		out.writeUInt8(code, at);
		out.writeUInt8((src << 4) | dst, at + 1);
		out.writeInt16LE((off << 16) >> 16, at + 2);
		out.writeInt32LE(imm | 0, at + 4);
	});
	return out;
}

/** Decode little-endian bytes into instruction slots; the length must be a multiple of 8. */
export function decode(code: Buffer | Uint8Array): Insn[] {
	if (code.length % INSN_SIZE !== 0) {
		throw new BpftimeError('EINVAL', `Expected a multiple of ${INSN_SIZE} bytes of code but received ${code.length}`);
	}
	const view = new DataView(code.buffer, code.byteOffset, code.byteLength);
	const insns: Insn[] = [];
	for (let at = 0; at < code.length; at += INSN_SIZE) {
		const regs = view.getUint8(at + 1);
		insns.push({
			code: view.getUint8(at),
			dst: regs & 0x0f,
			src: regs >> 4,
			off: view.getInt16(at + 2, true),
			imm: view.getInt32(at + 4, true),
		});
	}
	return insns;
}
