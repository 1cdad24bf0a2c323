// ELF64 little-endian reader: header, section headers, symbols, relocations,
// program headers and notes. It serves both the eBPF objects this package
// loads (ET_REL, EM_BPF) and the executables and libraries that uprobes and
// USDT probes point into (ET_EXEC, ET_DYN); the caller checks e_type and
// e_machine. Anything else (32-bit, big-endian, offsets past the end) is
// refused here with EINVAL.

import { readFileSync } from 'node:fs';
import { BpftimeError } from '@bpftime/common';
import { ByteView, hex, malformed } from '../bytes.js';
import {
	EHDR_SIZE,
	ELFCLASS64,
	ELFDATA2LSB,
	EV_CURRENT,
	PHDR_SIZE,
	REL_SIZE,
	RELA_SIZE,
	SHDR_SIZE,
	SHN_LORESERVE,
	SHN_UNDEF,
	SHN_XINDEX,
	SHT_DYNSYM,
	SHT_NOBITS,
	SHT_NOTE,
	SHT_NULL,
	SHT_REL,
	SHT_RELA,
	SHT_SYMTAB,
	SHT_SYMTAB_SHNDX,
	SYM_SIZE,
} from './constants.js';

export interface ElfHeader {
	type: number;
	machine: number;
	/** e_entry */
	entry: bigint;
	flags: number;
}

export interface ElfSection {
	index: number;
	name: string;
	/** sh_type */
	type: number;
	/** sh_flags */
	flags: bigint;
	/** sh_addr */
	addr: bigint;
	/** sh_offset */
	offset: number;
	/** sh_size (for SHT_NOBITS the size in memory; `data` is then empty) */
	size: number;
	link: number;
	info: number;
	addralign: bigint;
	entsize: number;
	/** The file bytes of the section; empty for SHT_NOBITS and SHT_NULL. */
	data: Buffer;
}

export interface ElfSymbol {
	/** Index in its symbol table. */
	index: number;
	name: string;
	/** st_value */
	value: bigint;
	/** st_size */
	size: bigint;
	/** ELF64_ST_TYPE(st_info) */
	type: number;
	/** ELF64_ST_BIND(st_info) */
	bind: number;
	/** ELF64_ST_VISIBILITY(st_other) */
	visibility: number;
	/** st_shndx, or the SHT_SYMTAB_SHNDX entry when st_shndx is SHN_XINDEX */
	shndx: number;
}

export interface ElfRelocation {
	/** r_offset: byte offset in the target section */
	offset: bigint;
	/** ELF64_R_SYM(r_info) */
	sym: number;
	/** ELF64_R_TYPE(r_info) */
	type: number;
	/** r_addend (0 for SHT_REL) */
	addend: bigint;
}

export interface ElfSegment {
	type: number;
	flags: number;
	offset: bigint;
	vaddr: bigint;
	filesz: bigint;
	memsz: bigint;
}

export interface ElfNote {
	name: string;
	type: number;
	desc: Buffer;
}

export class ElfFile {
	readonly view: ByteView;
	readonly header: ElfHeader;
	readonly sections: readonly ElfSection[];
	readonly segments: readonly ElfSegment[];
	#symtabs = new Map<number, ElfSymbol[]>();

	private constructor(view: ByteView, header: ElfHeader, sections: ElfSection[], segments: ElfSegment[]) {
		this.view = view;
		this.header = header;
		this.sections = sections;
		this.segments = segments;
	}

	/**
	 * Reads and parses the ELF file at `path` (an executable or library a
	 * probe points into). A file that cannot be read throws its errno code
	 * (EIO when it has none), prefixed by `what`.
	 */
	static read(path: string, what: string): ElfFile {
		let buf: Buffer;
		try {
			buf = readFileSync(path);
		} catch (e) {
			throw new BpftimeError(
				(e as NodeJS.ErrnoException).code ?? 'EIO',
				`${what}: cannot read '${path}': ${(e as Error).message}`,
			);
		}
		return ElfFile.parse(buf, `elf '${path}'`);
	}

	/**
	 * Parses the headers of an ELF64 little-endian file and checks that every
	 * section and segment lies inside it. `what` prefixes the errors.
	 */
	static parse(buf: Buffer, what = 'elf'): ElfFile {
		const v = new ByteView(buf, what);
		if (buf.length < 4 || buf.readUInt32BE(0) !== 0x7f454c46) {
			throw malformed(`${what}: not an ELF file (magic ${buf.length >= 4 ? hex(buf.readUInt32BE(0)) : 'truncated'})`);
		}
		if (buf.length < EHDR_SIZE) throw malformed(`${what}: ELF header truncated (${buf.length} of ${EHDR_SIZE} bytes)`);
		const cls = v.u8(4, 'EI_CLASS');
		if (cls !== ELFCLASS64)
			throw malformed(`${what}: ELF class ${cls} is not ELFCLASS64 (2): only 64-bit objects are supported`);
		const data = v.u8(5, 'EI_DATA');
		if (data !== ELFDATA2LSB) {
			throw malformed(
				`${what}: ELF data encoding ${data} is not ELFDATA2LSB (1): only little-endian objects are supported`,
			);
		}
		const version = v.u8(6, 'EI_VERSION');
		if (version !== EV_CURRENT) throw malformed(`${what}: ELF version ${version} is not EV_CURRENT (1)`);
		const header: ElfHeader = {
			type: v.u16(16, 'e_type'),
			machine: v.u16(18, 'e_machine'),
			entry: v.u64(24, 'e_entry'),
			flags: v.u32(48, 'e_flags'),
		};
		const phoff = v.u64n(32, 'e_phoff');
		const shoff = v.u64n(40, 'e_shoff');
		const phentsize = v.u16(54, 'e_phentsize');
		let phnum = v.u16(56, 'e_phnum');
		const shentsize = v.u16(58, 'e_shentsize');
		let shnum = v.u16(60, 'e_shnum');
		let shstrndx = v.u16(62, 'e_shstrndx');

		if (shoff !== 0 && shentsize !== SHDR_SIZE) {
			throw malformed(`${what}: e_shentsize is ${shentsize}, expected ${SHDR_SIZE}`);
		}
		// Extended numbering (elf(5)): counts that do not fit 16 bits live in
		// section header 0.
		if (shoff !== 0 && (shnum === 0 || shstrndx === SHN_XINDEX || phnum === 0xffff)) {
			v.check(shoff, SHDR_SIZE, 'section header #0');
			if (shnum === 0) shnum = v.u64n(shoff + 32, 'section header #0 sh_size');
			if (shstrndx === SHN_XINDEX) shstrndx = v.u32(shoff + 40, 'section header #0 sh_link');
			if (phnum === 0xffff) phnum = v.u32(shoff + 44, 'section header #0 sh_info');
		}
		if (shoff !== 0) v.check(shoff, shnum * SHDR_SIZE, `${shnum} section headers at e_shoff`);

		const sections: ElfSection[] = [];
		for (let i = 0; i < shnum; i++) {
			const at = shoff + i * SHDR_SIZE;
			const type = v.u32(at + 4, `section #${i} sh_type`);
			const offset = v.u64n(at + 24, `section #${i} sh_offset`);
			const size = v.u64n(at + 32, `section #${i} sh_size`);
			const hasData = type !== SHT_NOBITS && type !== SHT_NULL;
			if (hasData && (offset > buf.length || size > buf.length - offset)) {
				throw malformed(
					`${what}: section #${i}: ${size} bytes at ${hex(offset)} past the end of the file (${hex(buf.length)})`,
				);
			}
			sections.push({
				index: i,
				name: '',
				type,
				flags: v.u64(at + 8, `section #${i} sh_flags`),
				addr: v.u64(at + 16, `section #${i} sh_addr`),
				offset,
				size,
				link: v.u32(at + 40, `section #${i} sh_link`),
				info: v.u32(at + 44, `section #${i} sh_info`),
				addralign: v.u64(at + 48, `section #${i} sh_addralign`),
				entsize: v.u64n(at + 56, `section #${i} sh_entsize`),
				data: hasData ? buf.subarray(offset, offset + size) : Buffer.alloc(0),
			});
		}
		if (sections.length > 0) {
			if (shstrndx === SHN_UNDEF || shstrndx >= sections.length) {
				throw malformed(`${what}: e_shstrndx ${shstrndx} is not a section (the file has ${sections.length})`);
			}
			const names = new ByteView((sections[shstrndx] as ElfSection).data, `${what}: section name table`);
			for (const s of sections) {
				if (s.index === 0) continue;
				const nameOff = v.u32(shoff + s.index * SHDR_SIZE, `section #${s.index} sh_name`);
				s.name = names.cstr(nameOff, `name of section #${s.index}`);
			}
		}

		const segments: ElfSegment[] = [];
		if (phoff !== 0 && phnum > 0) {
			if (phentsize !== PHDR_SIZE) throw malformed(`${what}: e_phentsize is ${phentsize}, expected ${PHDR_SIZE}`);
			v.check(phoff, phnum * PHDR_SIZE, `${phnum} program headers at e_phoff`);
			for (let i = 0; i < phnum; i++) {
				const at = phoff + i * PHDR_SIZE;
				segments.push({
					type: v.u32(at, `program header #${i} p_type`),
					flags: v.u32(at + 4, `program header #${i} p_flags`),
					offset: v.u64(at + 8, `program header #${i} p_offset`),
					vaddr: v.u64(at + 16, `program header #${i} p_vaddr`),
					filesz: v.u64(at + 32, `program header #${i} p_filesz`),
					memsz: v.u64(at + 40, `program header #${i} p_memsz`),
				});
			}
		}
		return new ElfFile(v, header, sections, segments);
	}

	get what(): string {
		return this.view.what;
	}

	section(index: number, purpose: string): ElfSection {
		const s = this.sections[index];
		if (index === SHN_UNDEF || s === undefined) {
			throw malformed(`${this.what}: ${purpose}: bad section index ${index} (the file has ${this.sections.length})`);
		}
		return s;
	}

	sectionByName(name: string): ElfSection | undefined {
		return this.sections.find((s) => s.name === name);
	}

	/** The first SHT_SYMTAB section, or undefined when the file is stripped. */
	get symtabSection(): ElfSection | undefined {
		return this.sections.find((s) => s.type === SHT_SYMTAB);
	}

	/**
	 * The symbols of a SHT_SYMTAB or SHT_DYNSYM section, names resolved through
	 * its sh_link string table. Parsed once per section.
	 */
	symbols(section: ElfSection): ElfSymbol[] {
		const cached = this.#symtabs.get(section.index);
		if (cached) return cached;
		const label = `symbol table '${section.name}'`;
		if (section.type !== SHT_SYMTAB && section.type !== SHT_DYNSYM) {
			throw malformed(`${this.what}: section #${section.index} '${section.name}' is not a symbol table`);
		}
		if (section.entsize !== SYM_SIZE)
			throw malformed(`${this.what}: ${label}: sh_entsize ${section.entsize}, expected ${SYM_SIZE}`);
		if (section.size % SYM_SIZE !== 0) {
			throw malformed(`${this.what}: ${label}: size ${section.size} is not a multiple of ${SYM_SIZE}`);
		}
		const strtab = this.section(section.link, `${label}: string table (sh_link)`);
		const names = new ByteView(strtab.data, `${this.what}: string table '${strtab.name}'`);
		const xindex = this.sections.find((s) => s.type === SHT_SYMTAB_SHNDX && s.link === section.index);
		const v = new ByteView(section.data, `${this.what}: ${label}`);
		const out: ElfSymbol[] = [];
		const count = section.size / SYM_SIZE;
		for (let i = 0; i < count; i++) {
			const at = i * SYM_SIZE;
			const info = v.u8(at + 4, `symbol #${i} st_info`);
			let shndx = v.u16(at + 6, `symbol #${i} st_shndx`);
			if (shndx === SHN_XINDEX && xindex) {
				shndx = new ByteView(xindex.data, `${this.what}: extended section indices`).u32(i * 4, `symbol #${i}`);
			}
			out.push({
				index: i,
				name: names.cstr(v.u32(at, `symbol #${i} st_name`), `name of symbol #${i}`),
				value: v.u64(at + 8, `symbol #${i} st_value`),
				size: v.u64(at + 16, `symbol #${i} st_size`),
				type: info & 0xf,
				bind: info >> 4,
				visibility: v.u8(at + 5, `symbol #${i} st_other`) & 0x3,
				shndx,
			});
		}
		this.#symtabs.set(section.index, out);
		return out;
	}

	/** The entries of a SHT_REL or SHT_RELA section. */
	relocations(section: ElfSection): ElfRelocation[] {
		const rela = section.type === SHT_RELA;
		if (section.type !== SHT_REL && !rela) {
			throw malformed(`${this.what}: section #${section.index} '${section.name}' is not a relocation section`);
		}
		const size = rela ? RELA_SIZE : REL_SIZE;
		const label = `relocation section '${section.name}'`;
		if (section.size % size !== 0)
			throw malformed(`${this.what}: ${label}: size ${section.size} is not a multiple of ${size}`);
		const v = new ByteView(section.data, `${this.what}: ${label}`);
		const out: ElfRelocation[] = [];
		for (let at = 0; at < section.size; at += size) {
			const info = v.u64(at + 8, `relo #${at / size} r_info`);
			out.push({
				offset: v.u64(at, `relo #${at / size} r_offset`),
				sym: Number(info >> 32n),
				type: Number(info & 0xffffffffn),
				addend: rela ? v.u64(at + 16, `relo #${at / size} r_addend`) : 0n,
			});
		}
		return out;
	}

	/** The notes of a SHT_NOTE section (elf(5): namesz, descsz, type, name, desc; 4-byte aligned). */
	notes(section: ElfSection): ElfNote[] {
		if (section.type !== SHT_NOTE) throw malformed(`${this.what}: section '${section.name}' is not SHT_NOTE`);
		const v = new ByteView(section.data, `${this.what}: notes '${section.name}'`);
		const out: ElfNote[] = [];
		let at = 0;
		while (at + 12 <= section.size) {
			const namesz = v.u32(at, 'n_namesz');
			const descsz = v.u32(at + 4, 'n_descsz');
			const type = v.u32(at + 8, 'n_type');
			const nameAt = at + 12;
			const descAt = nameAt + align4(namesz);
			v.check(nameAt, namesz, `note #${out.length} name`);
			v.check(descAt, descsz, `note #${out.length} desc`);
			const raw = section.data.subarray(nameAt, nameAt + namesz);
			const nul = raw.indexOf(0);
			out.push({
				name: raw.toString('latin1', 0, nul < 0 ? raw.length : nul),
				type,
				desc: section.data.subarray(descAt, descAt + descsz),
			});
			at = descAt + align4(descsz);
		}
		return out;
	}

	/** Whether a symbol's st_shndx names an ordinary section (not UNDEF, ABS, COMMON …). */
	static isRegularSection(shndx: number): boolean {
		return shndx !== SHN_UNDEF && shndx < SHN_LORESERVE;
	}
}

function align4(n: number): number {
	return n + ((4 - (n % 4)) % 4);
}
