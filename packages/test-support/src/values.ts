// Small values the tests of several packages build or check.
import { BpftimeError } from '@bpftime/common';

/** Runs fn and returns the BpftimeError it throws; fails the test when it throws nothing or something else. */
export function errorOf(fn: () => unknown): BpftimeError {
	try {
		fn();
	} catch (e) {
		if (e instanceof BpftimeError) return e;
		throw e;
	}
	throw new Error('expected a BpftimeError, but nothing was thrown');
}

/** v as 4 little-endian bytes. */
export const u32le = (v: number): Buffer => {
	const b = Buffer.alloc(4);
	b.writeUInt32LE(v, 0);
	return b;
};

/** v as 8 little-endian bytes. */
export const u64le = (v: bigint): Buffer => {
	const b = Buffer.alloc(8);
	b.writeBigUInt64LE(v, 0);
	return b;
};
