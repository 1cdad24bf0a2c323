// Disassembler to the syntax llvm-objdump prints for BPF (LLVM's "C-like"
// syntax), one line per instruction (lddw is one line for its two slots).
//
// By default every line assembles back to the same bytes: where LLVM's text
// drops bits (local and kfunc calls print as `call imm`, pseudo lddw loses its
// next_imm) bpftime's own spellings are used, and an encoding that RFC 9669
// does not define prints as `.insn code, dst, src, off, imm`. With
// `llvmObjdump: true` the lines are those llvm-objdump prints instead.
//
//   disassemble(assemble('r0 = 1\nexit'))  // ['r0 = 1', 'exit']

import {
	BPF_ABS,
	BPF_ADD,
	BPF_ALU,
	BPF_ALU64,
	BPF_ATOMIC,
	BPF_CALL,
	BPF_CMPXCHG,
	BPF_DIV,
	BPF_DW,
	BPF_END,
	BPF_EXIT,
	BPF_FETCH,
	BPF_IND,
	BPF_JA,
	BPF_JMP,
	BPF_JMP32,
	BPF_LD,
	BPF_LDDW,
	BPF_LDX,
	BPF_MEM,
	BPF_MEMSX,
	BPF_MOD,
	BPF_MOV,
	BPF_NEG,
	BPF_PSEUDO_BTF_ID,
	BPF_PSEUDO_CALL,
	BPF_PSEUDO_FUNC,
	BPF_PSEUDO_KFUNC_CALL,
	BPF_PSEUDO_MAP_FD,
	BPF_PSEUDO_MAP_IDX,
	BPF_PSEUDO_MAP_IDX_VALUE,
	BPF_PSEUDO_MAP_VALUE,
	BPF_ST,
	BPF_W,
	BPF_X,
	BPF_XCHG,
	bpfClass,
	bpfMode,
	bpfOp,
	bpfSize,
	bpfSrc,
	decode,
	type Insn,
} from './insn.js';
import { ALU_OPERATORS, ATOMIC_OPERATORS, JMP_OPERATORS, SIZE_BITS } from './syntax.js';

export interface DisassembleOptions {
	/**
	 * Write immediates and offsets in hex (`r1 += -0x5`, `goto +0x3`), as
	 * llvm-objdump 15 and later do. Default: decimal, as llvm-objdump 14 and the
	 * kernel's verifier log do.
	 */
	hex?: boolean;
	/**
	 * Print exactly what llvm-objdump prints, including where its text loses
	 * bits: local calls (src_reg 1) and kfunc calls (src_reg 2) as `call imm`,
	 * pseudo lddw as `ld_pseudo rD, src, imm` without its next_imm, a 32-bit
	 * atomic add or fetch-add as `lock *(u32 *)(rD + off) += rS`, and
	 * `<unknown>` for undefined encodings.
	 * Default false: every line reassembles to the bytes it came from.
	 */
	llvmObjdump?: boolean;
}

interface Style {
	hex: boolean;
	llvm: boolean;
}

const REG_LIMIT = 10;

function num(value: number | bigint, style: Style): string {
	if (!style.hex) return String(value);
	const negative = value < 0;
	const magnitude = negative ? -BigInt(value) : BigInt(value);
	return `${negative ? '-' : ''}0x${magnitude.toString(16)}`;
}

/** `+3` / `-2`: LLVM always signs a branch displacement. */
function displacement(value: number, style: Style): string {
	return value < 0 ? num(value, style) : `+${num(value, style)}`;
}

/** `r2 + 8` / `r10 - 8`: base register and signed offset. */
function address(reg: number, off: number, style: Style): string {
	return off < 0 ? `r${reg} - ${num(-off, style)}` : `r${reg} + ${num(off, style)}`;
}

function sizeName(code: number, signed = false): string {
	return `${signed ? 's' : 'u'}${SIZE_BITS.get(bpfSize(code))}`;
}

/**
 * The second operand of an ALU or conditional jump: `r3`/`w3` for BPF_X
 * (imm must be 0), the immediate for BPF_K (src must be 0); null when the
 * unused field is set or the register is out of range.
 */
function sourceOperand(insn: Insn, x: boolean, r: 'r' | 'w', style: Style): string | null {
	if (x) return insn.imm !== 0 || insn.src > REG_LIMIT ? null : `${r}${insn.src}`;
	return insn.src !== 0 ? null : num(insn.imm, style);
}

function alu(insn: Insn, style: Style): string | null {
	const cls = bpfClass(insn.code);
	const is64 = cls === BPF_ALU64;
	const r = is64 ? 'r' : 'w';
	const op = bpfOp(insn.code);
	const x = bpfSrc(insn.code) === BPF_X;
	const { dst, src, off, imm } = insn;
	if (dst > REG_LIMIT) return null;

	if (op === BPF_END) {
		if (src !== 0 || off !== 0 || (imm !== 16 && imm !== 32 && imm !== 64)) return null;
		// ALU64 has no byte-order bit: its BPF_X encoding is reserved.
		if (is64 && x) return null;
		const name = is64 ? 'bswap' : x ? 'be' : 'le';
		return `r${dst} = ${name}${imm} r${dst}`;
	}
	if (op === BPF_NEG) {
		if (x || src !== 0 || off !== 0 || imm !== 0) return null;
		return `${r}${dst} = -${r}${dst}`;
	}

	const operand = sourceOperand(insn, x, r, style);
	if (operand === null) return null;

	if (op === BPF_MOV) {
		if (off === 0) return `${r}${dst} = ${operand}`;
		// MOVSX: 8 and 16 for both classes, 32 only into a 64-bit register.
		if (x && (off === 8 || off === 16 || (off === 32 && is64))) {
			return `${r}${dst} = (s${off})${r}${src}`;
		}
		return null;
	}
	const operator = ALU_OPERATORS.get(op);
	if (operator === undefined) return null;
	let signed = '';
	if (op === BPF_DIV || op === BPF_MOD) {
		if (off !== 0 && off !== 1) return null;
		signed = off === 1 ? 's' : '';
	} else if (off !== 0) {
		return null;
	}
	return `${r}${dst} ${signed}${operator} ${operand}`;
}

function jump(insn: Insn, style: Style): string | null {
	const cls = bpfClass(insn.code);
	const op = bpfOp(insn.code);
	const x = bpfSrc(insn.code) === BPF_X;
	const { dst, src, off, imm } = insn;

	if (op === BPF_JA) {
		if (x || dst !== 0 || src !== 0) return null;
		if (cls === BPF_JMP) return imm === 0 ? `goto ${displacement(off, style)}` : null;
		return off === 0 ? `gotol ${displacement(imm, style)}` : null;
	}
	if (op === BPF_CALL || op === BPF_EXIT) {
		if (cls !== BPF_JMP) return null;
		if (op === BPF_EXIT) {
			return x || dst !== 0 || src !== 0 || off !== 0 || imm !== 0 ? null : 'exit';
		}
		if (x) {
			// callx keeps its target register in dst_reg, as LLVM 19 and the
			// kernel encode it (LLVM 14 read it from imm).
			return src !== 0 || off !== 0 || imm !== 0 || dst > REG_LIMIT ? null : `callx r${dst}`;
		}
		if (dst !== 0 || off !== 0) return null;
		if (src === 0 || style.llvm) {
			return src <= BPF_PSEUDO_KFUNC_CALL ? `call ${num(imm, style)}` : null;
		}
		if (src === BPF_PSEUDO_CALL) return `call pc${displacement(imm, style)}`;
		if (src === BPF_PSEUDO_KFUNC_CALL) return `call btf_id(${num(imm, style)})`;
		return null;
	}

	const operator = JMP_OPERATORS.get(op);
	if (operator === undefined || dst > REG_LIMIT) return null;
	const r = cls === BPF_JMP ? 'r' : 'w';
	const operand = sourceOperand(insn, x, r, style);
	if (operand === null) return null;
	return `if ${r}${dst} ${operator} ${operand} goto ${displacement(off, style)}`;
}

function legacyPacket(insn: Insn, style: Style): string | null {
	const { dst, src, off, imm } = insn;
	const mode = bpfMode(insn.code);
	if (bpfSize(insn.code) === BPF_DW || dst !== 0 || off !== 0) return null;
	const size = sizeName(insn.code);
	if (mode === BPF_ABS) {
		return src === 0 ? `r0 = *(${size} *)skb[${num(imm, style)}]` : null;
	}
	if (mode !== BPF_IND || src > REG_LIMIT) return null;
	// LLVM's IND form has no immediate; keep a non-zero one visible.
	if (imm === 0 || style.llvm) return `r0 = *(${size} *)skb[r${src}]`;
	return `r0 = *(${size} *)skb[${address(src, imm, style)}]`;
}

function loadStore(insn: Insn, style: Style): string | null {
	const cls = bpfClass(insn.code);
	const mode = bpfMode(insn.code);
	const size = bpfSize(insn.code);
	const { dst, src, off, imm } = insn;
	if (dst > REG_LIMIT || src > REG_LIMIT) return null;

	if (cls === BPF_LDX) {
		if (imm !== 0) return null;
		if (mode === BPF_MEM) return `r${dst} = *(${sizeName(insn.code)} *)(${address(src, off, style)})`;
		if (mode === BPF_MEMSX && size !== BPF_DW) {
			return `r${dst} = *(${sizeName(insn.code, true)} *)(${address(src, off, style)})`;
		}
		return null;
	}
	if (cls === BPF_ST) {
		if (mode !== BPF_MEM || src !== 0) return null;
		return `*(${sizeName(insn.code)} *)(${address(dst, off, style)}) = ${num(imm, style)}`;
	}
	// BPF_STX
	if (mode === BPF_MEM) {
		return imm === 0 ? `*(${sizeName(insn.code)} *)(${address(dst, off, style)}) = r${src}` : null;
	}
	if (mode !== BPF_ATOMIC || (size !== BPF_W && size !== BPF_DW)) return null;
	return atomic(insn, style);
}

function atomic(insn: Insn, style: Style): string | null {
	const is64 = bpfSize(insn.code) === BPF_DW;
	const r = is64 ? 'r' : 'w';
	const { dst, src, off, imm } = insn;
	const type = is64 ? 'u64' : 'u32';
	if (imm === BPF_XCHG) {
		return `${r}${src} = ${is64 ? 'xchg_64' : 'xchg32_32'}(${address(dst, off, style)}, ${r}${src})`;
	}
	if (imm === BPF_CMPXCHG) {
		const name = is64 ? 'cmpxchg_64' : 'cmpxchg32_32';
		return `${r}0 = ${name}(${address(dst, off, style)}, ${r}0, ${r}${src})`;
	}
	// llvm-objdump decodes without the alu32 feature, where the only 32-bit
	// atomic it knows is the add, read with a 64-bit source register and
	// with BPF_FETCH ignored.
	if (style.llvm && !is64 && (imm === BPF_ADD || imm === (BPF_ADD | BPF_FETCH))) {
		return `lock *(u32 *)(${address(dst, off, style)}) += r${src}`;
	}
	const rmw = ATOMIC_OPERATORS.get(imm & ~BPF_FETCH);
	if (rmw === undefined) return null;
	if (imm & BPF_FETCH) {
		return `${r}${src} = atomic_fetch_${rmw.name}((${type} *)(${address(dst, off, style)}), ${r}${src})`;
	}
	return `lock *(${type} *)(${address(dst, off, style)}) ${rmw.operator} ${r}${src}`;
}

function lddw(insn: Insn, next: Insn, style: Style): string | null {
	if (next.code !== 0 || next.dst !== 0 || next.src !== 0 || next.off !== 0) return null;
	const { dst, src, off, imm } = insn;
	if (off !== 0 || dst > REG_LIMIT) return null;
	if (src === 0) {
		const value = BigInt.asIntN(64, (BigInt(next.imm) << 32n) | BigInt(imm >>> 0));
		return `r${dst} = ${num(value, style)} ll`;
	}
	if (src > BPF_PSEUDO_MAP_IDX_VALUE) return null;
	if (style.llvm) return `ld_pseudo r${dst}, ${num(src, style)}, ${num(imm, style)}`;

	// The RFC 9669 table's own pseudocode names each subtype.
	const arg = num(imm, style);
	const withOffset = (map: string) => `r${dst} = map_val(${map}) + ${num(next.imm >>> 0, style)} ll`;
	if (src === BPF_PSEUDO_MAP_VALUE) return withOffset(`map_by_fd(${arg})`);
	if (src === BPF_PSEUDO_MAP_IDX_VALUE) return withOffset(`map_by_idx(${arg})`);
	if (next.imm !== 0) return null;
	const name = {
		[BPF_PSEUDO_MAP_FD]: 'map_by_fd',
		[BPF_PSEUDO_BTF_ID]: 'var_addr',
		[BPF_PSEUDO_FUNC]: 'code_addr',
		[BPF_PSEUDO_MAP_IDX]: 'map_by_idx',
	}[src];
	return `r${dst} = ${name}(${arg}) ll`;
}

function single(insn: Insn, style: Style): string | null {
	switch (bpfClass(insn.code)) {
		case BPF_ALU:
		case BPF_ALU64:
			return alu(insn, style);
		case BPF_JMP:
		case BPF_JMP32:
			return jump(insn, style);
		case BPF_LD:
			return legacyPacket(insn, style);
		default:
			return loadStore(insn, style);
	}
}

/** The raw form of one slot, which the assembler takes back as it is. */
export function rawInsn(insn: Insn, hex = false): string {
	const style = { hex, llvm: false };
	return `.insn 0x${insn.code.toString(16).padStart(2, '0')}, ${insn.dst}, ${insn.src}, ${num(insn.off, style)}, ${num(insn.imm, style)}`;
}

/**
 * Disassemble little-endian eBPF code, one line per instruction; lddw and its
 * second slot make one line, so line i is not slot i after an lddw.
 */
export function disassemble(code: Buffer | Uint8Array, options: DisassembleOptions = {}): string[] {
	const style: Style = { hex: options.hex ?? false, llvm: options.llvmObjdump ?? false };
	const insns = decode(code);
	const lines: string[] = [];
	for (let pc = 0; pc < insns.length; ) {
		const insn = insns[pc] as Insn;
		const next = insns[pc + 1];
		if (insn.code === BPF_LDDW && next !== undefined) {
			const text = lddw(insn, next, style);
			if (text !== null) {
				lines.push(text);
				pc += 2;
				continue;
			}
		}
		const text = insn.code === BPF_LDDW ? null : single(insn, style);
		lines.push(text ?? (style.llvm ? '<unknown>' : rawInsn(insn, style.hex)));
		pc += 1;
	}
	return lines;
}
