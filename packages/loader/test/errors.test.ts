// Bad input: truncated and corrupted objects (real fixtures edited in
// place) and hand-made BTF. Each must give a BpftimeError that names what is
// wrong, never an exception from deep inside (TypeError, RangeError).
import { readFileSync } from 'node:fs';
import { beforeAll, describe, expect, it } from 'vitest';
import { BpfObject, BpftimeError, Btf } from '../src/index.js';
import { rawBtf, section } from './bytes.js';
import { hasVmlinux, useFixtures, VMLINUX } from './helpers.js';

const fx = useFixtures();
let subprogs: Buffer;
let globals: Buffer;
let core: Buffer;
let vmlinux: Btf | undefined;

beforeAll(async () => {
	subprogs = readFileSync(await fx.bpf('subprogs'));
	globals = readFileSync(await fx.bpf('globals'));
	core = readFileSync(await fx.bpf('core'));
	if (hasVmlinux) vmlinux = Btf.parse(readFileSync(VMLINUX), 'vmlinux BTF');
});

/** Runs fn, which must throw a BpftimeError; returns it. */
function bpftimeError(fn: () => unknown): BpftimeError {
	try {
		fn();
	} catch (e) {
		if (!(e instanceof BpftimeError)) throw new Error(`expected a BpftimeError, got ${(e as Error)?.stack ?? e}`);
		expect(e.code).toMatch(/^E[A-Z0-9]+$/);
		expect(e.errno).toBeGreaterThan(0);
		return e;
	}
	throw new Error('expected a BpftimeError, nothing was thrown');
}

function edit(buf: Buffer, change: (b: Buffer) => void): Buffer {
	const b = Buffer.from(buf);
	change(b);
	return b;
}

// Any BTF serves as a CO-RE target here; without vmlinux, the object's own.
const open = (b: Buffer) => BpfObject.open(b, { targetBtf: vmlinux ?? core });

describe('truncated and foreign files', () => {
	it.each([0, 3, 4, 16, 63, 64, 200, 0.5, 0.9, -1])(
		'refuses the object cut to %d bytes (fractions: of its size)',
		(n) => {
			const len = n < 0 ? subprogs.length + n : n < 1 ? Math.floor(subprogs.length * n) : n;
			const e = bpftimeError(() => open(subprogs.subarray(0, len)));
			expect(e.code).toBe('EINVAL');
			expect(e.message).toMatch(/^elf: /);
		},
	);

	it.each([
		[
			'a text file',
			() => Buffer.from('hello, this is not an object file at all........................................'),
			/not an ELF file/,
		],
		['a 32-bit object', () => edit(subprogs, (b) => (b[4] = 1)), /ELFCLASS64.*only 64-bit/],
		['a big-endian object', () => edit(subprogs, (b) => (b[5] = 2)), /ELFDATA2LSB.*only little-endian/],
		['an x86-64 object', () => edit(subprogs, (b) => b.writeUInt16LE(62, 18)), /not an eBPF object file.*e_machine 62/],
		['an executable', () => edit(subprogs, (b) => b.writeUInt16LE(2, 16)), /e_type 2 \(expected ET_REL 1\)/],
	])('refuses %s', (_what, make, why) => {
		expect(bpftimeError(() => open(make())).message).toMatch(why);
	});

	it('refuses a host program with EINVAL', async () => {
		const host = readFileSync(await fx.victim());
		expect(bpftimeError(() => open(host)).message).toMatch(/not an eBPF object file/);
	});

	it.each([
		['a character device that never ends', '/dev/zero'],
		['a directory', '/tmp'],
	])('refuses %s at once with EINVAL, naming it', (_what, path) => {
		const e = bpftimeError(() => BpfObject.open(path));
		expect(e.code).toBe('EINVAL');
		expect(e.message).toBe(`object '${path}': not a regular file`);
	});

	it("names the file in the parser's errors about its contents", async () => {
		const host = await fx.victim();
		const e = bpftimeError(() => BpfObject.open(host));
		expect(e.code).toBe('EINVAL');
		expect(e.message.startsWith(`${host}: `)).toBe(true);
		expect(e.message).toMatch(/not an eBPF object file/);
	});

	it('says ENOENT for a path that does not exist', () => {
		const e = bpftimeError(() => BpfObject.open('/no/such/object.bpf.o'));
		expect(e.code).toBe('ENOENT');
		expect(e.message).toContain("object '/no/such/object.bpf.o'");
	});
});

describe('bad section indices and offsets', () => {
	it.each([
		['e_shstrndx past the sections', (b: Buffer) => b.writeUInt16LE(999, 62), /e_shstrndx 999 is not a section/],
		[
			'e_shoff past the end',
			(b: Buffer) => b.writeBigUInt64LE(BigInt(b.length + 4096), 40),
			/section headers at e_shoff/,
		],
		['e_shentsize wrong', (b: Buffer) => b.writeUInt16LE(40, 58), /e_shentsize is 40, expected 64/],
		[
			'.text sh_offset past the end',
			(b: Buffer) => b.writeBigUInt64LE(BigInt(b.length), section(b, '.text').header + 24),
			/past the end of the file/,
		],
		[
			'.text sh_size past the end',
			(b: Buffer) => b.writeBigUInt64LE(1n << 40n, section(b, '.text').header + 32),
			/past the end of the file/,
		],
		[
			'a section name past the name table',
			(b: Buffer) => b.writeUInt32LE(0x7fffff00, section(b, '.text').header),
			/name of section #\d+/,
		],
		[
			'the symbol table linked to no string table',
			(b: Buffer) => b.writeUInt32LE(999, section(b, '.symtab').header + 40),
			/bad section index 999/,
		],
		[
			'a relocation section for section 999',
			(b: Buffer) => b.writeUInt32LE(999, section(b, '.reluprobe').header + 44),
			/bad target section index 999/,
		],
		[
			'a relocation section using another symbol table',
			(b: Buffer) => b.writeUInt32LE(1, section(b, '.reluprobe').header + 40),
			/as its symbol table/,
		],
		[
			'a symbol table of odd size',
			(b: Buffer) => b.writeBigUInt64LE(BigInt(section(b, '.symtab').size - 5), section(b, '.symtab').header + 32),
			/not a multiple of 24/,
		],
	])('refuses %s', (_what, change, why) => {
		expect(bpftimeError(() => open(edit(subprogs, change))).message).toMatch(why);
	});
});

describe('bad relocations', () => {
	/** Byte offset of relocation #i (r_offset, then r_info) in .rel<sec>. */
	const rel = (b: Buffer, sec: string, i: number) => section(b, `.rel${sec}`).offset + i * 16;

	it.each([
		[
			'past the end of its section',
			(b: Buffer) => b.writeBigUInt64LE(1n << 32n, rel(b, 'uprobe', 0)),
			/bad insn index/,
		],
		[
			'not on an instruction boundary',
			(b: Buffer) => b.writeBigUInt64LE(b.readBigUInt64LE(rel(b, 'uprobe', 0)) + 3n, rel(b, 'uprobe', 0)),
			/bad insn index/,
		],
		[
			'naming a symbol past the symbol table',
			(b: Buffer) => b.writeUInt32LE(100000, rel(b, 'uprobe', 0) + 12),
			/symbol #100000 not found/,
		],
		[
			'of unknown type 99',
			(b: Buffer) => b.writeUInt32LE(99, rel(b, 'uprobe', 0) + 8),
			/unknown relocation type 99 for (call|lddw)/,
		],
		[
			'of type R_BPF_64_ABS64 on code',
			(b: Buffer) => b.writeUInt32LE(2, rel(b, 'uprobe', 0) + 8),
			/unknown relocation type 2 \(R_BPF_64_ABS64\)/,
		],
		[
			'on an instruction that is neither call nor lddw',
			(b: Buffer) => b.writeBigUInt64LE(b.readBigUInt64LE(rel(b, 'uprobe', 0)) - 8n, rel(b, 'uprobe', 0)),
			/invalid relo against|bad insn index/,
		],
	])('refuses a relocation %s', (_what, change, why) => {
		expect(bpftimeError(() => open(edit(subprogs, change))).message).toMatch(why);
	});

	it('refuses a data relocation pointing outside its section', () => {
		// An lddw of global data holds its offset inside the section in imm: move every one 4 KiB on.
		const b = Buffer.from(globals);
		for (const name of ['uprobe', '.text']) {
			const code = section(b, name);
			const rels = section(b, `.rel${name}`);
			for (let at = rels.offset; at < rels.offset + rels.size; at += 16) {
				const insn = code.offset + Number(b.readBigUInt64LE(at));
				if (b[insn] === 0x18) b.writeInt32LE(b.readInt32LE(insn + 4) + 4096, insn + 4);
			}
		}
		expect(bpftimeError(() => open(b)).message).toMatch(/offset \d+ into '[\w.]+' is outside its \d+ bytes/);
	});
});

describe('bad BTF', () => {
	const INT = (name: string) => ({ name, kind: 1, sizeOrType: 4, extra: [32] });
	it.each([
		[
			'a typedef loop',
			[
				{ name: 'a', kind: 8, sizeOrType: 2 },
				{ name: 'b', kind: 8, sizeOrType: 1 },
			],
			/reference loop \[1\] -> \[2\] -> \[1\]/,
		],
		['a const of itself', [{ kind: 10, sizeOrType: 1 }], /reference loop \[1\] -> \[1\]/],
		[
			'a pointer loop through a typedef',
			[
				{ kind: 2, sizeOrType: 2 },
				{ name: 't', kind: 8, sizeOrType: 1 },
			],
			/reference loop/,
		],
		[
			'a struct that contains itself',
			[INT('int'), { name: 's', kind: 4, vlen: 2, sizeOrType: 8, extra: [1, 1, 0, 1, 2, 32] }],
			/type \[2\] STRUCT contains itself/,
		],
		[
			'a struct that contains an array of itself',
			[
				INT('int'),
				{ name: 's', kind: 4, vlen: 1, sizeOrType: 8, extra: [1, 3, 0] },
				{ kind: 3, sizeOrType: 0, extra: [2, 1, 2] },
			],
			/contains itself/,
		],
		[
			'a reference past the last type',
			[{ name: 't', kind: 8, sizeOrType: 99 }],
			/refers to type \[99\], past the last type/,
		],
		[
			'a member past the last type',
			[{ name: 's', kind: 4, vlen: 1, sizeOrType: 4, extra: [1, 7, 0] }],
			/member #0 refers to type \[7\]/,
		],
		[
			'a record cut short',
			[{ name: 's', kind: 4, vlen: 5, sizeOrType: 4, extra: [1, 1, 0] }],
			/type \[1\] STRUCT with vlen 5/,
		],
		['an unknown kind', [{ kind: 25, sizeOrType: 0 }], /unknown kind 25/],
		[
			'a FUNC whose type is not a FUNC_PROTO',
			[INT('int'), { name: 'f', kind: 12, sizeOrType: 1 }],
			/type \[1\] is not a FUNC_PROTO/,
		],
	])('refuses %s', (_what, types, why) => {
		expect(bpftimeError(() => Btf.parse(rawBtf(types))).message).toMatch(why);
	});

	it('accepts a struct that points to itself', () => {
		const btf = Btf.parse(
			rawBtf([
				INT('int'),
				{ name: 'node', kind: 4, vlen: 1, sizeOrType: 8, extra: [1, 3, 0] },
				{ kind: 2, sizeOrType: 2 },
			]),
		);
		expect(btf.format(3)).toBe('struct node *');
		expect(btf.resolveSize(2)).toBe(8);
	});

	it.each([
		['a bad magic', (b: Buffer) => b.writeUInt16LE(0x1234, 0), /bad magic 0x1234/],
		['big-endian BTF', (b: Buffer) => b.writeUInt16LE(0x9feb, 0), /big-endian BTF is not supported/],
		['version 2', (b: Buffer) => (b[2] = 2), /unsupported version 2/],
		['hdr_len past the end', (b: Buffer) => b.writeUInt32LE(1 << 30, 4), /header \(hdr_len\)/],
		['type_len past the end', (b: Buffer) => b.writeUInt32LE(1 << 30, 12), /type section \(type_off, type_len\)/],
		['str_off past the end', (b: Buffer) => b.writeUInt32LE(1 << 30, 16), /string section \(str_off, str_len\)/],
		['a misaligned type_off', (b: Buffer) => b.writeUInt32LE(2, 8), /type_off 2 is not 4-byte aligned/],
		[
			'a name offset past the strings',
			(b: Buffer) => b.writeUInt32LE(0x00ffffff, 24),
			/name offset \d+ is past the string section/,
		],
	])('refuses an object whose .BTF has %s', (_what, change, why) => {
		const b = edit(subprogs, (x) => change(x.subarray(section(x, '.BTF').offset)));
		const e = bpftimeError(() => open(b));
		expect(e.message).toMatch(/^BTF: /);
		expect(e.message).toMatch(why);
	});
});

describe('bad .BTF.ext and CO-RE records', () => {
	/** Offsets in .BTF.ext: the header's func_info_off (8), line_info_off (16), core_relo_off (24). */
	const ext = (b: Buffer) => {
		const s = section(b, '.BTF.ext');
		const hdrLen = b.readUInt32LE(s.offset + 4);
		const sub = (field: number) => s.offset + hdrLen + b.readUInt32LE(s.offset + field);
		// rec_size, then sec_name_off, num_info, then the records.
		return { func: sub(8), line: sub(16), core: sub(24), firstCore: sub(24) + 4 + 8 };
	};

	it.each([
		[
			'func_info records smaller than 8 bytes',
			(b: Buffer) => b.writeUInt32LE(4, ext(b).func),
			/rec_size 4 is smaller than 8/,
		],
		[
			'a func_info section name past the strings',
			(b: Buffer) => b.writeUInt32LE(0x00ffffff, ext(b).func + 4),
			/section name/,
		],
		[
			'more line_info records than it holds',
			(b: Buffer) => b.writeUInt32LE(1 << 20, ext(b).line + 8),
			/records of 16 bytes/,
		],
		[
			'a line_info insn_off that is not a multiple of 8',
			(b: Buffer) => b.writeUInt32LE(3, ext(b).line + 12),
			/insn_off 3 is not a multiple of 8/,
		],
		[
			'a CO-RE record of unknown kind',
			(b: Buffer) => b.writeUInt32LE(99, ext(b).firstCore + 12),
			/unrecognized CO-RE relocation kind 99/,
		],
		['a CO-RE record past the section', (b: Buffer) => b.writeUInt32LE(1 << 20, ext(b).firstCore), /bad insn index/],
		[
			'a CO-RE record of a type that does not exist',
			(b: Buffer) => b.writeUInt32LE(100000, ext(b).firstCore + 4),
			/local type \[100000\] not found/,
		],
		['a CO-RE access string that is not one', (b: Buffer) => b.writeUInt32LE(1, ext(b).firstCore + 8), /access string/],
	])('refuses %s', (_what, change, why) => {
		expect(bpftimeError(() => open(edit(core, change))).message).toMatch(why);
	});

	it('asks for a target BTF when the object has CO-RE records and none is given', () => {
		const e = bpftimeError(() => BpfObject.open(core, { targetBtf: '/no/such/vmlinux' }));
		expect(e).toMatchObject({ code: 'ENOENT' });
	});
});

// Inputs the fuzzer found (each threw a RangeError before it was fixed).
describe('found by the fuzzer', () => {
	it('refuses a legacy maps section without data (SHT_NOBITS)', async () => {
		const legacy = readFileSync(await fx.bpf('legacy'));
		const b = edit(legacy, (x) => x.writeUInt32LE(8, section(x, 'maps').header + 4));
		expect(bpftimeError(() => open(b)).message).toMatch(/legacy 'maps' section holds no data/);
	});

	it('refuses a .bss larger than an array map value may be, with E2BIG', () => {
		const b = edit(globals, (x) => x.writeBigUInt64LE(1n << 30n, section(x, '.bss').header + 32));
		const e = bpftimeError(() => open(b));
		expect(e.code).toBe('E2BIG');
		expect(e.message).toMatch(/section '\.bss' is 1073741824 bytes/);
	});

	it('refuses a CO-RE access to a member that is neither byte aligned nor a bitfield', async () => {
		const obj = readFileSync(await fx.bpf('user-types'));
		const b = edit(obj, (x) => {
			// struct request's member `size` is at bit 64: move it to bit 65.
			const s = section(x, '.BTF');
			const hdr = x.readUInt32LE(s.offset + 4);
			const types = s.offset + hdr + x.readUInt32LE(s.offset + 8);
			const typeLen = x.readUInt32LE(s.offset + 12);
			const strs = s.offset + hdr + x.readUInt32LE(s.offset + 16);
			const nameOff = x.indexOf('\0size\0', strs, 'latin1') + 1 - strs;
			for (let at = types; at < types + typeLen; at += 4) {
				if (x.readUInt32LE(at) === nameOff && x.readUInt32LE(at + 8) === 64) x.writeUInt32LE(65, at + 8);
			}
		});
		expect(bpftimeError(() => BpfObject.open(b, { targetBtf: globals })).message).toMatch(
			/bit offset 65 .* is not byte aligned and not a bitfield/,
		);
	});
});

describe('errors point at the source', () => {
	it('names the source line of a bad relocation', () => {
		const b = edit(subprogs, (x) => x.writeUInt32LE(99, section(x, '.reluprobe').offset + 8));
		expect(bpftimeError(() => open(b)).message).toMatch(
			/unknown relocation type 99 .*\(at subprogs\.bpf\.c:\d+: .+\)$/,
		);
	});

	it('names the source line of a bad CO-RE record', () => {
		const s = section(core, '.BTF.ext');
		const hdrLen = core.readUInt32LE(s.offset + 4);
		const first = s.offset + hdrLen + core.readUInt32LE(s.offset + 24) + 4 + 8;
		const b = edit(core, (x) => x.writeUInt32LE(99, first + 12));
		expect(bpftimeError(() => open(b)).message).toMatch(/kind 99 .*\(at core\.bpf\.c:\d+: .+\)$/);
	});
});
