// Keys and values of a map as the types of its BTF describe them, as
// bpftool's formatted output does (tools/bpf/bpftool/btf_dumper.c): integers
// as numbers, char arrays as strings, enums by the name of their value,
// structs and unions by member, arrays element by element; bitfields and a
// pointer in hex. test/registry-commands.test.ts compares it with bpftool's
// own on the kernel's maps. Without BTF, integers of 1, 2, 4 or 8 bytes are numbers
// and anything else hex bytes.
import { BpftimeError } from '@bpftime/common';
import type { Btf, BtfType } from '@bpftime/loader';

// include/uapi/linux/btf.h, here rather than imported so that the commands
// that never decode a value do not load the loader at start-up.
const BtfKind = {
	Int: 1,
	Ptr: 2,
	Array: 3,
	Struct: 4,
	Union: 5,
	Enum: 6,
	Typedef: 8,
	Volatile: 9,
	Const: 10,
	Restrict: 11,
	Var: 14,
	Datasec: 15,
	Float: 16,
	TypeTag: 18,
	Enum64: 19,
} as const;
const BTF_INT_SIGNED = 1;
const BTF_INT_CHAR = 2;
const BTF_INT_BOOL = 4;

/** A decoded value: what --json prints, and what `plainText` writes on one line. */
export type Plain = bigint | number | string | boolean | null | Plain[] | { [member: string]: Plain };

/** Bits of `buf` from bit `bitOff` (little-endian), `bits` wide, as an unsigned bigint. */
function readBits(buf: Buffer, bitOff: number, bits: number): bigint {
	let v = 0n;
	for (let i = 0; i < bits; i++) {
		const at = bitOff + i;
		const byte = buf[at >> 3] ?? 0;
		if ((byte >> (at & 7)) & 1) v |= 1n << BigInt(i);
	}
	return v;
}

function unsignedLE(buf: Buffer, off: number, size: number): bigint {
	let v = 0n;
	for (let i = size - 1; i >= 0; i--) v = (v << 8n) | BigInt(buf[off + i] ?? 0);
	return v;
}

function signed(v: bigint, bits: number): bigint {
	return bits > 0 && v >> BigInt(bits - 1) ? v - (1n << BigInt(bits)) : v;
}

/** Bytes as `0x0a0b…`, the form of values without a type. */
export function hexBytes(buf: Buffer): string {
	return `0x${buf.toString('hex')}`;
}

/** A key or value without BTF: an unsigned little-endian number for 1, 2, 4 or 8 bytes, else hex. */
export function rawValue(buf: Buffer): Plain {
	return [1, 2, 4, 8].includes(buf.length) ? unsignedLE(buf, 0, buf.length) : hexBytes(buf);
}

/** C string of a char array: up to the first NUL; JSON escapes the rest. */
function charString(buf: Buffer, off: number, len: number): string {
	const bytes = buf.subarray(off, off + len);
	const end = bytes.indexOf(0);
	return bytes.subarray(0, end < 0 ? bytes.length : end).toString('latin1');
}

function isChar(btf: Btf, id: number): boolean {
	const t = btf.skipModsAndTypedefs(id).type;
	return t?.kind === BtfKind.Int && t.size === 1 && ((t.encoding & BTF_INT_CHAR) !== 0 || t.name === 'char');
}

const MAX_DEPTH = 32;

/**
 * The value of BTF type `id` at byte `off` of `buf`; `bitOff` and `bitSize`
 * locate a bitfield member. Throws EINVAL when `buf` is shorter than the type.
 */
export function decodeBtf(btf: Btf, id: number, buf: Buffer, off = 0, bitOff = 0, bitSize = 0, depth = 0): Plain {
	if (depth > MAX_DEPTH) throw new BpftimeError('ELOOP', `BTF type [${id}]: nested deeper than ${MAX_DEPTH}`);
	const t: BtfType | undefined = btf.tryType(id);
	if (!t) return null;
	switch (t.kind) {
		case BtfKind.Typedef:
		case BtfKind.Volatile:
		case BtfKind.Const:
		case BtfKind.Restrict:
		case BtfKind.TypeTag:
			return decodeBtf(btf, t.type, buf, off, bitOff, bitSize, depth + 1);
		case BtfKind.Int: {
			const bits = bitSize || t.bits;
			const shift = bitOff + (bitSize ? 0 : t.bitOffset);
			if (off + t.size > buf.length && !bitSize) throw short(id, buf, off + t.size);
			const whole = bits === t.size * 8 && shift === 0;
			let v = whole ? unsignedLE(buf, off, t.size) : readBits(buf, off * 8 + shift, bits);
			// As bpftool's btf_dumper_bitfield and btf_dumper_int_bits: the bits, in hex.
			if (!whole) return `0x${v.toString(16)}`;
			if (t.encoding & BTF_INT_BOOL) return v !== 0n;
			if (t.encoding & BTF_INT_SIGNED) v = signed(v, bits);
			return v;
		}
		case BtfKind.Enum:
		case BtfKind.Enum64: {
			const bits = bitSize || t.size * 8;
			if (off + t.size > buf.length && !bitSize) throw short(id, buf, off + t.size);
			let v = readBits(buf, off * 8 + bitOff, bits);
			if (bitSize) return `0x${v.toString(16)}`;
			if (t.signed) v = signed(v, bits);
			const hit = t.values.find((e) => e.value === v || BigInt.asUintN(bits, e.value) === v);
			return hit ? hit.name : v;
		}
		case BtfKind.Ptr: {
			if (off + 8 > buf.length) throw short(id, buf, off + 8);
			return `0x${unsignedLE(buf, off, 8).toString(16)}`;
		}
		case BtfKind.Float: {
			if (off + t.size > buf.length) throw short(id, buf, off + t.size);
			if (t.size === 4) return buf.readFloatLE(off);
			if (t.size === 8) return buf.readDoubleLE(off);
			return hexBytes(buf.subarray(off, off + t.size));
		}
		case BtfKind.Array: {
			const size = btf.resolveSize(t.type);
			if (off + size * t.nelems > buf.length) throw short(id, buf, off + size * t.nelems);
			if (isChar(btf, t.type)) return charString(buf, off, t.nelems);
			const out: Plain[] = [];
			for (let i = 0; i < t.nelems; i++) out.push(decodeBtf(btf, t.type, buf, off + i * size, 0, 0, depth + 1));
			return out;
		}
		case BtfKind.Struct:
		case BtfKind.Union: {
			if (off + t.size > buf.length) throw short(id, buf, off + t.size);
			const out: { [member: string]: Plain } = {};
			for (const m of t.members) {
				const byte = off + Math.floor(m.bitOffset / 8);
				const v = decodeBtf(btf, m.type, buf, byte, m.bitOffset % 8, m.bitfieldSize, depth + 1);
				// An anonymous struct or union member lends its members to this one, as C reads them.
				if (m.name === '' && v !== null && typeof v === 'object' && !Array.isArray(v)) Object.assign(out, v);
				else out[m.name || `(anon ${m.bitOffset / 8})`] = v;
			}
			return out;
		}
		case BtfKind.Datasec: {
			const out: { [variable: string]: Plain } = {};
			for (const v of t.vars) {
				const variable = btf.tryType(v.type);
				out[variable?.name ?? `[${v.type}]`] =
					variable?.kind === BtfKind.Var
						? decodeBtf(btf, variable.type, buf, off + v.offset, 0, 0, depth + 1)
						: hexBytes(buf.subarray(off + v.offset, off + v.offset + v.size));
			}
			return out;
		}
		default:
			return null;
	}
}

function short(id: number, buf: Buffer, need: number): BpftimeError {
	return new BpftimeError('EINVAL', `BTF type [${id}]: needs ${need} bytes but the value has ${buf.length}`);
}

/** One line of text for a decoded value: `{pid: 12, comm: "sh", state: RUNNING}`, `[1, 2, 3]`. */
export function plainText(v: Plain): string {
	if (v === null) return 'null';
	if (typeof v === 'bigint' || typeof v === 'number' || typeof v === 'boolean') return String(v);
	if (typeof v === 'string') return v.startsWith('0x') ? v : JSON.stringify(v);
	if (Array.isArray(v)) return `[${v.map(plainText).join(', ')}]`;
	return `{${Object.entries(v)
		.map(([k, x]) => `${k}: ${plainText(x)}`)
		.join(', ')}}`;
}

/** An integer literal of a command line (decimal, 0x hex, negative) as a bigint; undefined when it is none. */
export function parseInteger(text: string): bigint | undefined {
	if (!/^-?(0x[0-9a-f]+|\d+)$/i.test(text)) return undefined;
	const neg = text.startsWith('-');
	const v = BigInt(neg ? text.slice(1) : text);
	return neg ? -v : v;
}

/**
 * The bytes of a key or value given on the command line, `size` bytes long:
 * - JSON (an object, array or string) when BTF describes the type: written
 *   member by member (`encodeBtf`), as `map dump --json` shows it;
 * - `hex:0a0b0c0d` (or `0x` followed by exactly 2 x size hex digits for a
 *   size other than 1, 2, 4, 8): those bytes;
 * - an integer (decimal, 0x, negative) for a size of 1, 2, 4 or 8: little-endian,
 *   range checked against the size (signed or unsigned);
 * - the name of a value of the BTF enum the type is.
 * `what` names it in errors (`key`, `value`).
 */
export function encodeArgument(text: string, size: number, what: string, btf?: Btf, typeId?: number): Buffer {
	if (btf && typeId && /^\s*[[{"]/.test(text)) {
		let parsed: unknown;
		try {
			parsed = JSON.parse(text);
		} catch (e) {
			throw new BpftimeError('EINVAL', `${what} '${text}': not JSON (${(e as Error).message})`);
		}
		const out = Buffer.alloc(size);
		encodeBtf(btf, typeId, parsed, out, 0, 0, 0, what);
		return out;
	}
	const hex = /^hex:([0-9a-f]*)$/i.exec(text) ?? (![1, 2, 4, 8].includes(size) ? /^0x([0-9a-f]*)$/i.exec(text) : null);
	if (hex) {
		const digits = hex[1] as string;
		if (digits.length !== size * 2)
			throw new BpftimeError(
				'EINVAL',
				`${what} '${text}': expected ${size} bytes (${size * 2} hex digits) but received ${digits.length / 2}`,
			);
		return Buffer.from(digits, 'hex');
	}
	let n = parseInteger(text);
	if (n === undefined && btf && typeId) {
		const t = btf.skipModsAndTypedefs(typeId).type;
		if (t && (t.kind === BtfKind.Enum || t.kind === BtfKind.Enum64)) {
			const e = t.values.find((x) => x.name === text);
			if (!e)
				throw new BpftimeError(
					'EINVAL',
					`${what} '${text}': not a value of enum ${t.name || '(anon)'} (${t.values.map((x) => x.name).join(', ')})`,
				);
			n = e.value;
		}
	}
	const example = `hex:${'00'.repeat(Math.min(size, 4))}${size > 4 ? '…' : ''}`;
	if (n === undefined)
		throw new BpftimeError('EINVAL', `${what} '${text}': expected an integer (12, 0x1f, -3) or bytes (${example})`);
	if (![1, 2, 4, 8].includes(size))
		throw new BpftimeError(
			'EINVAL',
			`${what} '${text}': the ${what} is ${size} bytes, not an integer; give its bytes as ${example}`,
		);
	const bits = BigInt(size * 8);
	if (n < -(1n << (bits - 1n)) || n >= 1n << bits)
		throw new BpftimeError('ERANGE', `${what} '${text}': does not fit in ${size} bytes`);
	const le = Buffer.alloc(8);
	le.writeBigUInt64LE(BigInt.asUintN(64, n));
	return Buffer.from(le.subarray(0, size));
}

/** Writes `bits` bits of `v` into `buf` from bit `bitOff` (little-endian). */
function writeBits(buf: Buffer, bitOff: number, bits: number, v: bigint): void {
	for (let i = 0; i < bits; i++) {
		const at = bitOff + i;
		const mask = 1 << (at & 7);
		const byte = buf[at >> 3] ?? 0;
		buf[at >> 3] = (v >> BigInt(i)) & 1n ? byte | mask : byte & ~mask;
	}
}

function bad(path: string, message: string): BpftimeError {
	return new BpftimeError('EINVAL', `${path || 'value'}: ${message}`);
}

function integerOf(v: unknown, path: string): bigint {
	if (typeof v === 'bigint') return v;
	if (typeof v === 'boolean') return v ? 1n : 0n;
	if (typeof v === 'number' && Number.isInteger(v)) return BigInt(v);
	if (typeof v === 'string') {
		const n = parseInteger(v);
		if (n !== undefined) return n;
	}
	throw bad(path, `expected an integer but received ${JSON.stringify(v)}`);
}

function fits(n: bigint, bits: number, path: string): bigint {
	const b = BigInt(bits);
	if (n < -(1n << (b - 1n)) || n >= 1n << b) throw bad(path, `${n} does not fit in ${bits} bits`);
	return BigInt.asUintN(bits, n);
}

/**
 * Writes `v` (what `decodeBtf` gives, parsed from JSON: objects by member,
 * arrays, strings for char arrays and enum names, numbers or numeric
 * strings for integers) as BTF type `id` at byte `off` of `buf`. Members
 * left out stay zero. Throws EINVAL naming the member (`value.comm`).
 */
export function encodeBtf(
	btf: Btf,
	id: number,
	v: unknown,
	buf: Buffer,
	off = 0,
	bitOff = 0,
	bitSize = 0,
	path = 'value',
	depth = 0,
): void {
	if (depth > MAX_DEPTH) throw new BpftimeError('ELOOP', `BTF type [${id}]: nested deeper than ${MAX_DEPTH}`);
	const t = btf.tryType(id);
	if (!t) throw bad(path, `BTF type [${id}] has no layout`);
	switch (t.kind) {
		case BtfKind.Typedef:
		case BtfKind.Volatile:
		case BtfKind.Const:
		case BtfKind.Restrict:
		case BtfKind.TypeTag:
			encodeBtf(btf, t.type, v, buf, off, bitOff, bitSize, path, depth + 1);
			return;
		case BtfKind.Int: {
			const bits = bitSize || t.bits;
			writeBits(buf, off * 8 + bitOff + (bitSize ? 0 : t.bitOffset), bits, fits(integerOf(v, path), bits, path));
			return;
		}
		case BtfKind.Enum:
		case BtfKind.Enum64: {
			const bits = bitSize || t.size * 8;
			const named = typeof v === 'string' ? t.values.find((e) => e.name === v) : undefined;
			if (typeof v === 'string' && !named && parseInteger(v) === undefined)
				throw bad(
					path,
					`'${v}' is not a value of enum ${t.name || '(anon)'} (${t.values.map((e) => e.name).join(', ')})`,
				);
			writeBits(buf, off * 8 + bitOff, bits, fits(named ? named.value : integerOf(v, path), bits, path));
			return;
		}
		case BtfKind.Ptr:
			writeBits(buf, off * 8, 64, fits(integerOf(v, path), 64, path));
			return;
		case BtfKind.Float:
			if (typeof v !== 'number') throw bad(path, `expected a number but received ${JSON.stringify(v)}`);
			if (t.size === 4) buf.writeFloatLE(v, off);
			else if (t.size === 8) buf.writeDoubleLE(v, off);
			else throw bad(path, `a float of ${t.size} bytes cannot be written`);
			return;
		case BtfKind.Array: {
			const size = btf.resolveSize(t.type);
			if (typeof v === 'string' && isChar(btf, t.type)) {
				const bytes = Buffer.from(v, 'latin1');
				if (bytes.length > t.nelems) throw bad(path, `"${v}" is ${bytes.length} bytes; the array holds ${t.nelems}`);
				bytes.copy(buf, off);
				return;
			}
			if (!Array.isArray(v)) throw bad(path, `expected an array of ${t.nelems} but received ${JSON.stringify(v)}`);
			if (v.length > t.nelems) throw bad(path, `${v.length} elements; the array holds ${t.nelems}`);
			v.forEach((x, i) => {
				encodeBtf(btf, t.type, x, buf, off + i * size, 0, 0, `${path}[${i}]`, depth + 1);
			});
			return;
		}
		case BtfKind.Struct:
		case BtfKind.Union: {
			if (v === null || typeof v !== 'object' || Array.isArray(v))
				throw bad(path, `expected an object with members ${t.members.map((m) => m.name).join(', ')}`);
			const given = v as Record<string, unknown>;
			const known = new Set<string>();
			const visit = (members: typeof t.members, base: number) => {
				for (const m of members) {
					const at = base + m.bitOffset;
					if (m.name === '') {
						// An anonymous struct or union lends its members, as decodeBtf shows them.
						const inner = btf.skipModsAndTypedefs(m.type).type;
						if (inner && (inner.kind === BtfKind.Struct || inner.kind === BtfKind.Union)) visit(inner.members, at);
						continue;
					}
					known.add(m.name);
					if (!(m.name in given)) continue;
					encodeBtf(
						btf,
						m.type,
						given[m.name],
						buf,
						off + Math.floor(at / 8),
						at % 8,
						m.bitfieldSize,
						`${path}.${m.name}`,
						depth + 1,
					);
				}
			};
			visit(t.members, 0);
			for (const k of Object.keys(given))
				if (!known.has(k)) throw bad(path, `${t.name || '(anon)'} has no member '${k}'`);
			return;
		}
		default:
			throw bad(path, `values of BTF kind ${t.kind} cannot be written`);
	}
}
