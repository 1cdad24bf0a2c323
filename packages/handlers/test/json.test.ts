import { assemble } from '@bpftime/vm';
import { describe, expect, it } from 'vitest';
import { JSON_VERSION, ProgType, type Registry } from '../src/index.js';
import { damagedCopies, emptyBtf, errorOf, freshRegistry, importOrRefuse } from './helpers.js';

/** What the registry holds, without generations (a fresh registry starts them anew). */
const contents = (reg: Registry) => reg.list().map(({ generation: _g, ...rest }) => rest);

function populate(reg: Registry): void {
	reg.loadBtf(emptyBtf());
	const p = reg.loadProg(
		{ type: ProgType.Kprobe, name: 'probe', license: 'GPL', insns: assemble('r0 = 1\nexit'), kernVersion: 0x60100 },
		{ id: 3 },
	);
	const up = reg.createPerfEvent({
		type: 'uprobe',
		path: '/bin/sh',
		offset: 0xfffffffffffff000n,
		symbol: 'main',
		pid: 77,
		refCtrOffset: 8n,
	});
	reg.createPerfEvent({ type: 'syscall_tracepoint', syscallId: 59, exit: false });
	reg.createLink({ progId: p.id, targetId: up.id, attachType: 41, cookie: 0xffffffffffffffffn }, { id: 9 });
}

/** An edit of an exported document: every handler of `kind` with `fields` laid over it. */
const withHandlersOf = (kind: string, fields: Record<string, unknown>) => (d: { handlers: { kind: string }[] }) => ({
	...d,
	handlers: d.handlers.map((h) => (h.kind === kind ? { ...h, ...fields } : h)),
});

describe('JSON export and import', () => {
	it('round-trips every handler with its id, losslessly', () => {
		const { reg } = freshRegistry('json_src');
		populate(reg);
		const text = reg.exportJson();
		const doc = JSON.parse(text);
		expect(doc).toMatchObject({ format: 'bpftime-registry', version: JSON_VERSION });
		expect(doc.handlers.map((h: { id: number }) => h.id)).toEqual([0, 1, 2, 3, 9]);

		const { reg: copy } = freshRegistry('json_dst');
		copy.importJson(text);
		expect(contents(copy)).toEqual(contents(reg));
		expect(copy.exportJson()).toBe(text);
		expect(copy.prog(3).run()).toBe(1n);
	});

	it.each([
		['another version', (d: Record<string, unknown>) => ({ ...d, version: JSON_VERSION + 1 }), 'EPROTONOSUPPORT'],
		['another format', (d: Record<string, unknown>) => ({ ...d, format: 'something-else' }), 'EINVAL'],
		[
			'a handler of an unknown kind',
			(d: Record<string, unknown>) => ({ ...d, handlers: [...(d.handlers as object[]), { id: 20, kind: 'socket' }] }),
			'EINVAL',
		],
		['a perf event of an unknown type', withHandlersOf('perf_event', { type: 'kprobe' }), 'EINVAL'],
		[
			'a link to a program the document lacks',
			(d: { handlers: { kind: string }[] }) => ({ ...d, handlers: d.handlers.filter((h) => h.kind !== 'prog') }),
			'EBADF',
		],
		['instructions that are not hex', withHandlersOf('prog', { insns: 'zz' }), 'EINVAL'],
		['a negative capacity', (d: Record<string, unknown>) => ({ ...d, capacity: -1 }), 'EINVAL'],
		['a capacity of 0', (d: Record<string, unknown>) => ({ ...d, capacity: 0 }), 'EINVAL'],
		['an absurd capacity', (d: Record<string, unknown>) => ({ ...d, capacity: 2 ** 32 + 5 }), 'EINVAL'],
		['a capacity above 2^20', (d: Record<string, unknown>) => ({ ...d, capacity: 2 ** 20 + 1 }), 'EINVAL'],
		[
			'two handlers with one id',
			(d: { handlers: { id: number }[] }) => ({ ...d, handlers: [...d.handlers, { ...d.handlers[0], id: 0 }] }),
			'EINVAL',
		],
	])('refuses a document of %s and creates nothing', (_what, edit, code) => {
		const { reg } = freshRegistry('json_bad_src');
		populate(reg);
		// biome-ignore lint/suspicious/noExplicitAny: the edits reshape arbitrary JSON
		const text = JSON.stringify(edit(JSON.parse(reg.exportJson()) as any));
		const { reg: copy } = freshRegistry('json_bad_dst');
		const e = errorOf(() => copy.importJson(text));
		expect(e.code).toBe(code);
		expect(copy.size).toBe(0);
		expect(copy.list()).toEqual([]);
	});

	it.each([
		[
			'a name given twice at the top',
			'{"format": "bpftime-registry", "format": "x", "version": 1, "handlers": []}',
			'format',
		],
		[
			'a name given twice in a handler',
			'{"format": "bpftime-registry", "version": 1, "handlers": [{"id": 0, "id": 1, "kind": "btf", "data": ""}]}',
			'id',
		],
	])('refuses a document with %s (EINVAL naming it) and creates nothing', (_what, text, name) => {
		const { reg } = freshRegistry('json_dup');
		const e = errorOf(() => reg.importJson(text));
		expect(e.code).toBe('EINVAL');
		expect(e.message).toContain(`the name "${name}" appears twice in one object`);
		expect(reg.size).toBe(0);
	});

	it.each([
		['not JSON at all', 'this is not json', /line 1/],
		['a truncated document', '{"format": "bpftime-registry", "version": 1, "handlers": [', /./],
		['an array instead of an object', '[]', /./],
	])('refuses %s with EINVAL and the reason', (_what, text, message) => {
		const { reg } = freshRegistry('json_malformed');
		const e = errorOf(() => reg.importJson(text));
		expect(e.code).toBe('EINVAL');
		expect(e.message).toMatch(message);
		expect(reg.size).toBe(0);
	});

	it('either imports a damaged document whole or refuses it and creates nothing', () => {
		const { reg } = freshRegistry('json_fuzz_src');
		populate(reg);
		const text = reg.exportJson();
		const { reg: copy } = freshRegistry('json_fuzz_dst');
		let refused = 0;
		// Truncated, or a few characters overwritten with JSON punctuation, digits or letters.
		for (const damaged of damagedCopies(text, { seed: 7, rounds: 300, alphabet: '{}[],:"0-9aZ' })) {
			if (!importOrRefuse(copy, damaged, () => copy.size)) {
				refused++;
				continue;
			}
			// A damage that still reads as a valid document was imported whole; start again.
			for (const d of copy.list().reverse()) copy.release(d.id);
		}
		expect(refused).toBeGreaterThan(250);
	});

	it('refuses to import into a registry that holds handlers (ENOTEMPTY) and keeps them', () => {
		const { reg } = freshRegistry('json_full');
		populate(reg);
		const before = contents(reg);
		const e = errorOf(() => reg.importJson(reg.exportJson()));
		expect(e.code).toBe('ENOTEMPTY');
		expect(contents(reg)).toEqual(before);
	});
});
