// bpftime prog list|show|dump: the programs of the registry, as `bpftool
// prog` shows the kernel's: their attributes, what uses them, and their
// instructions disassembled.
import type { LinkDescriptor, ProgDescriptor, Registry } from '@bpftime/handlers';
import type { Segment } from '@bpftime/shm';
import { type Command, type Context, takeOptions, UsageError } from '../command.js';
import { jsonText } from '../format/json.js';
import { paint } from '../format/style.js';
import { readSource, type SourceLine } from '../line-info.js';
import { openRegistry } from '../registry.js';
import { describeLinkTarget, findHandler, shortTypeName } from '../registry-view.js';
import { linkRow, progRow, progTable } from './list.js';

const INSN_SIZE = 8;
const BPF_LD_IMM64 = 0x18;

function operands(sub: string, args: string[], flags: Record<string, 'flag'>) {
	const { options, rest } = takeOptions(args, flags, 'prog', false);
	if (rest.length === 0) throw new UsageError(`prog ${sub}: missing the program name or id`, 'prog');
	if (rest.length > 1) throw new UsageError(`prog ${sub}: unexpected argument '${rest[1]}'`, 'prog');
	return { options, which: rest[0] as string };
}

async function withRegistry<T>(ctx: Context, body: (reg: Registry, seg: Segment) => T | Promise<T>): Promise<T> {
	const { seg, reg } = await openRegistry(ctx.segment);
	try {
		return await body(reg, seg);
	} finally {
		reg.close();
		seg.close();
	}
}

async function list(args: string[], ctx: Context): Promise<number> {
	const { options, rest } = takeOptions(args, { '--json': 'flag' }, 'prog', false);
	if (rest.length) throw new UsageError(`prog list: unexpected argument '${rest[0]}'`, 'prog');
	return withRegistry(ctx, (reg) => {
		const rows = reg
			.list()
			.filter((d): d is ProgDescriptor => d.kind === 'prog')
			.map(progRow);
		ctx.io.out(options['--json'] === true ? jsonText(rows) : rows.length ? progTable(ctx, rows) : 'no programs\n');
		return 0;
	});
}

async function show(args: string[], ctx: Context): Promise<number> {
	const { options, which } = operands('show', args, { '--json': 'flag' });
	return withRegistry(ctx, (reg) => {
		const p = findHandler(reg, 'prog', which);
		const all = reg.list();
		const maps = p.mapIds.map((id) => {
			const m = all.find((d) => d.id === id);
			return { id, name: m?.kind === 'map' ? m.name : undefined };
		});
		const links = all
			.filter((d): d is LinkDescriptor => d.kind === 'link' && d.progId === p.id)
			.map((l) => linkRow(reg, l));
		const info = {
			...progRow(p),
			expectedAttachType: p.expectedAttachType,
			progFlags: p.progFlags,
			maps,
			links,
		};
		if (options['--json'] === true) {
			ctx.io.out(jsonText(info));
			return 0;
		}
		const io = ctx.io;
		io.out(
			`${paint(io, 'bold', `${p.id}: ${shortTypeName(p.typeName)} name '${p.name}'`)}  license '${p.license}'  ${info.insns} insns\n`,
		);
		io.out(`  maps: ${maps.map((m) => `${m.id} '${m.name ?? '?'}'`).join(', ') || 'none'}\n`);
		if (links.length === 0) io.out('  links: none (not attached)\n');
		else {
			io.out('  links:\n');
			for (const l of links) io.out(`    ${l.id}: ${describeLinkTarget(reg, reg.get(l.id) as LinkDescriptor)}\n`);
		}
		return 0;
	});
}

/** Instructions of a program, one per entry: its slot index and text (an lddw takes two slots). */
async function disassembly(p: ProgDescriptor, hex: boolean): Promise<{ pc: number; text: string; raw: string }[]> {
	const { disassemble } = await import('@bpftime/vm');
	const code = p.insns;
	const count = code.length / INSN_SIZE;
	const out: { pc: number; text: string; raw: string }[] = [];
	for (let pc = 0; pc < count; ) {
		const slots = code[pc * INSN_SIZE] === BPF_LD_IMM64 && pc + 1 < count ? 2 : 1;
		const bytes = code.subarray(pc * INSN_SIZE, (pc + slots) * INSN_SIZE);
		out.push({ pc, text: disassemble(bytes, { hex })[0] ?? '<?>', raw: bytes.toString('hex') });
		pc += slots;
	}
	return out;
}

async function dump(args: string[], ctx: Context): Promise<number> {
	const { options, which } = operands('dump', args, { '--json': 'flag', '--hex': 'flag', '--opcodes': 'flag' });
	return withRegistry(ctx, async (reg, seg) => {
		const p = findHandler(reg, 'prog', which);
		const insns = await disassembly(p, options['--hex'] === true);
		const source = readSource(seg, p.id, p.generation);
		const lineAt = new Map<number, SourceLine>();
		for (const l of source?.lines ?? []) if (!lineAt.has(l.insn)) lineAt.set(l.insn, l);
		const funcAt = new Map((source?.funcs ?? []).map((f) => [f.insn, f.name] as const));
		if (options['--json'] === true) {
			const rows = insns.map((i) => {
				const l = lineAt.get(i.pc);
				return {
					...i,
					func: funcAt.get(i.pc),
					source: l && { file: l.file, line: l.line, column: l.column, text: l.text },
				};
			});
			ctx.io.out(jsonText({ id: p.id, name: p.name, insns: rows }));
			return 0;
		}
		const io = ctx.io;
		io.out(`${paint(io, 'bold', `${p.id}: ${shortTypeName(p.typeName)} name '${p.name}'`)}\n`);
		const width = String(insns.at(-1)?.pc ?? 0).length;
		let last: SourceLine | undefined;
		for (const i of insns) {
			const func = funcAt.get(i.pc);
			if (func !== undefined) io.out(`${paint(io, 'bold', `<${func || '?'}>:`)}\n`);
			const l = lineAt.get(i.pc);
			// As llvm-objdump -S and bpftool's linum: a line once, where its instructions start.
			if (l && l.line > 0 && (l.line !== last?.line || l.file !== last?.file)) {
				const file = l.file.split('/').pop() ?? l.file;
				io.out(`${paint(io, 'dim', `; ${l.text.trim()}  (${file}:${l.line})`)}\n`);
				last = l;
			}
			const raw = options['--opcodes'] === true ? `${i.raw.match(/.{2}/g)?.join(' ')}  ` : '';
			io.out(`${String(i.pc).padStart(width + 2)}: ${raw}${i.text}\n`);
		}
		return 0;
	});
}

const subcommands = new Map([
	['list', list],
	['show', show],
	['dump', dump],
]);

export const prog: Command = {
	name: 'prog',
	overview: [
		['prog list [--json]', 'list the programs of the registry'],
		['prog show|dump <name|id>', "a program's maps and links, or its instructions"],
	],
	usage: `Usage: bpftime prog list [--json]
       bpftime prog show <name|id> [--json]
       bpftime prog dump <name|id> [--json] [--hex] [--opcodes]

list  one row per program: id, name, type, instruction count, the maps it uses
show  one program: its type, license, the maps it uses and the links that
      attach it (with their targets)
dump  its instructions disassembled, one per line with its index (an lddw
      takes two), each source line before its instructions ("; text
      (file:line)") for programs \`bpftime load <prog.bpf.o>\` loaded from
      an object built with -g; --hex writes immediates in hex, --opcodes
      adds the bytes; --json gives each instruction's pc, text, raw bytes,
      and source line

Example:
  bpftime prog show count_malloc
  bpftime prog dump 3 --opcodes
`,
	async run(args, ctx) {
		const [sub, ...rest] = args;
		if (sub === undefined) throw new UsageError('prog: missing the subcommand (list, show, dump)', 'prog');
		const run = subcommands.get(sub);
		if (!run) throw new UsageError(`prog: unknown subcommand '${sub}'`, 'prog');
		return run(rest, ctx);
	},
};
