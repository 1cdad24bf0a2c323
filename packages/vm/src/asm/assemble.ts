// Assembler for the syntax llvm-objdump prints for BPF, plus labels, the
// pseudo-lddw and call spellings the disassembler uses where LLVM's text is
// ambiguous, and `.insn` for raw slots. See ./README.md for the grammar.
//
//   assemble(`
//     r0 = 0
//   loop:
//     r0 += 1
//     if r0 < 10 goto loop
//     exit
//   `)

import { BpftimeError } from '@bpftime/common';
import {
	BPF_ABS,
	BPF_ALU,
	BPF_ALU64,
	BPF_ATOMIC,
	BPF_CALL,
	BPF_CMPXCHG,
	BPF_DW,
	BPF_END,
	BPF_EXIT,
	BPF_FETCH,
	BPF_HELPER_CALL,
	BPF_IND,
	BPF_JA,
	BPF_JMP,
	BPF_JMP32,
	BPF_K,
	BPF_LD,
	BPF_LDDW,
	BPF_LDX,
	BPF_MEM,
	BPF_MEMSX,
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
	BPF_STX,
	BPF_TO_BE,
	BPF_TO_LE,
	BPF_W,
	BPF_X,
	BPF_XCHG,
	encode,
	type Insn,
} from './insn.js';
import { ALU_OPERATORS, ATOMIC_OPERATORS, invert, JMP_OPERATORS, SIZE_BITS } from './syntax.js';

type Token =
	| { kind: 'reg'; text: string; num: number; wide: boolean }
	| { kind: 'num'; text: string; value: bigint }
	| { kind: 'ident'; text: string }
	| { kind: 'punct'; text: string };

type Reg = Extract<Token, { kind: 'reg' }>;

/** A label reference, resolved once every label of the text is known. */
interface Fixup {
	label: string;
	/** Which field receives `target - (pc + 1)`. */
	field: 'off' | 'imm';
	/** Width of that field in bits. */
	bits: 16 | 32;
}

interface Parsed {
	insns: Insn[];
	fixup?: Fixup;
}

// Longest first, so `s>>=` is not read as `s>` `>=`.
const PUNCTUATION =
	's>>= <<= >>= s/= s%= s>= s<= += -= *= /= |= &= ^= %= == != >= <= s> s< > < = ( ) [ ] * + - , & :'.split(' ');

const ALU_BY_OPERATOR = invert(ALU_OPERATORS);
const JMP_BY_OPERATOR = invert(JMP_OPERATORS);
const SIZE_BY_BITS = invert(SIZE_BITS);
const ATOMIC_BY_OPERATOR = new Map([...ATOMIC_OPERATORS].map(([op, { operator }]) => [operator, op]));
const ATOMIC_BY_NAME = new Map([...ATOMIC_OPERATORS].map(([op, { name }]) => [`atomic_fetch_${name}`, op]));

const S16 = { min: -(2n ** 15n), max: 2n ** 15n - 1n };
const S32 = { min: -(2n ** 31n), max: 2n ** 31n - 1n };
/** A 32-bit operand: any 32-bit pattern, written signed or unsigned. */
const BITS32 = { min: -(2n ** 31n), max: 2n ** 32n - 1n };
const BITS64 = { min: -(2n ** 63n), max: 2n ** 64n - 1n };

class LineError extends Error {}

function fail(message: string): never {
	throw new LineError(message);
}

function stripComment(line: string): string {
	let end = line.length;
	for (const marker of ['#', ';', '//']) {
		const at = line.indexOf(marker);
		if (at >= 0 && at < end) end = at;
	}
	return line.slice(0, end);
}

function tokenize(text: string): Token[] {
	const tokens: Token[] = [];
	let i = 0;
	while (i < text.length) {
		const rest = text.slice(i);
		const space = /^\s+/.exec(rest);
		if (space) {
			i += space[0].length;
			continue;
		}
		const number = /^(0x[0-9a-f]+|[0-9]+)(?![\w.$])/i.exec(rest);
		if (number) {
			tokens.push({ kind: 'num', text: number[0], value: BigInt(number[0]) });
			i += number[0].length;
			continue;
		}
		// `s` starts a signed operator only when an operator character follows;
		// otherwise it starts a name such as `s8` or `skb`.
		const punct = PUNCTUATION.find((p) => rest.startsWith(p));
		if (punct) {
			tokens.push({ kind: 'punct', text: punct });
			i += punct.length;
			continue;
		}
		const word = /^[A-Za-z_.$][\w.$]*/.exec(rest);
		if (word) {
			const reg = /^([rw])(\d+)$/.exec(word[0]);
			if (reg) {
				const n = Number(reg[2]);
				if (n > 10) fail(`unknown register '${word[0]}'`);
				tokens.push({ kind: 'reg', text: word[0], num: n, wide: reg[1] === 'r' });
			} else {
				tokens.push({ kind: 'ident', text: word[0] });
			}
			i += word[0].length;
			continue;
		}
		fail(`unexpected character '${rest[0]}'`);
	}
	return tokens;
}

function describe(token: Token | undefined): string {
	return token === undefined ? 'end of line' : `'${token.text}'`;
}

function inRange(value: bigint, range: { min: bigint; max: bigint }, what: string): bigint {
	if (value < range.min || value > range.max) {
		fail(`${what} ${value} is out of range [${range.min}, ${range.max}]`);
	}
	return value;
}

/** The s32 bit pattern of a value already checked to fit 32 bits. */
function s32(value: bigint): number {
	return Number(BigInt.asIntN(32, value));
}

function insn(code: number, dst = 0, src = 0, off = 0, imm = 0): Insn {
	return { code, dst, src, off, imm };
}

function lddwSlots(dst: number, src: number, value: bigint): Insn[] {
	const bits = BigInt.asUintN(64, value);
	return [insn(BPF_LDDW, dst, src, 0, s32(bits & 0xffffffffn)), insn(0, 0, 0, 0, s32(bits >> 32n))];
}

class Parser {
	private at = 0;

	constructor(private readonly tokens: Token[]) {}

	peek(ahead = 0): Token | undefined {
		return this.tokens[this.at + ahead];
	}

	next(): Token | undefined {
		return this.tokens[this.at++];
	}

	isPunct(text: string, ahead = 0): boolean {
		const t = this.peek(ahead);
		return t?.kind === 'punct' && t.text === text;
	}

	isIdent(text?: string, ahead = 0): boolean {
		const t = this.peek(ahead);
		return t?.kind === 'ident' && (text === undefined || t.text === text);
	}

	eatPunct(text: string): boolean {
		if (!this.isPunct(text)) return false;
		this.at++;
		return true;
	}

	expectPunct(text: string): void {
		if (!this.eatPunct(text)) fail(`expected '${text}' but found ${describe(this.peek())}`);
	}

	expectIdent(text?: string): string {
		const t = this.peek();
		if (t?.kind !== 'ident' || (text !== undefined && t.text !== text)) {
			fail(`expected ${text === undefined ? 'a name' : `'${text}'`} but found ${describe(t)}`);
		}
		this.at++;
		return t.text;
	}

	expectReg(): Reg {
		const t = this.peek();
		if (t?.kind !== 'reg') fail(`expected a register but found ${describe(t)}`);
		this.at++;
		return t;
	}

	/** A 64-bit register: memory bases, lddw destinations, callx. */
	expectWideReg(): number {
		const reg = this.expectReg();
		if (!reg.wide) fail(`expected r${reg.num} but found '${reg.text}'`);
		return reg.num;
	}

	isNumber(): boolean {
		const t = this.peek();
		if (t?.kind === 'num') return true;
		return (this.isPunct('-') || this.isPunct('+')) && this.peek(1)?.kind === 'num';
	}

	/** An integer with an optional sign. */
	expectNumber(): bigint {
		const negative = this.eatPunct('-');
		if (!negative) this.eatPunct('+');
		const t = this.peek();
		if (t?.kind !== 'num') fail(`expected a number but found ${describe(t)}`);
		this.at++;
		return negative ? -t.value : t.value;
	}

	/** `(s8)`-style type names: returns signedness and width. */
	expectType(): { signed: boolean; bits: number } {
		const name = this.expectIdent();
		const m = /^([us])(8|16|32|64)$/.exec(name);
		if (!m) fail(`expected a type such as u32 or s16 but found '${name}'`);
		return { signed: m[1] === 's', bits: Number(m[2]) };
	}

	/** `*(u32 *)` after its leading `*` has been read. */
	expectPointerType(): { signed: boolean; bits: number } {
		this.expectPunct('(');
		const type = this.expectType();
		this.expectPunct('*');
		this.expectPunct(')');
		return type;
	}

	/** `rN + off` / `rN - off` / `rN`, without parentheses. */
	expectAddress(): { reg: number; off: number } {
		const reg = this.expectWideReg();
		let off = 0n;
		if (this.isPunct('+') || this.isPunct('-')) off = this.expectNumber();
		return { reg, off: Number(inRange(off, S16, 'offset')) };
	}

	/** `(rN + off)`. */
	expectMemory(): { reg: number; off: number } {
		this.expectPunct('(');
		const address = this.expectAddress();
		this.expectPunct(')');
		return address;
	}

	end(): void {
		const t = this.peek();
		if (t !== undefined) fail(`unexpected ${describe(t)}`);
	}
}

function sameWidth(a: Reg, b: Reg): void {
	if (a.wide !== b.wide) fail(`'${a.text}' and '${b.text}' must both be r or both be w registers`);
}

function sizeCode(bits: number): number {
	const size = SIZE_BY_BITS.get(bits);
	if (size === undefined) fail(`unsupported access width ${bits}`);
	return size;
}

/** A jump target: a signed displacement, or a label resolved later. */
function target(p: Parser, field: 'off' | 'imm', bits: 16 | 32): { value: number; fixup?: Fixup } {
	if (p.isIdent()) return { value: 0, fixup: { label: p.expectIdent(), field, bits } };
	const value = inRange(p.expectNumber(), bits === 16 ? S16 : S32, 'jump offset');
	return { value: Number(value) };
}

function parseCall(p: Parser): Parsed {
	if (p.isIdent('pc') && (p.isPunct('+', 1) || p.isPunct('-', 1))) {
		p.next();
		const imm = inRange(p.expectNumber(), S32, 'call offset');
		return { insns: [insn(BPF_JMP | BPF_CALL, 0, BPF_PSEUDO_CALL, 0, Number(imm))] };
	}
	if (p.isIdent('btf_id') && p.isPunct('(', 1)) {
		p.next();
		p.expectPunct('(');
		const imm = inRange(p.expectNumber(), BITS32, 'BTF id');
		p.expectPunct(')');
		return { insns: [insn(BPF_JMP | BPF_CALL, 0, BPF_PSEUDO_KFUNC_CALL, 0, s32(imm))] };
	}
	if (p.isIdent()) {
		const label = p.expectIdent();
		return {
			insns: [insn(BPF_JMP | BPF_CALL, 0, BPF_PSEUDO_CALL)],
			fixup: { label, field: 'imm', bits: 32 },
		};
	}
	// LLVM's `call N` is a helper call, whatever src_reg the bytes it was
	// printed from had: llvm-mc assembles it so too.
	const imm = inRange(p.expectNumber(), BITS32, 'helper id');
	return { insns: [insn(BPF_JMP | BPF_CALL, 0, BPF_HELPER_CALL, 0, s32(imm))] };
}

function parseIf(p: Parser): Parsed {
	const dst = p.expectReg();
	const t = p.next();
	const op = t?.kind === 'punct' ? JMP_BY_OPERATOR.get(t.text) : undefined;
	if (op === undefined) fail(`expected a comparison operator but found ${describe(t)}`);
	const cls = dst.wide ? BPF_JMP : BPF_JMP32;
	let code: number;
	let src = 0;
	let imm = 0;
	if (p.peek()?.kind === 'reg') {
		const reg = p.expectReg();
		sameWidth(dst, reg);
		code = cls | op | BPF_X;
		src = reg.num;
	} else {
		// JMP sign-extends imm to 64 bits, so only s32 values mean what they say.
		imm = s32(inRange(p.expectNumber(), dst.wide ? S32 : BITS32, 'immediate'));
		code = cls | op | BPF_K;
	}
	p.expectIdent('goto');
	const { value, fixup } = target(p, 'off', 16);
	p.end();
	return { insns: [insn(code, dst.num, src, value, imm)], fixup };
}

function parseStore(p: Parser): Parsed {
	const type = p.expectPointerType();
	if (type.signed) fail(`stores take an unsigned type, not 's${type.bits}'`);
	const size = sizeCode(type.bits);
	const { reg, off } = p.expectMemory();
	p.expectPunct('=');
	if (p.peek()?.kind === 'reg') {
		const src = p.expectReg();
		if (!src.wide && type.bits === 64) fail(`a 64-bit store needs r${src.num}, not '${src.text}'`);
		p.end();
		return { insns: [insn(BPF_STX | BPF_MEM | size, reg, src.num, off)] };
	}
	const imm = inRange(p.expectNumber(), type.bits === 64 ? S32 : BITS32, 'immediate');
	p.end();
	return { insns: [insn(BPF_ST | BPF_MEM | size, reg, 0, off, s32(imm))] };
}

function atomicSize(bits: number): number {
	if (bits !== 32 && bits !== 64) fail(`atomic operations are 32 or 64 bits wide, not ${bits}`);
	return bits === 64 ? BPF_DW : BPF_W;
}

/** Source register of a 32- or 64-bit atomic: r for 64; r or w for 32. */
function atomicSrc(p: Parser, bits: number): Reg {
	const src = p.expectReg();
	if (bits === 64 && !src.wide) fail(`a 64-bit atomic needs r${src.num}, not '${src.text}'`);
	return src;
}

function parseLock(p: Parser): Parsed {
	p.expectPunct('*');
	const type = p.expectPointerType();
	const size = atomicSize(type.bits);
	const { reg, off } = p.expectMemory();
	const t = p.next();
	const op = t?.kind === 'punct' ? ATOMIC_BY_OPERATOR.get(t.text) : undefined;
	if (op === undefined) fail(`expected one of += |= &= ^= but found ${describe(t)}`);
	const src = atomicSrc(p, type.bits);
	p.end();
	return { insns: [insn(BPF_STX | BPF_ATOMIC | size, reg, src.num, off, op)] };
}

/** `dst = name(...)` forms of the fetching atomics. */
function parseAtomicCall(p: Parser, dst: Reg, name: string): Parsed {
	const fetchOp = ATOMIC_BY_NAME.get(name);
	if (fetchOp !== undefined) {
		p.expectPunct('(');
		p.expectPunct('(');
		const type = p.expectType();
		p.expectPunct('*');
		p.expectPunct(')');
		const size = atomicSize(type.bits);
		const { reg, off } = p.expectMemory();
		p.expectPunct(',');
		const src = atomicSrc(p, type.bits);
		p.expectPunct(')');
		p.end();
		if (src.num !== dst.num) fail(`${name} returns the old value into its source register r${src.num}`);
		return { insns: [insn(BPF_STX | BPF_ATOMIC | size, reg, src.num, off, fetchOp | BPF_FETCH)] };
	}
	const bits = name.endsWith('_64') ? 64 : 32;
	const size = bits === 64 ? BPF_DW : BPF_W;
	p.expectPunct('(');
	const { reg, off } = p.expectAddress();
	p.expectPunct(',');
	if (name.startsWith('cmpxchg')) {
		const expected = atomicSrc(p, bits);
		if (expected.num !== 0 || dst.num !== 0) fail(`${name} compares with and returns into r0`);
		p.expectPunct(',');
	}
	const src = atomicSrc(p, bits);
	p.expectPunct(')');
	p.end();
	if (name.startsWith('xchg') && src.num !== dst.num) {
		fail(`${name} returns the old value into its source register r${src.num}`);
	}
	const imm = name.startsWith('cmpxchg') ? BPF_CMPXCHG : BPF_XCHG;
	return { insns: [insn(BPF_STX | BPF_ATOMIC | size, reg, src.num, off, imm)] };
}

/** `dst = map_by_fd(3) ll` and the other RFC 9669 pseudo-lddw forms. */
function parsePseudo(p: Parser, dst: number, name: string): Parsed {
	let src: number;
	let imm: bigint;
	let nextImm = 0n;
	let fixup: Fixup | undefined;
	p.expectPunct('(');
	if (name === 'map_val') {
		const inner = p.expectIdent();
		if (inner !== 'map_by_fd' && inner !== 'map_by_idx') {
			fail(`expected map_by_fd or map_by_idx but found '${inner}'`);
		}
		src = inner === 'map_by_fd' ? BPF_PSEUDO_MAP_VALUE : BPF_PSEUDO_MAP_IDX_VALUE;
		p.expectPunct('(');
		imm = inRange(p.expectNumber(), BITS32, inner);
		p.expectPunct(')');
		p.expectPunct(')');
		if (p.eatPunct('+')) nextImm = inRange(p.expectNumber(), BITS32, 'map value offset');
	} else if (name === 'code_addr' && p.isIdent()) {
		src = BPF_PSEUDO_FUNC;
		imm = 0n;
		fixup = { label: p.expectIdent(), field: 'imm', bits: 32 };
		p.expectPunct(')');
	} else {
		src = {
			map_by_fd: BPF_PSEUDO_MAP_FD,
			map_by_idx: BPF_PSEUDO_MAP_IDX,
			var_addr: BPF_PSEUDO_BTF_ID,
			code_addr: BPF_PSEUDO_FUNC,
		}[name] as number;
		imm = inRange(p.expectNumber(), BITS32, name);
		p.expectPunct(')');
	}
	p.expectIdent('ll');
	p.end();
	const value = (BigInt.asUintN(32, nextImm) << 32n) | BigInt.asUintN(32, imm);
	return { insns: lddwSlots(dst, src, value), fixup };
}

const END_NAME = /^(be|le|bswap)(16|32|64)$/;
const PSEUDO_NAMES = new Set(['map_by_fd', 'map_by_idx', 'map_val', 'var_addr', 'code_addr']);
const XCHG_NAMES = new Set(['xchg_64', 'xchg32_32', 'cmpxchg_64', 'cmpxchg32_32']);

function parseLoad(p: Parser, dst: Reg): Parsed {
	const type = p.expectPointerType();
	const size = sizeCode(type.bits);
	if (p.isIdent('skb')) {
		// Legacy packet access (RFC 9669 5.5) always loads into r0.
		p.next();
		if (dst.num !== 0 || !dst.wide) fail(`legacy packet loads write r0, not '${dst.text}'`);
		if (type.signed || type.bits === 64) fail(`legacy packet loads are u8, u16 or u32`);
		p.expectPunct('[');
		let parsed: Insn;
		if (p.peek()?.kind === 'reg') {
			const { reg, off } = p.expectAddress();
			parsed = insn(BPF_LD | BPF_IND | size, 0, reg, 0, off);
		} else {
			const imm = inRange(p.expectNumber(), BITS32, 'packet offset');
			parsed = insn(BPF_LD | BPF_ABS | size, 0, 0, 0, s32(imm));
		}
		p.expectPunct(']');
		p.end();
		return { insns: [parsed] };
	}
	const { reg, off } = p.expectMemory();
	p.end();
	if (type.signed) {
		if (type.bits === 64) fail(`sign-extending loads are s8, s16 or s32`);
		if (!dst.wide) fail(`a sign-extending load writes r${dst.num}, not '${dst.text}'`);
		return { insns: [insn(BPF_LDX | BPF_MEMSX | size, dst.num, reg, off)] };
	}
	if (!dst.wide && type.bits === 64) fail(`a 64-bit load writes r${dst.num}, not '${dst.text}'`);
	return { insns: [insn(BPF_LDX | BPF_MEM | size, dst.num, reg, off)] };
}

function parseAssign(p: Parser, dst: Reg): Parsed {
	const cls = dst.wide ? BPF_ALU64 : BPF_ALU;
	const t = p.peek();

	if (t?.kind === 'reg') {
		const src = p.expectReg();
		sameWidth(dst, src);
		p.end();
		return { insns: [insn(cls | BPF_MOV | BPF_X, dst.num, src.num)] };
	}
	if (p.isPunct('(')) {
		p.next();
		const type = p.expectType();
		p.expectPunct(')');
		const src = p.expectReg();
		sameWidth(dst, src);
		p.end();
		const allowed = dst.wide ? [8, 16, 32] : [8, 16];
		if (!type.signed || !allowed.includes(type.bits)) {
			fail(`'${dst.text} = (${type.signed ? 's' : 'u'}${type.bits})' is not a sign-extending move`);
		}
		return { insns: [insn(cls | BPF_MOV | BPF_X, dst.num, src.num, type.bits)] };
	}
	if (p.isPunct('-') && p.peek(1)?.kind === 'reg') {
		p.next();
		const src = p.expectReg();
		sameWidth(dst, src);
		if (src.num !== dst.num) fail(`negation works in place: write '${dst.text} = -${dst.text}'`);
		p.end();
		return { insns: [insn(cls | BPF_NEG | BPF_K, dst.num)] };
	}
	if (p.isPunct('*')) {
		p.next();
		return parseLoad(p, dst);
	}
	if (t?.kind === 'ident') {
		const name = p.expectIdent();
		const end = END_NAME.exec(name);
		if (end) {
			const src = p.expectReg();
			if (src.num !== dst.num) fail(`byte swaps work in place: write '${dst.text} = ${name} ${dst.text}'`);
			p.end();
			const code =
				end[1] === 'bswap'
					? BPF_ALU64 | BPF_END | BPF_TO_LE
					: BPF_ALU | BPF_END | (end[1] === 'be' ? BPF_TO_BE : BPF_TO_LE);
			return { insns: [insn(code, dst.num, 0, 0, Number(end[2]))] };
		}
		if (ATOMIC_BY_NAME.has(name) || XCHG_NAMES.has(name)) return parseAtomicCall(p, dst, name);
		if (PSEUDO_NAMES.has(name)) {
			if (!dst.wide) fail(`lddw writes r${dst.num}, not '${dst.text}'`);
			return parsePseudo(p, dst.num, name);
		}
		fail(`unknown operand '${name}'`);
	}

	const value = p.expectNumber();
	if (p.isIdent('ll')) {
		p.next();
		p.end();
		if (!dst.wide) fail(`lddw writes r${dst.num}, not '${dst.text}'`);
		return { insns: lddwSlots(dst.num, 0, inRange(value, BITS64, 'immediate')) };
	}
	p.end();
	// A 64-bit mov sign-extends imm, so 0xffffffff would silently become -1.
	if (dst.wide && value > S32.max && value <= BITS32.max) {
		fail(`immediate ${value} does not fit s32, which a 64-bit mov sign-extends; write '${dst.text} = ${value} ll'`);
	}
	const imm = inRange(value, dst.wide ? S32 : BITS32, 'immediate');
	return { insns: [insn(cls | BPF_MOV | BPF_K, dst.num, 0, 0, s32(imm))] };
}

function parseAlu(p: Parser, dst: Reg, operator: string): Parsed {
	const signed = operator === 's/=' || operator === 's%=';
	const op = ALU_BY_OPERATOR.get(signed ? operator.slice(1) : operator);
	if (op === undefined) fail(`unknown operator '${operator}'`);
	const cls = dst.wide ? BPF_ALU64 : BPF_ALU;
	const off = signed ? 1 : 0;
	if (p.peek()?.kind === 'reg') {
		const src = p.expectReg();
		sameWidth(dst, src);
		p.end();
		return { insns: [insn(cls | op | BPF_X, dst.num, src.num, off)] };
	}
	const imm = inRange(p.expectNumber(), dst.wide ? S32 : BITS32, 'immediate');
	p.end();
	return { insns: [insn(cls | op | BPF_K, dst.num, 0, off, s32(imm))] };
}

function parseRaw(p: Parser): Parsed {
	const fields: bigint[] = [];
	for (;;) {
		fields.push(p.expectNumber());
		if (!p.eatPunct(',')) break;
	}
	p.end();
	if (fields.length !== 5) fail(`.insn takes code, dst, src, off, imm; found ${fields.length} fields`);
	const [code, dst, src, off, imm] = fields as [bigint, bigint, bigint, bigint, bigint];
	return {
		insns: [
			insn(
				Number(inRange(code, { min: 0n, max: 255n }, 'code')),
				Number(inRange(dst, { min: 0n, max: 15n }, 'dst')),
				Number(inRange(src, { min: 0n, max: 15n }, 'src')),
				Number(BigInt.asIntN(16, inRange(off, { min: S16.min, max: 0xffffn }, 'off'))),
				s32(inRange(imm, BITS32, 'imm')),
			),
		],
	};
}

function parseInsn(p: Parser): Parsed {
	const first = p.peek();
	if (first?.kind === 'ident') {
		const word = first.text;
		switch (word) {
			case 'exit':
				p.next();
				p.end();
				return { insns: [insn(BPF_JMP | BPF_EXIT)] };
			case 'goto':
			case 'gotol': {
				p.next();
				const long = word === 'gotol';
				const { value, fixup } = target(p, long ? 'imm' : 'off', long ? 32 : 16);
				p.end();
				const parsed = long ? insn(BPF_JMP32 | BPF_JA, 0, 0, 0, value) : insn(BPF_JMP | BPF_JA, 0, 0, value);
				return { insns: [parsed], fixup };
			}
			case 'call': {
				p.next();
				const parsed = parseCall(p);
				p.end();
				return parsed;
			}
			case 'callx': {
				p.next();
				const reg = p.expectWideReg();
				p.end();
				return { insns: [insn(BPF_JMP | BPF_CALL | BPF_X, reg)] };
			}
			case 'if':
				p.next();
				return parseIf(p);
			case 'lock':
				p.next();
				return parseLock(p);
			case 'ld_pseudo': {
				// LLVM's spelling of a pseudo lddw; it has no next_imm operand.
				p.next();
				const dst = p.expectWideReg();
				p.expectPunct(',');
				const src = inRange(p.expectNumber(), { min: 1n, max: 6n }, 'ld_pseudo subtype');
				p.expectPunct(',');
				const imm = inRange(p.expectNumber(), BITS32, 'immediate');
				p.end();
				return { insns: lddwSlots(dst, Number(src), BigInt.asUintN(32, imm)) };
			}
			case '.insn':
				p.next();
				return parseRaw(p);
			default:
				fail(`unknown instruction '${word}'`);
		}
	}
	if (p.isPunct('*')) {
		p.next();
		return parseStore(p);
	}
	const dst = p.expectReg();
	const t = p.next();
	if (t?.kind === 'punct' && t.text === '=') return parseAssign(p, dst);
	if (t?.kind === 'punct' && (ALU_BY_OPERATOR.has(t.text) || t.text === 's/=' || t.text === 's%=')) {
		return parseAlu(p, dst, t.text);
	}
	fail(`expected '=' or an operator such as '+=' but found ${describe(t)}`);
}

/**
 * Assemble text into little-endian eBPF code (8 bytes per slot, 16 for lddw).
 *
 * One instruction per line; `name:` defines a label (alone or before an
 * instruction), usable wherever a jump displacement, a local call target or
 * code_addr's operand goes. `#`, `;` and `//` start comments. Throws a
 * BpftimeError (EINVAL) naming the line number and its text on the first bad
 * line.
 */
export function assemble(text: string): Buffer {
	const labels = new Map<string, number>();
	const pending: { parsed: Parsed; pc: number; line: number; text: string }[] = [];
	let pc = 0;
	const lines = text.split(/\r?\n/);
	const error = (line: number, source: string, message: string) =>
		new BpftimeError('EINVAL', `line ${line}: ${message} in '${source.trim()}'`);

	lines.forEach((source, index) => {
		const line = index + 1;
		try {
			const p = new Parser(tokenize(stripComment(source)));
			while (p.isIdent() && p.isPunct(':', 1)) {
				const name = p.expectIdent();
				p.next();
				if (labels.has(name)) fail(`label '${name}' is already defined`);
				labels.set(name, pc);
			}
			if (p.peek() === undefined) return;
			const parsed = parseInsn(p);
			pending.push({ parsed, pc, line, text: source });
			pc += parsed.insns.length;
		} catch (e) {
			if (e instanceof LineError) throw error(line, source, e.message);
			throw e;
		}
	});

	const insns: Insn[] = [];
	for (const { parsed, pc: at, line, text: source } of pending) {
		const { fixup } = parsed;
		if (fixup !== undefined) {
			const targetPc = labels.get(fixup.label);
			if (targetPc === undefined) throw error(line, source, `unknown label '${fixup.label}'`);
			const distance = BigInt(targetPc - (at + 1));
			try {
				const value = Number(inRange(distance, fixup.bits === 16 ? S16 : S32, `distance to '${fixup.label}'`));
				(parsed.insns[0] as Insn)[fixup.field] = value;
			} catch (e) {
				if (e instanceof LineError) throw error(line, source, e.message);
				throw e;
			}
		}
		insns.push(...parsed.insns);
	}
	return encode(insns);
}
