import { describe, expect, it } from 'vitest';
import { JSON_VERSION, ProgType } from '../src/index.js';
import { errorOf, freshRegistry, returnImm } from './helpers.js';

/** A document with a program at id 0 and a link at id 1 whose `flags` and `cookie` are `link`, as text. */
function docWithLink(link: string): string {
	const { reg } = freshRegistry('json_reader_src');
	reg.loadProg({ type: ProgType.Kprobe, name: 'p', license: 'GPL', insns: returnImm(0) });
	const prog = JSON.parse(reg.exportJson()).handlers[0];
	return `{"format": "bpftime-registry", "version": ${JSON_VERSION}, "capacity": 6144, "handlers": [
${JSON.stringify(prog)},
{"id": 1, "kind": "link", "prog_id": 0, "target_id": null, "attach_type": 0, ${link}}]}`;
}

describe('JSON import: numbers and text', () => {
	it('keeps a u64 of 2^64 - 1 exact through a decimal string', () => {
		const { reg } = freshRegistry('json_reader_u64');
		reg.importJson(docWithLink('"flags": 0, "cookie": "18446744073709551615"'));
		expect(reg.get(1)).toMatchObject({ kind: 'link', cookie: 0xffffffffffffffffn });
	});

	it.each([
		['a u64 written as a JSON number', '"flags": 0, "cookie": 5', /cookie: wrong type/],
		[
			'a u64 past 2^64',
			'"flags": 0, "cookie": "18446744073709551616"',
			/cookie: '18446744073709551616' is not a decimal u64 string/,
		],
		['a u32 with a fraction', '"cookie": "0", "flags": 1.5', /flags: '1.5' is not an integer in \[0, 4294967295\]/],
		['a u32 with an exponent', '"cookie": "0", "flags": 1e0', /flags: '1.0' is not an integer/],
		['a u32 past 2^32', '"cookie": "0", "flags": 4294967296', /flags: '4294967296' is not an integer/],
		['a negative u32', '"cookie": "0", "flags": -1', /flags: '-1' is not an integer/],
	])('refuses %s with EINVAL naming the field', (_what, fields, message) => {
		const { reg } = freshRegistry('json_reader_bad');
		const e = errorOf(() => reg.importJson(docWithLink(fields)));
		expect(e.code).toBe('EINVAL');
		expect(e.message).toMatch(/^import: handler #1 \(id 1\): /);
		expect(e.message).toMatch(message);
		expect(reg.size).toBe(0);
	});

	it('refuses a document nested deeper than 64 levels, saying so', () => {
		const { reg } = freshRegistry('json_reader_deep');
		const e = errorOf(() => reg.importJson(`${'['.repeat(100000)}${']'.repeat(100000)}`));
		expect(e.code).toBe('EINVAL');
		expect(e.message).toBe('import: malformed JSON: nested more than 64 levels deep');
	});

	it('names the line and column of a syntax error', () => {
		const { reg } = freshRegistry('json_reader_syntax');
		const e = errorOf(() => reg.importJson('{\n  "format": "bpftime-registry",\n  "version": ,\n}'));
		expect(e.code).toBe('EINVAL');
		expect(e.message).toMatch(/^import: malformed JSON: line 3, column 14: /);
	});
});
