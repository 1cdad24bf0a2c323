// A text view of an opened object in the manner of `llvm-objdump -S` and
// `bpftool`: maps with their attributes, programs with their type, attach
// point, relocations, and their instructions interleaved with the source
// lines of the BTF line info.
//
// Instructions are printed by a disassembler given by the caller (the one of
// @bpftime/vm: `disassemble`), so this package needs no native code; without
// one, each instruction prints as its raw bytes.

import type { LineInfo } from './btf/ext.js';
import type { AppliedCoreRelo } from './core/apply.js';
import { INSN_SIZE, insnHex, isLdImm64 } from './insn.js';
import { attachTypeName, mapTypeName, progTypeName } from './kernel.js';
import type { ObjectMapSpec } from './maps.js';
import type { ObjectProgSpec } from './programs.js';
import type { AttachPoint } from './sections.js';

/**
 * Turns instructions into text, one line per instruction (an lddw and its
 * second slot give one line). The `disassemble` export of @bpftime/vm fits.
 */
export type Disassembler = (code: Buffer) => string[];

export interface DescribeOptions {
	disassemble?: Disassembler;
	/** Print the instructions (default true). */
	instructions?: boolean;
}

export interface DescribeInput {
	name: string;
	license: string;
	kernelVersion: number;
	btfTypes: number;
	maps: readonly ObjectMapSpec[];
	programs: readonly ObjectProgSpec[];
	core: readonly AppliedCoreRelo[];
}

function hex(n: number): string {
	return `0x${n.toString(16)}`;
}

export function formatAttachPoint(p: AttachPoint | undefined): string {
	if (!p) return 'none (attach manually)';
	switch (p.kind) {
		case 'uprobe': {
			const at = p.func ? `${p.func}${p.offset ? `+${hex(Number(p.offset))}` : ''}` : hex(Number(p.offset));
			return `${p.retprobe ? 'uretprobe' : 'uprobe'} ${p.binary ?? '<binary given to attachAll>'}:${at}`;
		}
		case 'usdt':
			return `usdt ${p.binary}:${p.provider}:${p.name}`;
		case 'tracepoint':
			return `tracepoint ${p.category}/${p.name}`;
		case 'raw_tracepoint':
			return `raw_tracepoint ${p.name}`;
		case 'kprobe':
			return `${p.retprobe ? 'kretprobe' : 'kprobe'} ${p.func}${p.offset ? `+${hex(Number(p.offset))}` : ''} (kernel only)`;
	}
}

function describeMap(m: ObjectMapSpec, i: number): string[] {
	const out = [
		`  #${i} ${m.name}: ${mapTypeName(m.type)} key ${m.keySize} value ${m.valueSize} max_entries ${m.maxEntries} flags ${hex(m.flags)}` +
			`${m.pinning === 'by-name' ? ' pinned by name' : ''} (${m.kind}, section '${m.section}'${m.kernelName !== m.name ? `, kernel name '${m.kernelName}'` : ''})`,
	];
	if (m.innerMap) {
		const n = m.innerMap;
		out.push(
			`      inner: ${mapTypeName(n.type)} key ${n.keySize} value ${n.valueSize} max_entries ${n.maxEntries} flags ${hex(n.flags)}`,
		);
	}
	m.initialSlots.forEach((s, k) => {
		if (s !== undefined) out.push(`      [${k}] = ${s}`);
	});
	for (const v of m.variables) out.push(`      ${v.name} at ${v.offset}, ${v.size} bytes`);
	return out;
}

/** The source line text for the objdump view: `; text  (file:line)`. */
function sourceComment(li: LineInfo): string {
	const file = li.fileName.split('/').pop() ?? li.fileName;
	return `; ${li.lineText.trim()}  (${file}:${li.line})`;
}

function disassembly(p: ObjectProgSpec, dis: Disassembler | undefined): string[] {
	const out: string[] = [];
	const code = p.instructions;
	const count = code.length / INSN_SIZE;
	const lines = new Map<number, LineInfo>();
	for (const li of p.lineInfo) if (!lines.has(li.insnIdx)) lines.set(li.insnIdx, li);
	const funcs = new Map(p.funcInfo.map((f) => [f.insnIdx, f.name] as const));
	const notes = new Map<number, string[]>();
	for (const r of p.relocations) notes.set(r.insnIdx, [...(notes.get(r.insnIdx) ?? []), r.target]);
	let lastLine: LineInfo | undefined;
	for (let i = 0; i < count; ) {
		const wide = isLdImm64(code, i) && i + 1 < count;
		const size = wide ? 2 : 1;
		const fn = funcs.get(i);
		if (fn !== undefined) out.push(`    <${fn === '' ? '?' : fn}>:`);
		const li = lines.get(i);
		if (li && (li.line !== lastLine?.line || li.fileName !== lastLine?.fileName)) {
			out.push(`      ${sourceComment(li)}`);
			lastLine = li;
		}
		const bytes = wide ? `${insnHex(code, i)} ${insnHex(code, i + 1)}` : insnHex(code, i);
		let text = bytes;
		if (dis) {
			const d = dis(code.subarray(i * INSN_SIZE, (i + size) * INSN_SIZE));
			text = `${insnHex(code, i)}  ${d[0] ?? '<?>'}`;
		}
		const note = notes.get(i);
		out.push(`    ${String(i).padStart(5)}: ${text}${note ? `  ; ${note.join(', ')}` : ''}`);
		i += size;
	}
	return out;
}

/** The whole view of an object. */
export function describeObject(input: DescribeInput, options: DescribeOptions = {}): string {
	const out: string[] = [];
	out.push(
		`${input.name}: license '${input.license}'${input.kernelVersion ? `, kernel version ${hex(input.kernelVersion)}` : ''}, ` +
			`${input.btfTypes ? `BTF with ${input.btfTypes - 1} types` : 'no BTF'}, ${input.maps.length} maps, ${input.programs.length} programs`,
	);
	out.push('', 'Maps:');
	if (input.maps.length === 0) out.push('  (none)');
	for (const [i, m] of input.maps.entries()) out.push(...describeMap(m, i));
	out.push('', 'Programs:');
	if (input.programs.length === 0) out.push('  (none)');
	for (const p of input.programs) {
		out.push(
			`  ${p.name}: SEC("${p.section}") ${progTypeName(p.type)}${p.expectedAttachType ? ` ${attachTypeName(p.expectedAttachType)}` : ''}${p.sleepable ? ' sleepable' : ''}, ${p.insnCount} insns`,
		);
		out.push(`    attach: ${p.attachError ? `invalid: ${p.attachError}` : formatAttachPoint(p.attachPoint)}`);
		if (p.subprograms.length)
			out.push(`    sub-programs: ${p.subprograms.map((s) => `${s.name} at #${s.insnIdx}`).join(', ')}`);
		const core = input.core.filter((c) => c.func === p.name || p.subprograms.some((s) => s.name === c.func));
		if (p.relocations.length || core.length) {
			out.push('    relocations:');
			for (const r of p.relocations) if (r.kind !== 'core') out.push(`      #${r.insnIdx} ${r.kind}: ${r.target}`);
			for (const c of core) {
				const result = c.result.poison
					? 'poisoned (no match in the target)'
					: `${c.result.origVal} -> ${c.result.newVal}`;
				out.push(`      ${c.func} #${c.insnIdx} CO-RE ${c.kind}: ${c.local} => ${c.target ?? '(none)'}: ${result}`);
			}
		}
		if (options.instructions !== false) {
			out.push('    instructions:');
			out.push(...disassembly(p, options.disassemble));
		}
	}
	return `${out.join('\n')}\n`;
}
