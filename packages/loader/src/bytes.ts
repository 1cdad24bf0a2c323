// Bounds-checked little-endian reads over a Buffer.
//
// Every parser of untrusted object files in this package reads through a
// `ByteView`, so a truncated or lying file becomes a BpftimeError that names
// what was being read (`BTF: type [12]: 16 bytes at 0x1f0 past the end (0x1f8)`)
// instead of a RangeError thrown from deep inside a DataView.

import { BpftimeError } from '@bpftime/common';

/** EINVAL with a message: the errno libbpf returns for a malformed object. */
export function malformed(message: string): BpftimeError {
	return new BpftimeError('EINVAL', message);
}

export function hex(n: number | bigint): string {
	return `0x${n.toString(16)}`;
}

export class ByteView {
	readonly buf: Buffer;
	/** Prefixed to every error: which structure this view holds (`elf`, `BTF`, `.BTF.ext`). */
	readonly what: string;

	constructor(buf: Buffer, what: string) {
		this.buf = buf;
		this.what = what;
	}

	get length(): number {
		return this.buf.length;
	}

	/** Throws unless [off, off + size) lies inside the view. `field` names what is read there. */
	check(off: number, size: number, field: string): void {
		if (
			!Number.isSafeInteger(off) ||
			!Number.isSafeInteger(size) ||
			off < 0 ||
			size < 0 ||
			off + size > this.buf.length
		) {
			throw malformed(
				`${this.what}: ${field}: ${size} bytes at ${hex(Math.max(0, off))} past the end (${hex(this.buf.length)})`,
			);
		}
	}

	u8(off: number, field: string): number {
		this.check(off, 1, field);
		return this.buf[off] as number;
	}

	u16(off: number, field: string): number {
		this.check(off, 2, field);
		return this.buf.readUInt16LE(off);
	}

	i16(off: number, field: string): number {
		this.check(off, 2, field);
		return this.buf.readInt16LE(off);
	}

	u32(off: number, field: string): number {
		this.check(off, 4, field);
		return this.buf.readUInt32LE(off);
	}

	i32(off: number, field: string): number {
		this.check(off, 4, field);
		return this.buf.readInt32LE(off);
	}

	u64(off: number, field: string): bigint {
		this.check(off, 8, field);
		return this.buf.readBigUInt64LE(off);
	}

	/**
	 * A u64 that must also be a usable offset or size in this process
	 * (below 2^53). Larger values cannot address anything in a Buffer.
	 */
	u64n(off: number, field: string): number {
		const v = this.u64(off, field);
		if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw malformed(`${this.what}: ${field}: ${hex(v)} is out of range`);
		return Number(v);
	}

	/** A sub-view of [off, off + size); shares memory. */
	slice(off: number, size: number, field: string, what = this.what): ByteView {
		this.check(off, size, field);
		return new ByteView(this.buf.subarray(off, off + size), what);
	}

	/** The NUL-terminated string at `off`; throws when no NUL ends it inside the view. */
	cstr(off: number, field: string): string {
		if (!Number.isSafeInteger(off) || off < 0 || off >= this.buf.length)
			throw malformed(`${this.what}: ${field}: string offset ${hex(off)} past the end (${hex(this.buf.length)})`);
		const end = this.buf.indexOf(0, off);
		if (end < 0) throw malformed(`${this.what}: ${field}: string at ${hex(off)} is not NUL-terminated`);
		return this.buf.toString('utf8', off, end);
	}
}
