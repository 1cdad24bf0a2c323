// Uprobe targets in executables and shared libraries, resolved as libbpf's
// bpf_program__attach_uprobe_opts() resolves them: a binary name without a
// '/' is searched on PATH (or, for a `.so`, in LD_LIBRARY_PATH and the
// standard library directories), and a function name becomes the file
// offset of its symbol (elf_find_func_offset()).

import { accessSync, constants } from 'node:fs';
import { delimiter, isAbsolute, join, resolve } from 'node:path';
import { BpftimeError } from '@bpftime/common';
import { ET_DYN, ET_EXEC, SHT_DYNSYM, SHT_SYMTAB, STB_WEAK, STT_FUNC, STT_GNU_IFUNC } from '../elf/constants.js';
import { ElfFile } from '../elf/elf-file.js';

/** libbpf resolve_full_path(): the absolute path of a uprobe's binary. */
export function resolveBinaryPath(binary: string, what: string): string {
	if (binary.includes('/')) {
		const full = isAbsolute(binary) ? binary : resolve(binary);
		try {
			accessSync(full, constants.R_OK);
		} catch {
			throw new BpftimeError('ENOENT', `${what}: binary '${binary}' not found (${full})`);
		}
		return full;
	}
	const dirs = binary.includes('.so')
		? [
				...(process.env.LD_LIBRARY_PATH ?? '').split(delimiter),
				'/usr/lib64',
				'/usr/lib',
				'/lib64',
				'/lib',
				'/usr/lib/x86_64-linux-gnu',
				'/lib/x86_64-linux-gnu',
			]
		: (process.env.PATH ?? '').split(delimiter);
	const tried: string[] = [];
	for (const dir of dirs) {
		if (dir === '') continue;
		const full = join(dir, binary);
		tried.push(full);
		try {
			accessSync(full, constants.R_OK);
			return full;
		} catch {
			// keep looking
		}
	}
	throw new BpftimeError(
		'ENOENT',
		`${what}: binary '${binary}' not found; tried ${tried.join(', ') || 'no directory'}`,
	);
}

/**
 * File offset of function `func` in the ELF file at `path`, from .symtab,
 * else .dynsym. Versioned names (`malloc@GLIBC_2.2.5`) match their base
 * name. Of several symbols, one global wins over weak ones; two different
 * non-weak addresses are ambiguous, as in libbpf.
 */
export function findFuncOffset(path: string, func: string, what: string): bigint {
	const elf = ElfFile.read(path, what);
	if (elf.header.type !== ET_EXEC && elf.header.type !== ET_DYN) {
		throw new BpftimeError(
			'EINVAL',
			`${what}: '${path}' is not an executable or a shared library (e_type ${elf.header.type})`,
		);
	}
	const wantVersioned = func.includes('@');
	for (const type of [SHT_SYMTAB, SHT_DYNSYM]) {
		let found: { offset: bigint; bind: number; name: string } | undefined;
		for (const sec of elf.sections.filter((s) => s.type === type)) {
			for (const sym of elf.symbols(sec)) {
				if (sym.type !== STT_FUNC && sym.type !== STT_GNU_IFUNC) continue;
				const base = wantVersioned ? sym.name : sym.name.replace(/@.*$/, '');
				if (base !== func) continue;
				const holder = elf.sections[sym.shndx];
				if (!holder || sym.value === 0n) continue;
				const offset = sym.value - holder.addr + BigInt(holder.offset);
				if (found) {
					if (found.offset === offset) continue;
					if (found.bind !== STB_WEAK && sym.bind !== STB_WEAK) {
						throw new BpftimeError(
							'ENOENT',
							`${what}: ambiguous match for '${func}': '${found.name}' and '${sym.name}' in '${path}'`,
						);
					}
					if (sym.bind === STB_WEAK) continue;
				}
				found = { offset, bind: sym.bind, name: sym.name };
			}
		}
		if (found) return found.offset;
	}
	throw new BpftimeError('ENOENT', `${what}: failed to find symbol '${func}' in '${path}'`);
}
