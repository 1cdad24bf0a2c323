// Programs of an object file. Every STT_FUNC symbol of an executable section
// is one function (libbpf's struct bpf_program): the ones outside `.text`
// are entry points named by their SEC(); the ones in `.text` are
// sub-programs, appended to the entry points that call them.

import { BpftimeError } from '@bpftime/common';
import type { LineInfo } from './btf/ext.js';
import { malformed } from './bytes.js';
import { SHF_EXECINSTR, SHT_PROGBITS, STB_LOCAL, STT_FUNC } from './elf/constants.js';
import type { ElfSection, ElfSymbol } from './elf/elf-file.js';
import { INSN_SIZE } from './insn.js';
import type { ProgType } from './kernel.js';
import type { AttachPoint } from './sections.js';

/** Where an lddw in a program's instructions points: map placeholders resolved at load. */
export interface MapReference {
	/** Index of the lddw in `ObjectProgSpec.instructions`. */
	insnIdx: number;
	/** Index of the map in `BpfObject.maps`; the lddw's imm holds it until load. */
	mapIndex: number;
	map: string;
	/** `fd`: the map itself (BPF_PSEUDO_MAP_FD); `value`: an address inside its value (BPF_PSEUDO_MAP_VALUE). */
	kind: 'fd' | 'value';
	/** Byte offset inside the value for `value`, 0 for `fd`. */
	offset: number;
}

/** One relocation applied to a program, for the objdump view and for errors. */
export interface AppliedRelocation {
	/** Index in `ObjectProgSpec.instructions`. */
	insnIdx: number;
	kind: 'map' | 'data' | 'call' | 'func' | 'core';
	/** What it points to, in words: `map 'counts'`, `.rodata+4`, `subprog 'helper' at #40`, a CO-RE spec. */
	target: string;
}

/** A BTF FUNC starting at an instruction (func_info), after sub-programs are appended. */
export interface FuncInfoEntry {
	insnIdx: number;
	typeId: number;
	name: string;
}

/**
 * A program as the object declares it, relocated and ready to load: plain
 * data (what becomes a `ProgSpec`, the one @bpftime/handlers' `loadProg()`
 * takes, once its map references are resolved). Its lddw of maps carry BPF_PSEUDO_MAP_IDX / BPF_PSEUDO_MAP_IDX_VALUE
 * with the map's index in `BpfObject.maps` as imm (the kernel's fd_array
 * convention); `resolveMapReferences` turns them into registry ids at load.
 */
export interface ObjectProgSpec {
	/** The function's name (libbpf bpf_program__name()). */
	name: string;
	/** Its SEC() name. */
	section: string;
	/** BPF_PROG_TYPE_*; Unspec (0) when libbpf would not recognise the section. */
	type: ProgType | number;
	/** BPF_* attach type the kernel expects at load (0 for most tracing types). */
	expectedAttachType: number;
	sleepable: boolean;
	/** Parsed from the SEC name; undefined when the name gives no target (`SEC("uprobe")`). */
	attachPoint: AttachPoint | undefined;
	/** Why the SEC name's target could not be parsed, when it could not. */
	attachError: string | undefined;
	license: string;
	kernelVersion: number;
	/** The relocated instructions, sub-programs appended. */
	instructions: Buffer;
	/** instructions.length / 8, what libbpf's bpf_program__insn_cnt() returns after load. */
	insnCount: number;
	mapReferences: MapReference[];
	relocations: AppliedRelocation[];
	funcInfo: FuncInfoEntry[];
	/** Source lines, instruction indices shifted like the sub-programs. */
	lineInfo: LineInfo[];
	/** Sub-programs appended, in order, with the index of their first instruction. */
	subprograms: { name: string; insnIdx: number }[];
}

/** libbpf's struct bpf_program while relocating: one function of one section. */
export interface Func {
	name: string;
	secName: string;
	secIdx: number;
	/** First instruction's index inside the section. */
	secInsnOff: number;
	secInsnCnt: number;
	/** A private copy of the section's bytes for this function; CO-RE patches it. */
	insns: Buffer;
	global: boolean;
	/** Relocations of this function, insnIdx relative to its first instruction. */
	relos: FuncReloc[];
}

export type FuncReloc =
	| { type: 'ld64'; insnIdx: number; mapIndex: number; sym: string }
	| { type: 'data'; insnIdx: number; mapIndex: number; symOff: number; sym: string }
	| { type: 'call'; insnIdx: number; symOff: number; sym: string }
	| { type: 'subprog_addr'; insnIdx: number; symOff: number; sym: string };

/** Whether a section holds code: libbpf bpf_object__elf_collect() (PROGBITS, SHF_EXECINSTR, non-empty). */
export function isCodeSection(s: ElfSection): boolean {
	return s.type === SHT_PROGBITS && (s.flags & SHF_EXECINSTR) !== 0n && s.size > 0;
}

/** libbpf bpf_object__add_programs() for one executable section. */
export function collectFuncs(sec: ElfSection, symbols: ElfSymbol[], textIdx: number): Func[] {
	if (sec.size % INSN_SIZE !== 0)
		throw malformed(`sec '${sec.name}': size ${sec.size} is not a multiple of ${INSN_SIZE}`);
	const out: Func[] = [];
	for (const sym of symbols) {
		if (sym.shndx !== sec.index || sym.type !== STT_FUNC) continue;
		const off = sym.value;
		const size = sym.size;
		if (off + size > BigInt(sec.size)) {
			throw malformed(
				`sec '${sec.name}': program '${sym.name}' at offset ${off} crosses section boundary (${sec.size})`,
			);
		}
		if (off % BigInt(INSN_SIZE) !== 0n || size % BigInt(INSN_SIZE) !== 0n || size === 0n) {
			throw malformed(`sec '${sec.name}': corrupted program '${sym.name}', offset ${off}, size ${size}`);
		}
		if (sec.index !== textIdx && sym.bind === STB_LOCAL) {
			throw new BpftimeError('EOPNOTSUPP', `sec '${sec.name}': program '${sym.name}' is static and not supported`);
		}
		const start = Number(off);
		const end = start + Number(size);
		out.push({
			name: sym.name,
			secName: sec.name,
			secIdx: sec.index,
			secInsnOff: start / INSN_SIZE,
			secInsnCnt: (end - start) / INSN_SIZE,
			insns: Buffer.from(sec.data.subarray(start, end)),
			global: sym.bind !== STB_LOCAL,
			relos: [],
		});
	}
	return out;
}
