// .BTF.ext (kernel Documentation/bpf/btf.rst, "BTF.ext section"): per ELF
// section, the function info (which BTF FUNC starts at which instruction),
// the line info (which source line an instruction comes from) and the CO-RE
// relocation records. Strings point into the .BTF string section.
//
// Record sizes come from the file and may grow in later versions: only the
// fields this version knows are read, as libbpf does.

import { BpftimeError } from '@bpftime/common';
import { ByteView, malformed } from '../bytes.js';
import type { Btf } from './btf.js';

export interface FuncInfo {
	/** Instruction index inside the ELF section (the file stores bytes). */
	insnIdx: number;
	typeId: number;
}

export interface LineInfo {
	/** Instruction index inside the ELF section (the file stores bytes). */
	insnIdx: number;
	fileName: string;
	/** The source line's text, as clang recorded it. */
	lineText: string;
	line: number;
	column: number;
	/** The record as stored, for a kernel that wants it back (struct bpf_line_info): string offsets into .BTF and line << 10 | column. */
	fileNameOff: number;
	lineOff: number;
	lineCol: number;
}

/** enum bpf_core_relo_kind of include/uapi/linux/bpf.h */
export const CoreReloKind = {
	FieldByteOffset: 0,
	FieldByteSize: 1,
	FieldExists: 2,
	FieldSigned: 3,
	FieldLshiftU64: 4,
	FieldRshiftU64: 5,
	TypeIdLocal: 6,
	TypeIdTarget: 7,
	TypeExists: 8,
	TypeSize: 9,
	EnumvalExists: 10,
	EnumvalValue: 11,
	TypeMatches: 12,
} as const;
export type CoreReloKind = (typeof CoreReloKind)[keyof typeof CoreReloKind];

const CORE_KIND_NAMES = [
	'byte_off',
	'byte_sz',
	'field_exists',
	'signed',
	'lshift_u64',
	'rshift_u64',
	'local_type_id',
	'target_type_id',
	'type_exists',
	'type_size',
	'enumval_exists',
	'enumval_value',
	'type_matches',
];

/** libbpf's core_relo_kind_str(): `byte_off`, `field_exists` … */
export function coreReloKindName(kind: number): string {
	return CORE_KIND_NAMES[kind] ?? 'unknown';
}

export interface CoreRelo {
	/** Instruction index inside the ELF section. */
	insnIdx: number;
	typeId: number;
	accessStr: string;
	kind: number;
}

export interface BtfExt {
	/** By ELF section name. */
	funcInfo: Map<string, FuncInfo[]>;
	lineInfo: Map<string, LineInfo[]>;
	coreRelos: Map<string, CoreRelo[]>;
}

const MIN_HEADER = 24;

/** Parses .BTF.ext against the object's .BTF (for its strings). */
export function parseBtfExt(buf: Buffer, btf: Btf): BtfExt {
	const what = '.BTF.ext';
	const v = new ByteView(buf, what);
	if (buf.length < MIN_HEADER) throw malformed(`${what}: header truncated (${buf.length} of ${MIN_HEADER} bytes)`);
	const magic = v.u16(0, 'magic');
	if (magic !== 0xeb9f) throw malformed(`${what}: bad magic 0x${magic.toString(16)}, expected 0xeb9f`);
	const version = v.u8(2, 'version');
	if (version !== 1) throw malformed(`${what}: unsupported version ${version}`);
	const hdrLen = v.u32(4, 'hdr_len');
	if (hdrLen < MIN_HEADER) throw malformed(`${what}: hdr_len ${hdrLen} is shorter than the header (${MIN_HEADER})`);
	v.check(0, hdrLen, 'header (hdr_len)');
	const body = v.slice(hdrLen, buf.length - hdrLen, 'data after the header');

	const sub = (offField: number, name: string, minRec: number) => {
		const off = v.u32(offField, `${name}_off`);
		const len = v.u32(offField + 4, `${name}_len`);
		if (len === 0) return [];
		return readInfoSections(
			body.slice(off, len, `${name} (${name}_off, ${name}_len)`, `${what}: ${name}`),
			btf,
			minRec,
		);
	};

	// Every record starts with insn_off; `decode` reads the rest. `rec` names
	// the record in errors: `line_info of '<section>' #<i>`.
	const table = <T>(
		offField: number,
		name: string,
		minRec: number,
		decode: (r: ByteView, rec: string) => T,
	): Map<string, (T & { insnIdx: number })[]> => {
		const out = new Map<string, (T & { insnIdx: number })[]>();
		for (const s of sub(offField, name, minRec)) {
			out.set(
				s.secName,
				s.records.map((r, i) => ({
					insnIdx: insnIndex(r.u32(0, 'insn_off'), s.secName, name, i),
					...decode(r, `${name} of '${s.secName}' #${i}`),
				})),
			);
		}
		return out;
	};

	const ext: BtfExt = {
		funcInfo: table(8, 'func_info', 8, (r) => ({ typeId: r.u32(4, 'type_id') })),
		lineInfo: table(16, 'line_info', 16, (r, rec) => {
			const fileNameOff = r.u32(4, 'file_name_off');
			const lineOff = r.u32(8, 'line_off');
			const lineCol = r.u32(12, 'line_col');
			return {
				fileName: btf.str(fileNameOff, `${rec}: file name`),
				lineText: btf.str(lineOff, `${rec}: line`),
				line: lineCol >>> 10,
				column: lineCol & 0x3ff,
				fileNameOff,
				lineOff,
				lineCol,
			};
		}),
		coreRelos: new Map(),
	};
	// CO-RE records came with a longer header (libbpf: hdr_len >= 32).
	if (hdrLen >= 32) {
		ext.coreRelos = table(24, 'core_relo', 16, (r, rec) => ({
			typeId: r.u32(4, 'type_id'),
			accessStr: btf.str(r.u32(8, 'access_str_off'), `${rec}: access string`),
			kind: r.u32(12, 'kind'),
		}));
	}
	return ext;
}

function insnIndex(bytes: number, sec: string, table: string, i: number): number {
	if (bytes % 8 !== 0)
		throw malformed(`.BTF.ext: ${table} of '${sec}' #${i}: insn_off ${bytes} is not a multiple of 8`);
	return bytes / 8;
}

/** `rec_size` then, per ELF section, `sec_name_off`, `num_info` and the records (btf_ext_info_sec). */
function readInfoSections(v: ByteView, btf: Btf, minRec: number): { secName: string; records: ByteView[] }[] {
	const recSize = v.u32(0, 'rec_size');
	if (recSize < minRec) throw malformed(`${v.what}: rec_size ${recSize} is smaller than ${minRec}`);
	if (recSize % 4 !== 0) throw malformed(`${v.what}: rec_size ${recSize} is not a multiple of 4`);
	const out: { secName: string; records: ByteView[] }[] = [];
	let at = 4;
	while (at < v.length) {
		const secName = btf.str(v.u32(at, 'sec_name_off'), `${v.what}: section name`);
		const num = v.u32(at + 4, `num_info of '${secName}'`);
		if (num === 0) throw malformed(`${v.what}: section '${secName}' has no records`);
		at += 8;
		v.check(at, num * recSize, `${num} records of ${recSize} bytes for '${secName}'`);
		const records: ByteView[] = [];
		for (let i = 0; i < num; i++)
			records.push(v.slice(at + i * recSize, recSize, `record #${i}`, `${v.what} '${secName}' #${i}`));
		at += num * recSize;
		out.push({ secName, records });
	}
	return out;
}

/** The line an instruction of an ELF section comes from: the last line info at or before it. */
export function sourceLineOf(ext: BtfExt | undefined, secName: string, insnIdx: number): LineInfo | undefined {
	let best: LineInfo | undefined;
	for (const li of ext?.lineInfo.get(secName) ?? [])
		if (li.insnIdx <= insnIdx && (!best || li.insnIdx >= best.insnIdx)) best = li;
	return best;
}

/**
 * The same error with the source line of the instruction it is about
 * appended (`… (at prog.bpf.c:12: return leaf(x);)`), so that a bad
 * relocation points at the code that made it. Other errors pass unchanged.
 */
export function atSourceLine(e: unknown, li: LineInfo | undefined): unknown {
	if (!li || !(e instanceof BpftimeError)) return e;
	const file = li.fileName.split('/').pop() ?? li.fileName;
	return new BpftimeError(e.code, `${e.message} (at ${file}:${li.line}: ${li.lineText.trim()})`, { cause: e });
}
