// The TypeScript disassembler decodes on its own (it runs without the native
// addon); these tests hold it to the vm's opcode table, which the binding
// exports: an instruction the table accepts prints as an instruction, one it
// refuses prints as `.insn`.
import { describe, expect, it } from 'vitest';
import { disassemble, encode, type Insn } from '../src/asm/index.js';
import { opcodeTableAccepts } from '../src/index.js';

const BPF_LD = 0x00;
const LDDW = 0x18;
const ABS = 0x20;
const IND = 0x40;

// Field values that reach every rule of the table: registers in and out of
// range, the pseudo kinds of lddw and call, the movsx and sdiv offsets, the
// byte-swap widths and the atomic operations (with and without BPF_FETCH).
const DST = [0, 1, 10, 11];
const SRC = [0, 1, 2, 3, 6, 7, 10, 11];
const OFF = [0, 1, 8, 16, 32, -1];
const IMM = [0, 1, 16, 32, 64, -1, 0x40, 0x41, 0x50, 0x51, 0xa0, 0xa1, 0xe1, 0xf1];

function* slots(): Generator<Insn> {
	for (let code = 0; code < 256; code++)
		for (const dst of DST)
			for (const src of SRC) for (const off of OFF) for (const imm of IMM) yield { code, dst, src, off, imm };
}

// The legacy packet loads: llvm-objdump prints them, so the disassembler
// does; the vm's table leaves them out on purpose (opcodes.hpp).
const isLegacyPacketLoad = (code: number) =>
	(code & 0x07) === BPF_LD && ((code & 0xe0) === ABS || (code & 0xe0) === IND);

describe('the disassembler and the vm opcode table', () => {
	it('agree on every opcode byte and field rule', () => {
		const all = [...slots()];
		const accepted = opcodeTableAccepts(encode(all));
		const disagreements: string[] = [];
		all.forEach((insn, k) => {
			if (isLegacyPacketLoad(insn.code)) return;
			// lddw is printed with its second slot; give it an empty one.
			const code = insn.code === LDDW ? encode([insn, { code: 0, dst: 0, src: 0, off: 0, imm: 0 }]) : encode([insn]);
			const line = disassemble(code)[0] as string;
			const printed = !line.startsWith('.insn');
			if (printed !== accepted[k]) disagreements.push(`${JSON.stringify(insn)}: table ${accepted[k]}, text '${line}'`);
		});
		expect(disagreements.slice(0, 10)).toEqual([]);
		// Both verdicts occur, so the agreement says something.
		expect(accepted.filter((a) => a).length).toBeGreaterThan(10000);
		expect(accepted.filter((a) => !a).length).toBeGreaterThan(10000);
	});

	it('leaves the legacy packet loads out of the table while the disassembler prints them', () => {
		const abs: Insn = { code: BPF_LD | ABS | 0x00, dst: 0, src: 0, off: 0, imm: 5 };
		expect(opcodeTableAccepts(encode([abs]))).toEqual([false]);
		expect(disassemble(encode([abs]))).toEqual(['r0 = *(u32 *)skb[5]']);
	});
});
