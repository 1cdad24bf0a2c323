// bpftime objdump <prog.bpf.o>: what an eBPF object holds, read without
// loading it: its ELF sections, then the loader's view (maps, programs with
// their attach points, relocations, and the disassembly interleaved with the
// source lines of the BTF line info), as `llvm-objdump -h -S` and
// `bpftool prog dump xlated linum` show them.
import { type Command, takeOptions, UsageError } from '../command.js';
import { openObject } from '../open-object.js';

/** sh_type names (the ELF gABI, and LLVM's SHT_LLVM_ADDRSIG). */
const SECTION_TYPES: Record<number, string> = {
	0: 'NULL',
	1: 'PROGBITS',
	2: 'SYMTAB',
	3: 'STRTAB',
	4: 'RELA',
	5: 'HASH',
	6: 'DYNAMIC',
	7: 'NOTE',
	8: 'NOBITS',
	9: 'REL',
	11: 'DYNSYM',
	14: 'INIT_ARRAY',
	15: 'FINI_ARRAY',
	17: 'GROUP',
	18: 'SYMTAB_SHNDX',
	1879002115: 'LLVM_ADDRSIG', // 0x6fff4c03
};

/** sh_flags as readelf writes them: W (write), A (alloc), X (execute). */
function flagLetters(flags: bigint): string {
	return `${flags & 1n ? 'W' : ''}${flags & 2n ? 'A' : ''}${flags & 4n ? 'X' : ''}`;
}

export const objdump: Command = {
	name: 'objdump',
	overview: [
		[
			'objdump <prog.bpf.o>',
			'sections, maps, programs, relocations and the\ndisassembly with source lines of an object',
		],
	],
	usage: `Usage: bpftime objdump <prog.bpf.o> [--no-sections] [--no-disassembly]

Prints what an eBPF object holds, without loading it anywhere: its ELF
sections (index, name, type, size, flags), its maps with their attributes,
its programs with their type, attach point, sub-programs and relocations
(map references, global data, CO-RE), and each program's instructions after
relocation, interleaved with the source lines its BTF line info names
(compile with -g to have them).

Options:
  --no-sections      leave out the ELF section table
  --no-disassembly   leave out the instructions

Example:
  clang -target bpf -O2 -g -c prog.bpf.c -o prog.bpf.o
  bpftime objdump prog.bpf.o
`,
	async run(args, { io }) {
		const { options, rest } = takeOptions(
			args,
			{ '--no-sections': 'flag', '--no-disassembly': 'flag' },
			'objdump',
			false,
		);
		if (rest.length === 0) throw new UsageError('objdump: missing the object file', 'objdump');
		if (rest.length > 1) throw new UsageError(`objdump: one object file at a time, received ${rest.length}`, 'objdump');
		const file = rest[0] as string;
		const [{ ElfFile }, { disassemble }] = await Promise.all([import('@bpftime/loader'), import('@bpftime/vm')]);
		// Opening the object first: a file that is no eBPF object gets the loader's error, naming the file.
		const obj = await openObject(file);
		try {
			const out: string[] = [];
			if (options['--no-sections'] !== true) {
				const elf = ElfFile.read(file, `object '${file}'`);
				const width = Math.max(4, ...elf.sections.map((s) => s.name.length));
				out.push('Sections:');
				out.push(`  ${'Idx'.padStart(3)} ${'Name'.padEnd(width)} ${'Type'.padEnd(12)} ${'Size'.padStart(8)}  Flags`);
				for (const s of elf.sections) {
					if (s.index === 0) continue;
					const type = SECTION_TYPES[s.type] ?? `0x${s.type.toString(16)}`;
					out.push(
						`  ${String(s.index).padStart(3)} ${s.name.padEnd(width)} ${type.padEnd(12)} ${String(s.size).padStart(8)}  ${flagLetters(s.flags)}`,
					);
				}
				out.push('');
			}
			io.out(out.join('\n') + (out.length ? '\n' : ''));
			io.out(obj.describe({ disassemble, instructions: options['--no-disassembly'] !== true }));
			return 0;
		} finally {
			obj.close();
		}
	},
};
