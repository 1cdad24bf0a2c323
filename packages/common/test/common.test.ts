import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it, onTestFinished } from 'vitest';
import { BpftimeError, errnoName, errnoNumber, expectU32, expectU64, loadNative } from '../src/index.js';

describe('BpftimeError', () => {
	it.each([
		[2, 'ENOENT'],
		[7, 'E2BIG'],
		[11, 'EAGAIN'],
		[17, 'EEXIST'],
		[22, 'EINVAL'],
		[28, 'ENOSPC'],
		[35, 'EDEADLK'],
		[524, 'ENOTSUPP'],
	])('names errno %i %s', (errno, code) => {
		const e = new BpftimeError(errno, 'x');
		expect(e.code).toBe(code);
		expect(e.errno).toBe(errno);
		expect(errnoName(errno)).toBe(code);
		expect(errnoNumber(code)).toBe(errno);
	});

	it('takes a code name and fills the number', () => {
		const e = new BpftimeError('E2BIG', "map 'counts': update: E2BIG");
		expect(e).toBeInstanceOf(Error);
		expect(e.name).toBe('BpftimeError');
		expect(e.errno).toBe(7);
		expect(e.message).toBe("map 'counts': update: E2BIG");
	});

	it('names an unknown errno by its number', () => {
		expect(new BpftimeError(9999, 'x').code).toBe('E9999');
	});
});

describe('argument checks', () => {
	it('says what it expected and what it received', () => {
		expect(() => expectU32(-1, 'keySize')).toThrow('Expected u32 for keySize but received -1 (number)');
		expect(() => expectU32('4', 'keySize')).toThrow('Expected u32 for keySize but received "4" (string)');
		expect(() => expectU32(2 ** 32, 'keySize')).toThrow('Expected u32 for keySize but received 4294967296 (number)');
		expect(() => expectU64(-1n, 'cookie')).toThrow('Expected u64 for cookie but received -1n (bigint)');
		expect(() => expectU64(1n << 64n, 'cookie')).toThrow(/Expected u64 for cookie/);
	});

	it('accepts the edges of each range', () => {
		expect(expectU32(0, 'x')).toBe(0);
		expect(expectU32(0xffffffff, 'x')).toBe(0xffffffff);
		expect(expectU64((1n << 64n) - 1n, 'x')).toBe((1n << 64n) - 1n);
		expect(expectU64(5, 'x')).toBe(5n);
	});

	it('throws BpftimeError with EINVAL for bad arguments', () => {
		expect(() => expectU32(null, 'x')).toThrow(expect.objectContaining({ code: 'EINVAL', errno: 22 }));
	});
});

describe('loadNative', () => {
	it('lists every path it tried and how to build when the addon is missing', () => {
		const dir = mkdtempSync(join(tmpdir(), 'bpftime-native-'));
		onTestFinished(() => rmSync(dir, { recursive: true, force: true }));
		try {
			loadNative(dir, 'nothing');
			expect.unreachable();
		} catch (e) {
			const err = e as BpftimeError;
			expect(err.code).toBe('ENOENT');
			expect(err.message).toContain(join(dir, 'build', 'Release', 'bpftime_nothing.node'));
			expect(err.message).toContain(join(dir, 'build', 'Debug', 'bpftime_nothing.node'));
			expect(err.message).toContain('pnpm turbo run build --filter @bpftime/nothing');
		}
	});
});
