// codecs.ts: how typed map views turn keys and values into bytes and back.
// Every u64 is a bigint; sizes are checked once, when a view is made.

/** Encodes values of type T into exactly `size` bytes (little-endian, as eBPF on x86-64). */
export interface Codec<T> {
	/** Shown in errors: `u32`, `bytes(16)`. */
	readonly name: string;
	readonly size: number;
	encode(value: T, buf: Buffer, offset: number): void;
	decode(buf: Buffer, offset: number): T;
}

function intCodec(
	name: string,
	size: number,
	min: number,
	max: number,
	write: (buf: Buffer, v: number, off: number) => void,
	read: (buf: Buffer, off: number) => number,
): Codec<number> {
	return {
		name,
		size,
		encode(value, buf, offset) {
			if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max)
				throw new TypeError(`Expected ${name} but received ${String(value)} (${typeof value})`);
			write(buf, value, offset);
		},
		decode: read,
	};
}

export const u8: Codec<number> = intCodec(
	'u8',
	1,
	0,
	0xff,
	(b, v, o) => b.writeUInt8(v, o),
	(b, o) => b.readUInt8(o),
);
export const u16: Codec<number> = intCodec(
	'u16',
	2,
	0,
	0xffff,
	(b, v, o) => b.writeUInt16LE(v, o),
	(b, o) => b.readUInt16LE(o),
);
export const u32: Codec<number> = intCodec(
	'u32',
	4,
	0,
	0xffffffff,
	(b, v, o) => b.writeUInt32LE(v, o),
	(b, o) => b.readUInt32LE(o),
);
export const i32: Codec<number> = intCodec(
	'i32',
	4,
	-0x80000000,
	0x7fffffff,
	(b, v, o) => b.writeInt32LE(v, o),
	(b, o) => b.readInt32LE(o),
);

export const u64: Codec<bigint> = {
	name: 'u64',
	size: 8,
	encode(value, buf, offset) {
		if (typeof value !== 'bigint' || value < 0n || value >= 1n << 64n)
			throw new TypeError(`Expected u64 (bigint) but received ${String(value)} (${typeof value})`);
		buf.writeBigUInt64LE(value, offset);
	},
	decode: (buf, offset) => buf.readBigUInt64LE(offset),
};

export const i64: Codec<bigint> = {
	name: 'i64',
	size: 8,
	encode(value, buf, offset) {
		if (typeof value !== 'bigint' || value < -(1n << 63n) || value >= 1n << 63n)
			throw new TypeError(`Expected i64 (bigint) but received ${String(value)} (${typeof value})`);
		buf.writeBigInt64LE(value, offset);
	},
	decode: (buf, offset) => buf.readBigInt64LE(offset),
};

/** Raw bytes of a fixed size (structs you lay out yourself). Decoded values are copies. */
export function bytes(size: number): Codec<Buffer> {
	if (!Number.isSafeInteger(size) || size <= 0) throw new TypeError(`Expected a positive size but received ${size}`);
	return {
		name: `bytes(${size})`,
		size,
		encode(value, buf, offset) {
			if (!(value instanceof Uint8Array) || value.length !== size)
				throw new TypeError(
					`Expected ${size} bytes but received ${value instanceof Uint8Array ? `${value.length} bytes` : typeof value}`,
				);
			buf.set(value, offset);
		},
		decode: (buf, offset) => Buffer.from(buf.subarray(offset, offset + size)),
	};
}
