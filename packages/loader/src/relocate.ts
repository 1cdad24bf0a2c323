// Relocation of program code, in libbpf's order and with its rules:
//  1. collectProgRelocs(): each entry of `.rel<sec>` is classified as
//     libbpf's bpf_program__record_reloc() does: a call to a sub-program, the
//     address of a sub-program (function pointer), a map, or global data;
//  2. (CO-RE is applied to each function on its own, see core/);
//  3. linkProgram(): for one entry program, sub-programs of `.text` are
//     appended in the order their first call is met, depth first, and every
//     call's imm is fixed to the new distance (bpf_object__reloc_code());
//  4. the lddw of maps and global data get placeholders: src_reg
//     BPF_PSEUDO_MAP_IDX(_VALUE) and imm = the map's index, turned into
//     registry ids at load by resolveMapReferences().

import {
	BPF_PSEUDO_CALL,
	BPF_PSEUDO_FUNC,
	BPF_PSEUDO_MAP_FD,
	BPF_PSEUDO_MAP_IDX,
	BPF_PSEUDO_MAP_IDX_VALUE,
	BPF_PSEUDO_MAP_VALUE,
	BpftimeError,
} from '@bpftime/common';
import type { Btf } from './btf/btf.js';
import { atSourceLine, type BtfExt, type LineInfo, sourceLineOf } from './btf/ext.js';
import { hex, malformed } from './bytes.js';
import {
	R_BPF_64_32,
	R_BPF_64_64,
	SHN_LORESERVE,
	SHN_UNDEF,
	STB_GLOBAL,
	STB_LOCAL,
	STB_WEAK,
	STT_FUNC,
	STT_NOTYPE,
	STT_SECTION,
} from './elf/constants.js';
import type { ElfFile, ElfRelocation, ElfSection, ElfSymbol } from './elf/elf-file.js';
import {
	BPF_CALL_INSN,
	INSN_SIZE,
	imm,
	isLdImm64,
	isPseudoFunc,
	isSubprogCall,
	opcode,
	setImm,
	setSrcReg,
	srcReg,
} from './insn.js';
import type { ObjectMapSpec } from './maps.js';
import type { AppliedRelocation, Func, FuncInfoEntry, FuncReloc, MapReference } from './programs.js';

export interface RelocContext {
	elf: ElfFile;
	symbols: ElfSymbol[];
	/** Index of `.text`, or -1. */
	textIdx: number;
	/** Sections holding map definitions: `.maps` and legacy `maps`. */
	mapSections: Set<number>;
	maps: ObjectMapSpec[];
	/** Global data map index by section index. */
	dataMapBySection: Map<number, number>;
	/** For errors: the object's .BTF.ext, whose line info names the source of an instruction. */
	ext: BtfExt | undefined;
}

const relocTypeNames: Record<number, string> = {
	0: 'R_BPF_NONE',
	1: 'R_BPF_64_64',
	2: 'R_BPF_64_ABS64',
	3: 'R_BPF_64_ABS32',
	4: 'R_BPF_64_NODYLD32',
	10: 'R_BPF_64_32',
};

function symName(ctx: RelocContext, sym: ElfSymbol): string {
	if (sym.type === STT_SECTION) return ctx.elf.sections[sym.shndx]?.name ?? `section #${sym.shndx}`;
	return sym.name;
}

/** libbpf sym_is_extern(): an undefined global with no type. */
function symIsExtern(sym: ElfSymbol): boolean {
	return sym.shndx === SHN_UNDEF && (sym.bind === STB_GLOBAL || sym.bind === STB_WEAK) && sym.type === STT_NOTYPE;
}

/** libbpf sym_is_subprog(): a function of `.text`, or `.text` itself for static ones. */
function symIsSubprog(sym: ElfSymbol, textIdx: number): boolean {
	if (sym.shndx !== textIdx) return false;
	if (sym.bind === STB_LOCAL && sym.type === STT_SECTION) return true;
	return (sym.bind === STB_GLOBAL || sym.bind === STB_WEAK || sym.bind === STB_LOCAL) && sym.type === STT_FUNC;
}

/**
 * libbpf bpf_object__collect_prog_relos() + bpf_program__record_reloc():
 * attaches each relocation of `relSec` to the function it patches.
 * `funcs` are the functions of the target section.
 */
export function collectProgRelocs(ctx: RelocContext, relSec: ElfSection, target: ElfSection, funcs: Func[]): void {
	const relos = ctx.elf.relocations(relSec);
	relos.forEach((r, i) => {
		try {
			collectOne(ctx, r, i, target, funcs);
		} catch (e) {
			const valid = r.offset % BigInt(INSN_SIZE) === 0n && r.offset < BigInt(target.size);
			throw valid ? atSourceLine(e, sourceLineOf(ctx.ext, target.name, Number(r.offset) / INSN_SIZE)) : e;
		}
	});
}

/** One relocation of collectProgRelocs(). */
function collectOne(ctx: RelocContext, r: ElfRelocation, i: number, target: ElfSection, funcs: Func[]): void {
	const insnCount = target.size / INSN_SIZE;
	const sym = ctx.symbols[r.sym];
	if (!sym) throw malformed(`sec '${target.name}': symbol #${r.sym} not found for relo #${i}`);
	if (r.offset % BigInt(INSN_SIZE) !== 0n || r.offset >= BigInt(target.size)) {
		throw malformed(
			`sec '${target.name}': relo #${i}: bad insn index ${r.offset / BigInt(INSN_SIZE)} (offset ${hex(r.offset)}, the section has ${insnCount} instructions)`,
		);
	}
	const secInsn = Number(r.offset) / INSN_SIZE;
	const func = funcs.find((f) => secInsn >= f.secInsnOff && secInsn < f.secInsnOff + f.secInsnCnt);
	// libbpf skips relocations of code no function covers (a weak function the linker overrode).
	if (!func) return;
	const insnIdx = secInsn - func.secInsnOff;
	const name = symName(ctx, sym);
	const where = `prog '${func.name}': relo #${i}`;
	const code = opcode(func.insns, insnIdx);
	const isCall = code === BPF_CALL_INSN;
	const isLd = isLdImm64(func.insns, insnIdx);
	if (!isCall && !isLd) {
		throw new BpftimeError(
			'EINVAL',
			`${where}: invalid relo against '${name}' for insns[${insnIdx}].code ${hex(code)}`,
		);
	}
	const expected = isCall ? R_BPF_64_32 : R_BPF_64_64;
	if (r.type !== expected) {
		throw new BpftimeError(
			'EINVAL',
			`${where}: unknown relocation type ${r.type}${relocTypeNames[r.type] ? ` (${relocTypeNames[r.type]})` : ''} for ${isCall ? 'call' : 'lddw'} at insn #${insnIdx}, expected ${relocTypeNames[expected]}`,
		);
	}
	if (isLd && insnIdx + 1 >= func.secInsnCnt) {
		throw malformed(`${where}: lddw at insn #${insnIdx} has no second slot`);
	}
	if (symIsExtern(sym)) {
		throw new BpftimeError(
			'EOPNOTSUPP',
			`${where}: extern '${name}' is not supported: bpftime has no kernel symbols (__ksym) or kernel config (__kconfig)`,
		);
	}
	if (isCall) {
		if (srcReg(func.insns, insnIdx) !== BPF_PSEUDO_CALL) throw malformed(`${where}: incorrect bpf_call opcode`);
		if (sym.shndx === SHN_UNDEF || sym.shndx !== ctx.textIdx) {
			throw malformed(
				`${where}: bad call relo against '${name}' in section '${ctx.elf.sections[sym.shndx]?.name ?? sym.shndx}'`,
			);
		}
		if (sym.value % BigInt(INSN_SIZE) !== 0n)
			throw malformed(`${where}: bad call relo against '${name}' at offset ${sym.value}`);
		func.relos.push({ type: 'call', insnIdx, symOff: Number(sym.value), sym: name });
		return;
	}
	if (sym.shndx === SHN_UNDEF || sym.shndx >= SHN_LORESERVE) {
		throw malformed(
			`${where}: invalid relo against '${name}' in special section ${hex(sym.shndx)}; forgot to initialize global var?`,
		);
	}
	if (symIsSubprog(sym, ctx.textIdx)) {
		const off = imm(func.insns, insnIdx);
		if (sym.value % BigInt(INSN_SIZE) !== 0n || off % INSN_SIZE !== 0) {
			throw malformed(`${where}: bad subprog addr relo against '${name}' at offset ${sym.value}+${off}`);
		}
		func.relos.push({ type: 'subprog_addr', insnIdx, symOff: Number(sym.value), sym: name });
		return;
	}
	if (ctx.mapSections.has(sym.shndx)) {
		const mapIndex = ctx.maps.findIndex(
			(m) =>
				(m.kind === 'btf' || m.kind === 'legacy') &&
				m.section === ctx.elf.sections[sym.shndx]?.name &&
				BigInt(m.sectionOffset) === sym.value,
		);
		if (mapIndex < 0) {
			throw malformed(
				`${where}: map relo failed to find map for section '${ctx.elf.sections[sym.shndx]?.name}', off ${sym.value}`,
			);
		}
		func.relos.push({ type: 'ld64', insnIdx, mapIndex, sym: name });
		return;
	}
	const dataIndex = ctx.dataMapBySection.get(sym.shndx);
	if (dataIndex === undefined) {
		throw malformed(
			`${where}: bad data relo against '${name}' in section '${ctx.elf.sections[sym.shndx]?.name ?? sym.shndx}'`,
		);
	}
	func.relos.push({ type: 'data', insnIdx, mapIndex: dataIndex, symOff: Number(sym.value), sym: name });
}

/** Before linking: mark lddw of function addresses so they are recognised (libbpf bpf_object__relocate()). */
export function markPseudoFuncs(funcs: Func[]): void {
	for (const f of funcs)
		for (const r of f.relos) if (r.type === 'subprog_addr') setSrcReg(f.insns, r.insnIdx, BPF_PSEUDO_FUNC);
}

export interface LinkedProgram {
	instructions: Buffer;
	mapReferences: MapReference[];
	relocations: AppliedRelocation[];
	funcInfo: FuncInfoEntry[];
	lineInfo: LineInfo[];
	subprograms: { name: string; insnIdx: number }[];
}

interface Placed {
	func: Func;
	/** libbpf sub_insn_off: where the function starts in the entry program. */
	off: number;
}

/**
 * libbpf bpf_object__relocate_calls() + bpf_object__relocate_data() for one
 * entry program: appends the sub-programs it reaches and resolves calls,
 * function pointers, maps and global data.
 */
export function linkProgram(
	main: Func,
	all: Func[],
	ctx: RelocContext,
	btf: Btf | undefined,
	ext: BtfExt | undefined,
): LinkedProgram {
	let code = Buffer.from(main.insns);
	const placed = new Map<Func, Placed>();
	const order: Placed[] = [];
	const relocations: AppliedRelocation[] = [];
	const place = (func: Func, off: number) => {
		const p = { func, off };
		placed.set(func, p);
		order.push(p);
		return p;
	};
	place(main, 0);
	const textFuncs = all.filter((f) => f.secIdx === ctx.textIdx);

	const relocCode = (p: Placed, depth: number) => {
		if (depth > all.length + 1)
			throw malformed(`prog '${main.name}': sub-program nesting deeper than the number of functions`);
		const prog = p.func;
		for (let i = 0; i < prog.secInsnCnt; i++) {
			const at = p.off + i;
			if (!isSubprogCall(code, at) && !isPseudoFunc(code, at)) continue;
			const relo = prog.relos.find((r) => r.insnIdx === i);
			if (relo && relo.type !== 'call' && relo.type !== 'subprog_addr') {
				throw malformed(`prog '${prog.name}': unexpected relo for insn #${i}, type ${relo.type}`);
			}
			let subInsnIdx: number;
			if (relo?.type === 'call') {
				// For global functions imm is -1 and the symbol gives the target;
				// for static ones the symbol is the section and imm the distance.
				subInsnIdx = relo.symOff / INSN_SIZE + imm(code, at) + 1;
			} else if (relo?.type === 'subprog_addr') {
				subInsnIdx = (relo.symOff + imm(code, at)) / INSN_SIZE;
			} else if (isPseudoFunc(code, at)) {
				throw malformed(`prog '${prog.name}': missing subprog addr relo for insn #${i}`);
			} else {
				// A call to a static function of the same section has no
				// relocation: imm is already relative to the section.
				if (prog.secIdx !== ctx.textIdx) {
					throw malformed(
						`prog '${prog.name}': insn #${i}: call without relocation out of section '${prog.secName}'; sub-programs must be in .text`,
					);
				}
				subInsnIdx = prog.secInsnOff + i + imm(code, at) + 1;
			}
			const sub = textFuncs.find((f) => subInsnIdx >= f.secInsnOff && subInsnIdx < f.secInsnOff + f.secInsnCnt);
			if (!sub) {
				throw malformed(
					ctx.textIdx < 0
						? `prog '${prog.name}': no .text section found yet sub-program call exists`
						: `prog '${prog.name}': insn #${i}: ${relo?.type === 'subprog_addr' ? 'function pointer' : 'call'} target #${subInsnIdx} of .text is not in any function`,
				);
			}
			if (sub.secInsnOff !== subInsnIdx) {
				throw malformed(
					`prog '${prog.name}': insn #${i}: target #${subInsnIdx} of .text is inside '${sub.name}' (which starts at #${sub.secInsnOff})`,
				);
			}
			let target = placed.get(sub);
			if (!target) {
				target = place(sub, code.length / INSN_SIZE);
				code = Buffer.concat([code, sub.insns]);
				relocCode(target, depth + 1);
			}
			setImm(code, at, target.off - at - 1);
			relocations.push({
				insnIdx: at,
				kind: relo?.type === 'subprog_addr' ? 'func' : 'call',
				target: `subprog '${sub.name}' at #${target.off}`,
			});
		}
	};
	relocCode(placed.get(main) as Placed, 0);

	// bpf_object__relocate_data() over the relocations of every placed piece.
	const mapReferences: MapReference[] = [];
	for (const p of order) {
		for (const r of p.func.relos) {
			const at = p.off + r.insnIdx;
			if (r.type === 'ld64' || r.type === 'data') {
				const map = ctx.maps[r.mapIndex] as ObjectMapSpec;
				if (r.type === 'ld64') {
					setSrcReg(code, at, BPF_PSEUDO_MAP_IDX);
					setImm(code, at, r.mapIndex);
					mapReferences.push({ insnIdx: at, mapIndex: r.mapIndex, map: map.name, kind: 'fd', offset: 0 });
					relocations.push({ insnIdx: at, kind: 'map', target: `map '${map.name}'` });
				} else {
					const offset = imm(code, at) + r.symOff;
					if (offset < 0 || offset > map.valueSize) {
						throw malformed(
							`prog '${p.func.name}': insn #${r.insnIdx}: offset ${offset} into '${map.name}' is outside its ${map.valueSize} bytes`,
						);
					}
					setSrcReg(code, at, BPF_PSEUDO_MAP_IDX_VALUE);
					setImm(code, at, r.mapIndex);
					setImm(code, at + 1, offset);
					mapReferences.push({ insnIdx: at, mapIndex: r.mapIndex, map: map.name, kind: 'value', offset });
					relocations.push({
						insnIdx: at,
						kind: 'data',
						target: `map '${map.name}'+${offset}${r.sym !== map.section ? ` ('${r.sym}')` : ''}`,
					});
				}
			}
		}
	}

	// libbpf reloc_prog_func_and_line_info(): each piece's records, shifted.
	const funcInfo: FuncInfoEntry[] = [];
	const lineInfo: LineInfo[] = [];
	if (ext) {
		for (const p of order) {
			const f = p.func;
			const shift = p.off - f.secInsnOff;
			const inFunc = (idx: number) => idx >= f.secInsnOff && idx < f.secInsnOff + f.secInsnCnt;
			for (const fi of ext.funcInfo.get(f.secName) ?? []) {
				if (!inFunc(fi.insnIdx)) continue;
				funcInfo.push({ insnIdx: fi.insnIdx + shift, typeId: fi.typeId, name: btf?.tryType(fi.typeId)?.name ?? '' });
			}
			for (const li of ext.lineInfo.get(f.secName) ?? []) {
				if (inFunc(li.insnIdx)) lineInfo.push({ ...li, insnIdx: li.insnIdx + shift });
			}
		}
	}
	relocations.sort((a, b) => a.insnIdx - b.insnIdx);
	return {
		instructions: code,
		mapReferences,
		relocations,
		funcInfo,
		lineInfo,
		subprograms: order.slice(1).map((p) => ({ name: p.func.name, insnIdx: p.off })),
	};
}

/**
 * Replaces the map placeholders of a program with registry ids: src_reg
 * becomes BPF_PSEUDO_MAP_FD or BPF_PSEUDO_MAP_VALUE and imm the id
 * `idOf(mapIndex)` returns. Returns a copy; the spec is not modified.
 */
export function resolveMapReferences(
	instructions: Buffer,
	refs: readonly MapReference[],
	idOf: (mapIndex: number, name: string) => number,
): Buffer {
	const code = Buffer.from(instructions);
	for (const ref of refs) {
		setSrcReg(code, ref.insnIdx, ref.kind === 'fd' ? BPF_PSEUDO_MAP_FD : BPF_PSEUDO_MAP_VALUE);
		setImm(code, ref.insnIdx, idOf(ref.mapIndex, ref.map));
	}
	return code;
}

export type { FuncReloc };
