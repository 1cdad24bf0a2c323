import { describe, expect, it } from 'vitest';
import { FIELD_KEYS } from '../src/fields.js';
import { ProgType } from '../src/index.js';
import { native } from '../src/native.js';
import { emptyBtf, freshRegistry, returnImm } from './helpers.js';

// The binding's key lists come from native/include/bpftime/handlers/fields.hpp; the TypeScript ones
// (src/fields.ts) are checked against the descriptor interfaces at compile time.
describe('field lists: the TypeScript descriptor types and the native field lists agree', () => {
	it('knows the same handler kinds on both sides', () => {
		expect(Object.keys(native.fieldKeys).sort()).toEqual(Object.keys(FIELD_KEYS).sort());
	});

	it.each(Object.entries(FIELD_KEYS))('has the same descriptor and spec keys for %s', (kind, keys) => {
		const fromNative = native.fieldKeys[kind];
		expect(fromNative?.descriptor).toEqual([...keys.descriptor]);
		expect(fromNative?.spec).toEqual([...keys.spec]);
	});

	it('describes each kind with exactly the listed keys', () => {
		const { reg } = freshRegistry('fields_describe');
		reg.loadBtf(emptyBtf());
		const p = reg.loadProg({ type: ProgType.Kprobe, name: 'p', license: 'GPL', insns: returnImm(1) });
		const e = reg.createPerfEvent({ type: 'uprobe', path: '/bin/sh', offset: 16n });
		reg.createLink({ progId: p.id, targetId: e.id });
		const common = ['generation', 'id', 'kind'];
		for (const d of reg.list()) {
			const derived = d.kind === 'map' || d.kind === 'prog' ? ['typeName'] : [];
			expect(Object.keys(d).sort()).toEqual([...common, ...derived, ...FIELD_KEYS[d.kind].descriptor].sort());
		}
		expect(reg.list().map((d) => d.kind)).toEqual(['btf', 'prog', 'perf_event', 'link']);
	});
});
