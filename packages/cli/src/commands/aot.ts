// bpftime aot <prog.bpf.o> [-o out] [--program name]: compiles programs of
// an object ahead of time with LLVM, to x86-64 ELF relocatable objects that
// a vm loads (Vm.loadAot) where no JIT may run; see @bpftime/vm's README.
import { mkdirSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { BpftimeError } from '@bpftime/common';
import { type Command, takeOptions, UsageError } from '../command.js';

const BPF_JMP_CALL = 0x85;
const BPF_LD_IMM_DW = 0x18;

/** The helper ids a program's `call` instructions name (src_reg 0). */
function helperIds(insns: Buffer): number[] {
	const ids = new Set<number>();
	for (let off = 0; off + 8 <= insns.length; off += 8) {
		const code = insns[off] as number;
		if (code === BPF_LD_IMM_DW) {
			off += 8;
			continue;
		}
		if (code === BPF_JMP_CALL && (insns[off + 1] as number) >> 4 === 0) ids.add(insns.readInt32LE(off + 4));
	}
	return [...ids].filter((id) => id >= 0);
}

export const aot: Command = {
	name: 'aot',
	overview: [['aot <prog.bpf.o> [-o out]', 'compile programs ahead of time to native x86-64 objects (LLVM)']],
	usage: `Usage: bpftime aot <prog.bpf.o> [-o <out>] [--program <name>]

Compiles the programs of a BPF object file with LLVM (the vm's llvm backend)
to x86-64 ELF relocatable objects. An object keeps its program's
instructions; its helper calls and map references are resolved when a vm
loads it (Vm.loadAot), in whatever process, with no LLVM there. The program
is checked structurally here; the verifier proves it again, with the real
maps and helpers, when the object is loaded.

Options:
  -o <out>            the object to write (one program), or the folder that
                      receives <program>.o for each (several); default
                      <prog>.aot.o or <prog>.aot/
  --program <name>    only this program

Example:
  bpftime aot examples/malloc/malloc.bpf.o -o malloc.o
`,
	async run(args, { io }) {
		const { options, rest } = takeOptions(args, { '-o': 'value', '--program': 'value' }, 'aot', false);
		const [input, extra] = rest;
		if (input === undefined) throw new UsageError('aot: missing <prog.bpf.o>', 'aot');
		if (extra !== undefined) throw new UsageError(`aot: unexpected argument '${extra}'`, 'aot');
		const { BpfObject } = await import('@bpftime/loader');
		const { backendUnavailable, Vm } = await import('@bpftime/vm');
		const why = backendUnavailable('llvm');
		if (why !== undefined) throw new BpftimeError('ENOTSUP', `aot: ${why}`);
		const obj = BpfObject.open(input);
		try {
			const wanted = options['--program'];
			const programs = obj.programs.filter((p) => wanted === undefined || p.name === wanted);
			if (programs.length === 0) {
				const names = obj.programs.map((p) => `'${p.name}'`).join(', ') || 'none';
				throw new BpftimeError(
					'ENOENT',
					wanted === undefined
						? `aot: ${input}: no programs`
						: `aot: program '${wanted}': not in ${input} (programs: ${names})`,
				);
			}
			const stem = basename(input).replace(/(\.bpf)?\.o$/, '');
			const out =
				typeof options['-o'] === 'string' ? options['-o'] : programs.length === 1 ? `${stem}.aot.o` : `${stem}.aot`;
			if (programs.length > 1) mkdirSync(out, { recursive: true });
			for (const p of programs) {
				// Structural checks only: the maps are placeholders until
				// a registry resolves them at load. Every helper the
				// program calls is declared (never called here).
				using vm = new Vm({ verifier: 'off' });
				for (const id of helperIds(p.instructions)) vm.registerHelper(id, `helper_${id}`, () => 0n);
				const code = vm.compileAot(p.instructions);
				const file = programs.length === 1 ? out : join(out, `${p.name}.o`);
				writeFileSync(file, code);
				io.out(`${p.name}: ${p.insnCount} instructions -> ${file} (${code.length} bytes)\n`);
			}
		} finally {
			obj.close();
		}
		return 0;
	},
};
