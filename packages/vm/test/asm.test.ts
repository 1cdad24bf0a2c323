// Assembler, disassembler and codec behaviour that does not need a toolchain.
// Expected bytes are written from the RFC 9669 encoding by hand:
// opcode, src<<4|dst, off (s16 LE), imm (s32 LE).

import { BpftimeError } from '@bpftime/common';
import { describe, expect, it } from 'vitest';
import { assemble, type DisassembleOptions, decode, disassemble, encode } from '../src/asm/index.js';

const hex = (b: Buffer) => b.toString('hex');

describe('assemble', () => {
	it.each([
		['r0 = 0', 'b700000000000000'],
		['w1 += w2', '0c21000000000000'],
		['r1 = -r1', '8701000000000000'],
		['r0 = 0x1122334455667788 ll', '18000000887766550000000044332211'],
		['r1 = -1 ll', '18010000ffffffff00000000ffffffff'],
		['r1 = *(u32 *)(r2 + 8)', '6121080000000000'],
		['w1 = *(u32 *)(r2 + 8)', '6121080000000000'],
		['*(u64 *)(r10 - 8) = r1', '7b1af8ff00000000'],
		['*(u32 *)(r10 - 8) = w1', '631af8ff00000000'],
		['*(u8 *)(r1 + 0) = 7', '7201000007000000'],
		['*(u64 *)(r1 + 0) = -1', '7a010000ffffffff'],
		['r1 = *(s16 *)(r2 + 4)', '8921040000000000'],
		['r1 = (s8)r2', 'bf21080000000000'],
		['r1 = (s32)r2', 'bf21200000000000'],
		['w1 = (s16)w2', 'bc21100000000000'],
		['r1 s/= r2', '3f21010000000000'],
		['r1 s%= 3', '9701010003000000'],
		['w1 s>>= 31', 'c40100001f000000'],
		['w1 = 0xffffffff', 'b4010000ffffffff'],
		['r1 = be16 r1', 'dc01000010000000'],
		['r1 = le64 r1', 'd401000040000000'],
		['r1 = bswap32 r1', 'd701000020000000'],
		['if r1 > r2 goto +3', '2d21030000000000'],
		['if w1 s< 5 goto -2', 'c601feff05000000'],
		['if r1 & 0x4 goto +1', '4501010004000000'],
		['if w1 == 0xffffffff goto +0', '16010000ffffffff'],
		['goto +5', '0500050000000000'],
		['gotol +70000', '0600000070110100'],
		['call 5', '8500000005000000'],
		['call pc-3', '85100000fdffffff'],
		['call btf_id(9)', '8520000009000000'],
		['callx r1', '8d01000000000000'],
		['exit', '9500000000000000'],
		['lock *(u32 *)(r1 + 0) += w2', 'c321000000000000'],
		['lock *(u32 *)(r1 + 0) += r2', 'c321000000000000'],
		['r2 = atomic_fetch_add((u64 *)(r1 + 0), r2)', 'db21000001000000'],
		['w2 = atomic_fetch_and((u32 *)(r1 - 8), w2)', 'c321f8ff51000000'],
		['w0 = cmpxchg32_32(r1 + 0, w0, w2)', 'c3210000f1000000'],
		['r0 = cmpxchg_64(r1 + 16, r0, r3)', 'db311000f1000000'],
		['r2 = xchg_64(r1 + 0, r2)', 'db210000e1000000'],
		['w2 = xchg32_32(r1 + 4, w2)', 'c3210400e1000000'],
		['lock *(u64 *)(r1+8) |= r2', 'db21080040000000'],
		['lock *(u64 *)(r1 + 8) ^= r2', 'db210800a0000000'],
		['r1 = atomic_fetch_or((u64 *)(r2 + 0), r1)', 'db12000041000000'],
		['r0 = *(u8 *)skb[5]', '3000000005000000'],
		['r0 = *(u16 *)skb[r1]', '4810000000000000'],
		['r0 = *(u32 *)skb[r1 + 4]', '4010000004000000'],
		['r1 = map_by_fd(3) ll', '18110000030000000000000000000000'],
		['r1 = map_val(map_by_fd(3)) + 8 ll', '18210000030000000000000008000000'],
		['r1 = var_addr(7) ll', '18310000070000000000000000000000'],
		['r1 = code_addr(2) ll', '18410000020000000000000000000000'],
		['r1 = map_by_idx(0) ll', '18510000000000000000000000000000'],
		['r1 = map_val(map_by_idx(1)) + 16 ll', '18610000010000000000000010000000'],
		['ld_pseudo r1, 1, 3', '18110000030000000000000000000000'],
		['.insn 0x8c, 1, 2, 0, 0', '8c21000000000000'],
		['.insn 0x18, 0, 0, 0, 5', '1800000005000000'],
	])('assembles %s', (text, bytes) => {
		expect(hex(assemble(text))).toBe(bytes);
	});

	it('ignores comments and blank lines', () => {
		expect(hex(assemble('# header\n\n  r0 = 1 ; one\n// note\nexit # done\n'))).toBe(hex(assemble('r0 = 1\nexit')));
	});

	it('resolves labels forwards and backwards, counting lddw as two slots', () => {
		const code = assemble(`
			r0 = 0
		top:
			r1 = 1 ll
			if r0 > 3 goto done
			r0 += 1
			goto top
		done: exit
		`);
		expect(disassemble(code)).toEqual(['r0 = 0', 'r1 = 1 ll', 'if r0 > 3 goto +2', 'r0 += 1', 'goto -5', 'exit']);
	});

	it('encodes a call to a label as a local call relative to the next instruction', () => {
		const code = assemble('call fn\nexit\nfn: r0 = 7\nexit');
		expect(decode(code)[0]).toEqual({ code: 0x85, dst: 0, src: 1, off: 0, imm: 1 });
		expect(disassemble(code)[0]).toBe('call pc+1');
	});

	it('encodes gotol and code_addr to labels', () => {
		const code = assemble('gotol end\nr1 = code_addr(end) ll\nend: exit');
		expect(decode(code)[0]?.imm).toBe(2);
		expect(decode(code)[1]?.imm).toBe(1);
	});

	it.each([
		['r11 = 1', "line 2: unknown register 'r11' in 'r11 = 1'"],
		[
			'r1 = 0xffffffff',
			"line 2: immediate 4294967295 does not fit s32, which a 64-bit mov sign-extends; write 'r1 = 4294967295 ll' in 'r1 = 0xffffffff'",
		],
		['goto nowhere', "line 2: unknown label 'nowhere' in 'goto nowhere'"],
		['w1 = *(u64 *)(r1 + 0)', "line 2: a 64-bit load writes r1, not 'w1' in 'w1 = *(u64 *)(r1 + 0)'"],
		['r1 += w2', "line 2: 'r1' and 'w2' must both be r or both be w registers in 'r1 += w2'"],
		['mov r0, 1', "line 2: unknown instruction 'mov' in 'mov r0, 1'"],
		[
			'r1 = *(u32 *)(r2 + 32768)',
			"line 2: offset 32768 is out of range [-32768, 32767] in 'r1 = *(u32 *)(r2 + 32768)'",
		],
		['r1 = be16 r2', "line 2: byte swaps work in place: write 'r1 = be16 r1' in 'r1 = be16 r2'"],
		[
			'r2 = xchg_64(r1 + 0, r3)',
			"line 2: xchg_64 returns the old value into its source register r3 in 'r2 = xchg_64(r1 + 0, r3)'",
		],
		[
			'r1 = cmpxchg_64(r1 + 0, r0, r2)',
			"line 2: cmpxchg_64 compares with and returns into r0 in 'r1 = cmpxchg_64(r1 + 0, r0, r2)'",
		],
		['w1 = (s32)w2', "line 2: 'w1 = (s32)' is not a sign-extending move in 'w1 = (s32)w2'"],
		['r0 = 1 2', "line 2: unexpected '2' in 'r0 = 1 2'"],
		[
			'lock *(u16 *)(r1 + 0) += r2',
			"line 2: atomic operations are 32 or 64 bits wide, not 16 in 'lock *(u16 *)(r1 + 0) += r2'",
		],
		['r0 = @', "line 2: unexpected character '@' in 'r0 = @'"],
	])('rejects %s naming the line and its text', (line, message) => {
		let error: unknown;
		try {
			assemble(`exit\n${line}`);
		} catch (e) {
			error = e;
		}
		expect(error).toBeInstanceOf(BpftimeError);
		expect((error as BpftimeError).message).toBe(message);
		expect((error as BpftimeError).code).toBe('EINVAL');
		expect((error as BpftimeError).errno).toBe(22);
	});

	it('rejects a label defined twice', () => {
		expect(() => assemble('a: exit\na: exit')).toThrow("line 2: label 'a' is already defined");
	});

	it('rejects a label too far for a 16-bit jump', () => {
		const body = Array.from({ length: 40000 }, () => 'r0 += 1').join('\n');
		expect(() => assemble(`goto far\n${body}\nfar: exit`)).toThrow(/line 1: distance to 'far' 40000 is out of range/);
		expect(() => assemble(`gotol far\n${body}\nfar: exit`)).not.toThrow();
	});
});

describe('disassemble', () => {
	// Each row: a source, its default spelling, and its spelling with the option.
	it.each<[string, string, DisassembleOptions, string[], string[]]>([
		[
			'prints decimal by default and hex on request',
			'r1 += -5\nr1 = *(u64 *)(r10 - 8)\nif r1 == 64 goto -2\nr2 = 0x1122334455667788 ll',
			{ hex: true },
			['r1 += -5', 'r1 = *(u64 *)(r10 - 8)', 'if r1 == 64 goto -2', 'r2 = 1234605616436508552 ll'],
			['r1 += -0x5', 'r1 = *(u64 *)(r10 - 0x8)', 'if r1 == 0x40 goto -0x2', 'r2 = 0x1122334455667788 ll'],
		],
		[
			'spells local calls and pseudo lddw as llvm-objdump does only on request',
			'call pc+2\nr1 = map_val(map_by_fd(3)) + 8 ll\nlock *(u32 *)(r1 + 0) += w2',
			{ llvmObjdump: true },
			['call pc+2', 'r1 = map_val(map_by_fd(3)) + 8 ll', 'lock *(u32 *)(r1 + 0) += w2'],
			['call 2', 'ld_pseudo r1, 2, 3', 'lock *(u32 *)(r1 + 0) += r2'],
		],
	])('%s', (_name, source, options, plain, withOption) => {
		const code = assemble(source);
		expect(disassemble(code)).toEqual(plain);
		expect(disassemble(code, options)).toEqual(withOption);
	});

	it.each([
		['8c21000000000000', '.insn 0x8c, 1, 2, 0, 0'], // NEG with a source register
		['b401080005000000', '.insn 0xb4, 1, 0, 8, 5'], // movsx is register-only
		['bc21200000000000', '.insn 0xbc, 1, 2, 32, 0'], // 32-bit movsx from s32
		['dfa1000010000000', '.insn 0xdf, 1, 10, 0, 16'], // ALU64 END with the reserved bit
		['0500000001000000', '.insn 0x05, 0, 0, 0, 1'], // goto with imm set
		['b70b000001000000', '.insn 0xb7, 11, 0, 0, 1'], // r11
		['3721020001000000', '.insn 0x37, 1, 2, 2, 1'], // div with off 2, src set in K form
		['c321000002000000', '.insn 0xc3, 1, 2, 0, 2'], // unknown atomic op
		['7121000001000000', '.insn 0x71, 1, 2, 0, 1'], // ldx with imm set
		['e700000000000000', '.insn 0xe7, 0, 0, 0, 0'], // no ALU op 0xe
		['9d00000000000000', '.insn 0x9d, 0, 0, 0, 0'], // exit with the X bit
	])('prints the undefined encoding %s as a raw .insn that reassembles', (bytes, text) => {
		const code = Buffer.from(bytes, 'hex');
		expect(disassemble(code)).toEqual([text]);
		expect(disassemble(code, { llvmObjdump: true })).toEqual(['<unknown>']);
		expect(hex(assemble(text))).toBe(bytes);
	});

	it('prints a truncated or malformed lddw slot by slot', () => {
		expect(disassemble(Buffer.from('1801000005000000', 'hex'))).toEqual(['.insn 0x18, 1, 0, 0, 5']);
		const badSecond = Buffer.from('18010000050000009500000000000000', 'hex');
		expect(disassemble(badSecond)).toEqual(['.insn 0x18, 1, 0, 0, 5', 'exit']);
	});

	it('rejects code whose length is not a multiple of 8', () => {
		expect(() => disassemble(Buffer.alloc(12))).toThrow('Expected a multiple of 8 bytes of code but received 12');
	});
});

describe('encode and decode', () => {
	it('round-trips signed fields', () => {
		const insns = [
			{ code: 0x18, dst: 1, src: 2, off: -1, imm: -0x80000000 },
			{ code: 0, dst: 0, src: 0, off: 0x7fff, imm: 0x7fffffff },
		];
		expect(decode(encode(insns))).toEqual(insns);
	});

	it('takes unsigned spellings of imm and off as the same bits', () => {
		expect(decode(encode([{ code: 0xb7, dst: 0, src: 0, off: 0xffff, imm: 0xffffffff }]))).toEqual([
			{ code: 0xb7, dst: 0, src: 0, off: -1, imm: -1 },
		]);
	});

	it.each([
		[{ code: 256, dst: 0, src: 0, off: 0, imm: 0 }, 'Expected u8 for insns[0].code but received 256 (number)'],
		[{ code: 0, dst: 16, src: 0, off: 0, imm: 0 }, 'Expected u4 for insns[0].dst but received 16 (number)'],
		[{ code: 0, dst: 0, src: 0, off: 1.5, imm: 0 }, 'Expected s16 for insns[0].off but received 1.5 (number)'],
		[
			{ code: 0, dst: 0, src: 0, off: 0, imm: 2 ** 32 },
			'Expected s32 for insns[0].imm but received 4294967296 (number)',
		],
	])('rejects out-of-range fields', (insn, message) => {
		expect(() => encode([insn])).toThrow(message);
	});
});
