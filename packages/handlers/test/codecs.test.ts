import { describe, expect, it } from 'vitest';
import { bytes, i32, i64, u8, u16, u32, u64 } from '../src/index.js';

describe('codecs', () => {
	it.each([
		['u8', u8, [0, 7, 255]],
		['u16', u16, [0, 513, 65535]],
		['u32', u32, [0, 1, 0xffffffff]],
		['i32', i32, [-0x80000000, -1, 0x7fffffff]],
		['u64', u64, [0n, 1n << 53n, (1n << 64n) - 1n]],
		['i64', i64, [-(1n << 63n), -1n, (1n << 63n) - 1n]],
	] as const)('%s round-trips its extremes, and decodeMany agrees with decode aligned or not', (_n, codec, values) => {
		const c = codec as unknown as {
			size: number;
			encode(v: unknown, b: Buffer, o: number): void;
			decode(b: Buffer, o: number): unknown;
			decodeMany(b: Buffer, n: number): ArrayLike<unknown>;
		};
		const backing = Buffer.alloc(values.length * c.size + 1);
		for (const shift of [0, 1]) {
			const buf = backing.subarray(shift, shift + values.length * c.size);
			for (const [i, v] of values.entries()) c.encode(v, buf, i * c.size);
			expect(values.map((_, i) => c.decode(buf, i * c.size))).toEqual([...values]);
			expect(Array.from(c.decodeMany(buf, values.length))).toEqual([...values]);
		}
	});

	it('refuses values outside the type, saying what it expected', () => {
		expect(() => u32.encode(-1, Buffer.alloc(4), 0)).toThrow(/Expected u32 but received -1 \(number\)/);
		expect(() => u64.encode(1n << 64n, Buffer.alloc(8), 0)).toThrow(/Expected u64/);
		expect(() => bytes(4).encode(Buffer.alloc(3), Buffer.alloc(4), 0)).toThrow(/Expected 4 bytes but received 3 bytes/);
	});
});
