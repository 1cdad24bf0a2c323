import { BpftimeError } from './errors.js';

function describe(value: unknown): string {
	if (typeof value === 'string') return `${JSON.stringify(value)} (string)`;
	if (typeof value === 'bigint') return `${value}n (bigint)`;
	if (value === null) return 'null';
	if (typeof value === 'object') return `${Object.prototype.toString.call(value)} (object)`;
	return `${String(value)} (${typeof value})`;
}

function invalid(expected: string, what: string, value: unknown): BpftimeError {
	return new BpftimeError('EINVAL', `Expected ${expected} for ${what} but received ${describe(value)}`);
}

/** An integer in [0, 2^32). */
export function expectU32(value: unknown, what: string): number {
	if (typeof value === 'number' && Number.isInteger(value) && value >= 0 && value <= 0xffffffff) return value;
	throw invalid('u32', what, value);
}

/** An integer in [0, 2^64), given as a bigint or a safe integer. */
export function expectU64(value: unknown, what: string): bigint {
	if (typeof value === 'bigint' && value >= 0n && value < 1n << 64n) return value;
	if (typeof value === 'number' && Number.isSafeInteger(value) && value >= 0) return BigInt(value);
	throw invalid('u64', what, value);
}

/** A positive safe integer. */
export function expectPositiveInt(value: unknown, what: string): number {
	if (typeof value === 'number' && Number.isSafeInteger(value) && value > 0) return value;
	throw invalid('a positive integer', what, value);
}

export function expectString(value: unknown, what: string): string {
	if (typeof value === 'string') return value;
	throw invalid('string', what, value);
}

export function expectBuffer(value: unknown, what: string): Buffer {
	if (Buffer.isBuffer(value)) return value;
	if (value instanceof Uint8Array) return Buffer.from(value.buffer, value.byteOffset, value.byteLength);
	throw invalid('Buffer', what, value);
}
