// codecs.ts: how typed map views turn keys and values into bytes and back.
// Every u64 is a bigint; sizes are checked once, when a view is made.

/** Encodes values of type T into exactly `size` bytes (little-endian, as eBPF on x86-64). */
export interface Codec<T> {
	/** Shown in errors: `u32`, `bytes(16)`. */
	readonly name: string;
	readonly size: number;
	encode(value: T, buf: Buffer, offset: number): void;
	decode(buf: Buffer, offset: number): T;
	/** Optional: the first `count` packed values of buf at once (bulk reads); what `decode` gives for each. */
	decodeMany?(buf: Buffer, count: number): ArrayLike<T>;
}

type IntArray = Uint8Array | Uint16Array | Uint32Array | Int32Array | BigUint64Array | BigInt64Array;

/** A typed-array view of buf when it is aligned for it (little-endian host), else undefined. */
function view<A extends IntArray>(
	make: new (b: ArrayBufferLike, off: number, len: number) => A,
	size: number,
	buf: Buffer,
	count: number,
): A | undefined {
	return buf.byteOffset % size === 0 ? new make(buf.buffer, buf.byteOffset, count) : undefined;
}

function intCodec(
	name: string,
	size: number,
	min: number,
	max: number,
	write: (buf: Buffer, v: number, off: number) => void,
	read: (buf: Buffer, off: number) => number,
	array: new (b: ArrayBufferLike, off: number, len: number) => Uint8Array | Uint16Array | Uint32Array | Int32Array,
): Codec<number> {
	return {
		name,
		size,
		decodeMany(buf, count) {
			return view(array, size, buf, count) ?? Array.from({ length: count }, (_, i) => read(buf, i * size));
		},
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
	Uint8Array,
);
export const u16: Codec<number> = intCodec(
	'u16',
	2,
	0,
	0xffff,
	(b, v, o) => b.writeUInt16LE(v, o),
	(b, o) => b.readUInt16LE(o),
	Uint16Array,
);
export const u32: Codec<number> = intCodec(
	'u32',
	4,
	0,
	0xffffffff,
	(b, v, o) => b.writeUInt32LE(v, o),
	(b, o) => b.readUInt32LE(o),
	Uint32Array,
);
export const i32: Codec<number> = intCodec(
	'i32',
	4,
	-0x80000000,
	0x7fffffff,
	(b, v, o) => b.writeInt32LE(v, o),
	(b, o) => b.readInt32LE(o),
	Int32Array,
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
	decodeMany: (buf, count) =>
		view(BigUint64Array, 8, buf, count) ?? Array.from({ length: count }, (_, i) => buf.readBigUInt64LE(i * 8)),
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
	decodeMany: (buf, count) =>
		view(BigInt64Array, 8, buf, count) ?? Array.from({ length: count }, (_, i) => buf.readBigInt64LE(i * 8)),
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
