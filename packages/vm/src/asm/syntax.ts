// Spelling tables shared by the assembler and the disassembler, so the two
// cannot disagree on what an operator means.

import {
	BPF_ADD,
	BPF_AND,
	BPF_ARSH,
	BPF_B,
	BPF_DIV,
	BPF_DW,
	BPF_H,
	BPF_JEQ,
	BPF_JGE,
	BPF_JGT,
	BPF_JLE,
	BPF_JLT,
	BPF_JNE,
	BPF_JSET,
	BPF_JSGE,
	BPF_JSGT,
	BPF_JSLE,
	BPF_JSLT,
	BPF_LSH,
	BPF_MOD,
	BPF_MUL,
	BPF_OR,
	BPF_RSH,
	BPF_SUB,
	BPF_W,
	BPF_XOR,
} from './insn.js';

/** Compound-assignment operator of each two-operand ALU operation. */
export const ALU_OPERATORS: ReadonlyMap<number, string> = new Map([
	[BPF_ADD, '+='],
	[BPF_SUB, '-='],
	[BPF_MUL, '*='],
	[BPF_DIV, '/='],
	[BPF_OR, '|='],
	[BPF_AND, '&='],
	[BPF_LSH, '<<='],
	[BPF_RSH, '>>='],
	[BPF_MOD, '%='],
	[BPF_XOR, '^='],
	[BPF_ARSH, 's>>='],
]);

/** Comparison operator of each conditional jump. */
export const JMP_OPERATORS: ReadonlyMap<number, string> = new Map([
	[BPF_JEQ, '=='],
	[BPF_JGT, '>'],
	[BPF_JGE, '>='],
	[BPF_JSET, '&'],
	[BPF_JNE, '!='],
	[BPF_JSGT, 's>'],
	[BPF_JSGE, 's>='],
	[BPF_JLT, '<'],
	[BPF_JLE, '<='],
	[BPF_JSLT, 's<'],
	[BPF_JSLE, 's<='],
]);

/** Width in bits of each load/store size. */
export const SIZE_BITS: ReadonlyMap<number, number> = new Map([
	[BPF_B, 8],
	[BPF_H, 16],
	[BPF_W, 32],
	[BPF_DW, 64],
]);

/** Atomic read-modify-write operations (imm without BPF_FETCH) and their names. */
export const ATOMIC_OPERATORS: ReadonlyMap<number, { name: string; operator: string }> = new Map([
	[BPF_ADD, { name: 'add', operator: '+=' }],
	[BPF_OR, { name: 'or', operator: '|=' }],
	[BPF_AND, { name: 'and', operator: '&=' }],
	[BPF_XOR, { name: 'xor', operator: '^=' }],
]);

export function invert<K, V>(map: ReadonlyMap<K, V>): Map<V, K> {
	return new Map([...map].map(([k, v]) => [v, k]));
}
