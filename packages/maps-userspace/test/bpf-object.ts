// A minimal reader of clang's eBPF object files for the tests (the real
// loader is @bpftime/loader): compiles a fixture, takes a program's section
// and links its lddw relocations to registry map ids.
import { readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import * as support from '@bpftime/test-support';

/** The clang that builds eBPF here, or undefined (tests skip, saying so). */
export async function findClang(): Promise<string | undefined> {
	return support.findClang(['clang', 'clang-19', 'clang-14']);
}

/** Compiles source (a .bpf.c file) with -O2 -g -target bpf; returns the object path. */
export function compileBpf(clang: string, source: string): Promise<string> {
	const out = join(tmpdir(), `${basename(source, '.c')}-${process.pid}-${Date.now()}.o`);
	return support.compileBpf(clang, source, out);
}

interface Section {
	name: string;
	type: number;
	offset: number;
	size: number;
	link: number;
	info: number;
	data: Buffer;
}

export interface Relocation {
	/** Instruction index in the program's section. */
	insn: number;
	symbol: string;
	/** The section the symbol lies in (".maps", ".rodata", ...). */
	symbolSection: string;
	symbolValue: number;
}

export interface BpfProgram {
	section: string;
	insns: Buffer;
	relocations: Relocation[];
}

export interface BpfObject {
	programs: Map<string, BpfProgram>;
	sections: Map<string, Buffer>;
}

export function readBpfObject(path: string): BpfObject {
	const f = readFileSync(path);
	if (f.readUInt32BE(0) !== 0x7f454c46 || f[4] !== 2) throw new Error(`${path}: not an ELF64 file`);
	const shoff = Number(f.readBigUInt64LE(0x28));
	const shentsize = f.readUInt16LE(0x3a);
	const shnum = f.readUInt16LE(0x3c);
	const shstrndx = f.readUInt16LE(0x3e);
	const raw: (Omit<Section, 'name'> & { nameOff: number })[] = [];
	for (let i = 0; i < shnum; i++) {
		const o = shoff + i * shentsize;
		const offset = Number(f.readBigUInt64LE(o + 0x18));
		const size = Number(f.readBigUInt64LE(o + 0x20));
		const type = f.readUInt32LE(o + 4);
		raw.push({
			nameOff: f.readUInt32LE(o),
			type,
			offset,
			size,
			link: f.readUInt32LE(o + 0x28),
			info: f.readUInt32LE(o + 0x2c),
			data: type === 8 ? Buffer.alloc(size) : f.subarray(offset, offset + size),
		});
	}
	const strtab = raw[shstrndx]?.data;
	if (!strtab) throw new Error(`${path}: no section name table`);
	const cstr = (b: Buffer, off: number) => b.toString('latin1', off, b.indexOf(0, off));
	const sections: Section[] = raw.map((s) => ({ ...s, name: cstr(strtab, s.nameOff) }));
	const symtab = sections.find((s) => s.type === 2);
	if (!symtab) throw new Error(`${path}: no symbol table`);
	const symstr = sections[symtab.link]?.data as Buffer;
	const symbols = [];
	for (let o = 0; o < symtab.size; o += 24) {
		const shndx = symtab.data.readUInt16LE(o + 6);
		symbols.push({
			name: cstr(symstr, symtab.data.readUInt32LE(o)),
			type: (symtab.data[o + 4] as number) & 15,
			section: sections[shndx]?.name ?? '',
			value: Number(symtab.data.readBigUInt64LE(o + 8)),
		});
	}
	const programs = new Map<string, BpfProgram>();
	sections.forEach((s, i) => {
		// SHT_PROGBITS with SHF_EXECINSTR holds code.
		const flags = Number(f.readBigUInt64LE(shoff + i * shentsize + 8));
		if (s.type !== 1 || !(flags & 4) || s.size === 0) return;
		programs.set(s.name, { section: s.name, insns: Buffer.from(s.data), relocations: [] });
	});
	for (const s of sections) {
		if (s.type !== 9) continue; // SHT_REL
		const target = programs.get(sections[s.info]?.name ?? '');
		if (!target) continue;
		for (let o = 0; o < s.size; o += 16) {
			const offset = Number(s.data.readBigUInt64LE(o));
			const sym = symbols[Number(s.data.readBigUInt64LE(o + 8) >> 32n)];
			if (!sym) continue;
			target.relocations.push({
				insn: offset / 8,
				symbol: sym.type === 3 ? sym.section : sym.name,
				symbolSection: sym.section,
				symbolValue: sym.value,
			});
		}
	}
	return { programs, sections: new Map(sections.map((s) => [s.name, s.data])) };
}

/**
 * The program's instructions with every lddw relocation resolved: map symbols
 * to BPF_PSEUDO_MAP_FD of the id `resolve` gives, data sections to
 * BPF_PSEUDO_MAP_VALUE at the right offset.
 */
export function linkProgram(prog: BpfProgram, resolve: (r: Relocation) => number): Buffer {
	const out = Buffer.from(prog.insns);
	for (const r of prog.relocations) {
		const o = r.insn * 8;
		if (out[o] !== 0x18) throw new Error(`${prog.section}: relocation at insn ${r.insn} is not a lddw`);
		const id = resolve(r);
		const dst = (out[o + 1] as number) & 0x0f;
		if (r.symbolSection === '.maps' || r.symbolSection === 'maps') {
			out[o + 1] = (1 << 4) | dst; // BPF_PSEUDO_MAP_FD
			out.writeInt32LE(id, o + 4);
			out.writeInt32LE(0, o + 12);
		} else {
			const offset = r.symbolValue + out.readInt32LE(o + 4);
			out[o + 1] = (2 << 4) | dst; // BPF_PSEUDO_MAP_VALUE
			out.writeInt32LE(id, o + 4);
			out.writeInt32LE(offset, o + 12);
		}
	}
	return out;
}
