// Source lines of the programs `bpftime load <prog.bpf.o>` loads, for `prog
// dump`. The registry's program handler keeps the instructions but not the
// BTF line and function info the kernel keeps with a program
// (bpf_prog_info.line_info, func_info), so the CLI keeps them beside it in
// the same segment: one named byte object per program, named by the
// program's id and generation, so a reused id never shows another
// program's lines. Objects whose program is gone are freed at the next load.
import type { Registry } from '@bpftime/handlers';
import type { Segment } from '@bpftime/shm';

const PREFIX = 'bpftime.cli.line_info.';

/** One source line: the instructions from `insn` on come from it. */
export interface SourceLine {
	insn: number;
	file: string;
	line: number;
	column: number;
	text: string;
}

export interface ProgSource {
	lines: SourceLine[];
	/** Functions (the program and its sub-programs) by first instruction. */
	funcs: { insn: number; name: string }[];
}

function objectName(id: number, generation: bigint): string {
	return `${PREFIX}${id}.${generation}`;
}

/** Keeps the source of program `id` (of `generation`) in the segment. Best effort: a full segment keeps none. */
export function saveSource(seg: Segment, id: number, generation: bigint, source: ProgSource): void {
	if (source.lines.length === 0) return;
	const bytes = Buffer.from(JSON.stringify(source), 'utf8');
	const name = objectName(id, generation);
	try {
		if (seg.lookup(name)) seg.free(name);
		seg.allocate(name, bytes.length).set(bytes);
	} catch {
		// ENOMEM: the program runs the same without its source lines; `prog dump` shows none.
	}
}

/** The source kept for program `id` of `generation`, if any. */
export function readSource(seg: Segment, id: number, generation: bigint): ProgSource | undefined {
	const buf = seg.lookup(objectName(id, generation));
	if (!buf) return undefined;
	try {
		return JSON.parse(buf.toString('utf8')) as ProgSource;
	} catch {
		return undefined;
	}
}

/** Frees the kept sources whose program is no longer in the registry. */
export function sweepSources(seg: Segment, reg: Registry): void {
	for (const o of seg.objects()) {
		if (!o.name.startsWith(PREFIX)) continue;
		const [id, generation] = o.name.slice(PREFIX.length).split('.');
		const d = reg.get(Number(id));
		if (d?.kind === 'prog' && String(d.generation) === generation) continue;
		try {
			seg.free(o.name);
		} catch {
			// Freed by a concurrent load meanwhile.
		}
	}
}

/** What `BpfObject.load()` gives for each program: its id and spec (relocated line and func info). */
interface LoadedProgramLike {
	id: number;
	spec: {
		lineInfo: readonly { insnIdx: number; fileName: string; line: number; column: number; lineText: string }[];
		funcInfo: readonly { insnIdx: number; name: string }[];
	};
}

/** Keeps the source lines of the programs a load made, and frees those of programs gone since. */
export function keepSources(seg: Segment, reg: Registry, programs: Iterable<LoadedProgramLike>): void {
	sweepSources(seg, reg);
	for (const p of programs) {
		const d = reg.get(p.id);
		if (d?.kind !== 'prog') continue;
		saveSource(seg, p.id, d.generation, {
			lines: p.spec.lineInfo.map((l) => ({
				insn: l.insnIdx,
				file: l.fileName,
				line: l.line,
				column: l.column,
				text: l.lineText,
			})),
			funcs: p.spec.funcInfo.map((f) => ({ insn: f.insnIdx, name: f.name })),
		});
	}
}
