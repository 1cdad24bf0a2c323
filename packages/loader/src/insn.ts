// The few instruction fields the loader reads and patches, on a Buffer of
// `struct bpf_insn` (8 bytes: code, dst:4|src:4, off s16, imm s32; RFC 9669).
// The full codec and disassembler live in @bpftime/vm.
// src_reg values (BPF_PSEUDO_*) are the kernel's, generated in @bpftime/common.
import { BPF_PSEUDO_CALL, BPF_PSEUDO_FUNC } from '@bpftime/common';

export const INSN_SIZE = 8;

export const BPF_LD = 0x00;
export const BPF_LDX = 0x01;
export const BPF_ST = 0x02;
export const BPF_STX = 0x03;
export const BPF_ALU = 0x04;
export const BPF_JMP = 0x05;
export const BPF_JMP32 = 0x06;
export const BPF_ALU64 = 0x07;

export const BPF_K = 0x00;
export const BPF_X = 0x08;

export const BPF_W = 0x00;
export const BPF_H = 0x08;
export const BPF_B = 0x10;
export const BPF_DW = 0x18;
export const BPF_IMM = 0x00;

export const BPF_CALL = 0x80;
export const BPF_EXIT = 0x90;

/** lddw: `BPF_LD | BPF_IMM | BPF_DW` */
export const BPF_LD_IMM64 = BPF_LD | BPF_IMM | BPF_DW;
export const BPF_CALL_INSN = BPF_JMP | BPF_CALL;

/** The helper id libbpf writes into an instruction whose CO-RE relocation failed (relo_core.c). */
export const POISON_CALL_IMM = 195896080; // 0xbad2310

export function insnCount(code: Buffer): number {
	return code.length / INSN_SIZE;
}

export function opcode(code: Buffer, i: number): number {
	return code[i * INSN_SIZE] as number;
}

export function dstReg(code: Buffer, i: number): number {
	return (code[i * INSN_SIZE + 1] as number) & 0xf;
}

export function srcReg(code: Buffer, i: number): number {
	return (code[i * INSN_SIZE + 1] as number) >> 4;
}

export function setSrcReg(code: Buffer, i: number, src: number): void {
	const at = i * INSN_SIZE + 1;
	code[at] = ((code[at] as number) & 0x0f) | (src << 4);
}

export function offField(code: Buffer, i: number): number {
	return code.readInt16LE(i * INSN_SIZE + 2);
}

export function setOff(code: Buffer, i: number, off: number): void {
	code.writeInt16LE(off, i * INSN_SIZE + 2);
}

export function imm(code: Buffer, i: number): number {
	return code.readInt32LE(i * INSN_SIZE + 4);
}

/** Writes the low 32 bits of `value` as the signed imm field. */
export function setImm(code: Buffer, i: number, value: number | bigint): void {
	const v = typeof value === 'bigint' ? Number(BigInt.asIntN(32, value)) : value | 0;
	code.writeInt32LE(v, i * INSN_SIZE + 4);
}

export function insnClass(code: number): number {
	return code & 0x07;
}

export function isLdImm64(code: Buffer, i: number): boolean {
	return opcode(code, i) === BPF_LD_IMM64;
}

/** `call` to a BPF sub-program (src_reg BPF_PSEUDO_CALL), libbpf insn_is_subprog_call(). */
export function isSubprogCall(code: Buffer, i: number): boolean {
	return (
		opcode(code, i) === BPF_CALL_INSN &&
		srcReg(code, i) === BPF_PSEUDO_CALL &&
		dstReg(code, i) === 0 &&
		offField(code, i) === 0
	);
}

/** lddw of a sub-program's address (src_reg BPF_PSEUDO_FUNC), libbpf insn_is_pseudo_func(). */
export function isPseudoFunc(code: Buffer, i: number): boolean {
	return isLdImm64(code, i) && srcReg(code, i) === BPF_PSEUDO_FUNC;
}

/** Size in bytes of a load/store (BPF_SIZE), or -1 for a class without one. */
export function memSize(code: number): number {
	switch (code & 0x18) {
		case BPF_B:
			return 1;
		case BPF_H:
			return 2;
		case BPF_W:
			return 4;
		default:
			return 8;
	}
}

/** BPF_SIZE bits for a byte size, or -1. */
export function sizeBits(bytes: number): number {
	switch (bytes) {
		case 1:
			return BPF_B;
		case 2:
			return BPF_H;
		case 4:
			return BPF_W;
		case 8:
			return BPF_DW;
		default:
			return -1;
	}
}

/** One instruction as 16 hex digits, the fallback of the objdump view. */
export function insnHex(code: Buffer, i: number): string {
	return code.subarray(i * INSN_SIZE, (i + 1) * INSN_SIZE).toString('hex');
}
