import { disassemble } from '@bpftime/vm';
import { beforeAll, describe, expect, it } from 'vitest';
import { BpfObject, ProgType } from '../src/index.js';
import { hasClang19, useFixtures } from './helpers.js';

const fx = useFixtures();
let obj: BpfObject;

beforeAll(async () => {
	obj = BpfObject.open(await fx.bpf('subprogs'));
});

const BPF_CALL = 0x85;
const BPF_LD_IMM64 = 0x18;

/** Every bpf-to-bpf call and function pointer of a program: [insn, target insn]. */
function calls(code: Buffer): [number, number, 'call' | 'func'][] {
	const out: [number, number, 'call' | 'func'][] = [];
	for (let i = 0; i < code.length / 8; i++) {
		const op = code[i * 8];
		const src = (code[i * 8 + 1] as number) >> 4;
		const imm = code.readInt32LE(i * 8 + 4);
		if (op === BPF_CALL && src === 1) out.push([i, i + imm + 1, 'call']);
		if (op === BPF_LD_IMM64 && src === 4) out.push([i, i + imm + 1, 'func']);
	}
	return out;
}

describe('programs and sub-programs', () => {
	it('finds every entry program, named by its function, typed by its SEC', () => {
		expect(obj.programs.map((p) => [p.name, p.section, p.type])).toEqual([
			['first', 'uprobe', ProgType.Kprobe],
			['second', 'uprobe', ProgType.Kprobe],
			['third', 'tracepoint/syscalls/sys_enter_openat', ProgType.Tracepoint],
		]);
		expect(obj.programs.every((p) => p.license === 'GPL')).toBe(true);
	});

	it('appends the sub-programs each program reaches, in the order of their first call', () => {
		const subs = (name: string) => obj.program(name).subprograms.map((s) => s.name);
		expect(subs('first')).toEqual(['middle', 'leaf']);
		expect(subs('second')).toEqual(['looped', 'leaf', 'global_add']);
		expect(subs('third')).toEqual(['loop_cb', 'middle', 'leaf']);
	});

	it('points every call and function pointer at the start of an appended sub-program', () => {
		for (const p of obj.programs) {
			const starts = new Map(p.subprograms.map((s) => [s.insnIdx, s.name]));
			const found = calls(p.instructions);
			expect(found.length).toBeGreaterThan(0);
			for (const [, target] of found) expect(starts.has(target)).toBe(true);
			// func_info after relocation names each piece at its new start.
			for (const s of p.subprograms)
				expect(p.funcInfo).toContainEqual(expect.objectContaining({ insnIdx: s.insnIdx, name: s.name }));
			expect(p.funcInfo[0]).toMatchObject({ insnIdx: 0, name: p.name });
			expect(p.insnCount).toBe(p.instructions.length / 8);
		}
		// bpf_loop's callback is a function pointer (lddw src_reg BPF_PSEUDO_FUNC).
		const third = obj.program('third');
		const loopCb = third.subprograms.find((s) => s.name === 'loop_cb')?.insnIdx;
		expect(
			calls(third.instructions)
				.filter((c) => c[2] === 'func')
				.map((c) => c[1]),
		).toEqual([loopCb]);
	});

	it('fixes calls inside sub-programs too (middle calls leaf twice)', () => {
		const first = obj.program('first');
		const middle = first.subprograms.find((s) => s.name === 'middle')?.insnIdx as number;
		const leaf = first.subprograms.find((s) => s.name === 'leaf')?.insnIdx as number;
		const fromMiddle = calls(first.instructions).filter(([at]) => at >= middle && at < leaf);
		expect(fromMiddle.map((c) => c[1])).toEqual([leaf, leaf]);
	});

	it('keeps line info, shifted with the sub-programs, so instructions map to source lines', () => {
		const first = obj.program('first');
		const leaf = first.subprograms.find((s) => s.name === 'leaf')?.insnIdx as number;
		const line = obj.sourceLine('first', leaf);
		expect(line?.fileName).toMatch(/subprogs\.bpf\.c$/);
		expect(line?.lineText).toMatch(/leaf|x \* 3 \+ 1/);
		expect(obj.sourceLine('first', 0)?.lineText).toMatch(/middle\(2\)/);
	});

	it('loads a bounded loop as written (the back edge stays a jump)', () => {
		const second = obj.program('second');
		const looped = second.subprograms.find((s) => s.name === 'looped')?.insnIdx as number;
		const next = second.subprograms.find((s) => s.insnIdx > looped)?.insnIdx as number;
		let backEdge = false;
		for (let i = looped; i < next; i++) {
			const op = second.instructions[i * 8] as number;
			const cls = op & 7;
			if ((cls === 5 || cls === 6) && op !== 0x85 && op !== 0x95 && second.instructions.readInt16LE(i * 8 + 2) < 0)
				backEdge = true;
		}
		expect(backEdge).toBe(true);
	});

	it('opens the same object built for -mcpu=v4 with the same programs', async (ctx) => {
		if (!hasClang19) {
			console.log('skipped: -mcpu=v4 needs clang-19, which is not installed');
			ctx.skip();
			return;
		}
		const v4 = BpfObject.open(await fx.bpf('subprogs', ['-mcpu=v4']));
		expect(v4.programs.map((p) => [p.name, p.subprograms.map((s) => s.name)])).toEqual(
			obj.programs.map((p) => [p.name, p.subprograms.map((s) => s.name)]),
		);
		for (const p of v4.programs)
			for (const [, target] of calls(p.instructions))
				expect(p.subprograms.some((s) => s.insnIdx === target)).toBe(true);
	});

	it('describes the object: maps, programs, attach points, relocations and source lines', () => {
		const text = obj.describe();
		expect(text).toMatch(/^subprogs\.bpf\.o: license 'GPL', BTF with \d+ types, 1 maps, 3 programs/);
		expect(text).toContain('#0 out: BPF_MAP_TYPE_ARRAY key 4 value 8 max_entries 4');
		expect(text).toContain('third: SEC("tracepoint/syscalls/sys_enter_openat") BPF_PROG_TYPE_TRACEPOINT');
		expect(text).toContain('attach: tracepoint syscalls/sys_enter_openat');
		expect(text).toMatch(/func: subprog 'loop_cb' at #\d+/);
		expect(text).toMatch(/; .*\(subprogs\.bpf\.c:\d+\)/);
		expect(text).toContain('<leaf>:');
		const dis = obj.describe({ disassemble: (code) => [`insn of ${code.length} bytes`] });
		expect(dis).toContain('insn of 16 bytes'); // an lddw is one line
		expect(obj.describe({ instructions: false })).not.toContain('instructions:');
	});

	it('disassembles with the VM package, each instruction with its relocation and source line', () => {
		const text = obj.describe({ disassemble });
		expect(text).toMatch(/\d+: 8510[0-9a-f]{12} {2}call pc\+\d+ {2}; subprog 'middle' at #\d+/);
		expect(text).toMatch(/r1 = map_by_idx\(0\) ll {2}; map 'out'/);
		expect(text).toMatch(/<loop_cb>:\n {6}; \*\(__u64 \*\)data \+= index; {2}\(subprogs\.bpf\.c:\d+\)/);
		expect(text.match(/ {2}exit$/gm)?.length).toBeGreaterThanOrEqual(obj.programs.length);
	});

	it('throws ENOENT naming the programs for an unknown one', () => {
		expect(() => obj.program('nope')).toThrow(
			expect.objectContaining({ code: 'ENOENT', message: expect.stringContaining('first, second, third') }),
		);
	});
});
