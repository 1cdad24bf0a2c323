// The output helpers of the registry commands, in this process: histogram
// rows as bpftrace writes them, and exact 64-bit numbers in --json.
import { describe, expect, it } from 'vitest';
import { drawHist } from '../src/format/hist.js';
import { jsonText } from '../src/format/json.js';

describe('drawHist', () => {
	it('prints nothing when every bucket is empty, as bpftrace prints no rows', () => {
		expect(drawHist([0n, 0n, 0n], { kind: 'log2' })).toBe('');
	});

	it.each([
		[9, '[512, 1K)'],
		[10, '[1K, 2K)'],
		[19, '[512K, 1M)'],
		[20, '[1M, 2M)'],
		[30, '[1G, 2G)'],
		[40, '[1T, 2T)'],
		[63, '[8E, 16E)'],
	])('labels log2 bucket %i %s, with the K/M/G/T/P/E suffixes of hist()', (bucket, label) => {
		const counts = new Array<bigint>(bucket + 1).fill(0n);
		counts[bucket] = 1n;
		expect(drawHist(counts, { kind: 'log2' })).toBe(`${label.padEnd(16)}       1 |${'@'.repeat(52)}|\n`);
	});

	it('labels linear buckets in K and M only where a bound is a whole multiple, as lhist()', () => {
		const rows = drawHist([1n, 1n, 1n], { kind: 'linear', min: 1024n * 1023n, step: 1024n }).split('\n');
		expect(rows.map((r) => r.slice(0, 16).trimEnd())).toEqual(['[1023K, 1M)', '[1M, 1025K)', '[1025K, 1026K)', '']);
		expect(drawHist([2n], { kind: 'linear', min: -5n, step: 3n })).toBe(
			`${'[-5, -2)'.padEnd(16)}       2 |${'@'.repeat(52)}|\n`,
		);
	});

	it('rounds bars down, as int(count / max * 52)', () => {
		const [small, big] = drawHist([1n, 3n], { kind: 'log2' }).split('\n');
		expect(small).toBe(`[0, 2)                 1 |${'@'.repeat(17).padEnd(52)}|`);
		expect(big).toBe(`[2, 4)                 3 |${'@'.repeat(52)}|`);
	});

	it('counts past 2^53 exactly', () => {
		expect(drawHist([2n ** 64n - 1n], { kind: 'log2' })).toBe(
			`[0, 2)          18446744073709551615 |${'@'.repeat(52)}|\n`,
		);
	});
});

describe('jsonText', () => {
	it('writes bigints as exact JSON numbers and leaves undefined fields out', () => {
		expect(jsonText({ a: 2n ** 64n - 1n, b: undefined, c: [-1n, 'x'], d: {} })).toBe(
			'{\n  "a": 18446744073709551615,\n  "c": [\n    -1,\n    "x"\n  ],\n  "d": {}\n}\n',
		);
	});
});
