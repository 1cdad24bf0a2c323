import { MapFlags, MapType, ProgType, type Registry, u32, u64 } from '@bpftime/handlers';
import { damagedCopies, importOrRefuse } from '@bpftime/test-support';
import { assemble } from '@bpftime/vm';
import { describe, expect, it } from 'vitest';
import { bumpSource } from './fixtures/programs.mjs';
import { errorOf, freshRegistry, u32le } from './helpers.js';

/** Everything the registry holds, map contents included, without generations. */
function snapshot(reg: Registry) {
	return reg.list().map(({ generation: _g, ...d }) => ({
		...d,
		entries:
			d.kind === 'map'
				? [...reg.map(d.id).entries()].map(([k, v]) => [k.toString('hex'), v.toString('hex')]).sort(byKey)
				: [],
	}));
}

const byKey = (a: string[], b: string[]) => ((a[0] as string) < (b[0] as string) ? -1 : 1);

/** An exported document with each map's entries in key order (a hash map's order depends on its seed). */
function normalized(text: string) {
	const doc = JSON.parse(text);
	for (const h of doc.handlers) if (h.entries) h.entries.sort(byKey);
	return doc;
}

function populate(reg: Registry) {
	const counts = reg.createMap({ type: MapType.Hash, name: 'counts', keySize: 4, valueSize: 8, maxEntries: 512 });
	const totals = reg.createMap({ type: MapType.Array, name: 'totals', keySize: 4, valueSize: 8, maxEntries: 1 });
	const wide = reg.createMap(
		{ type: MapType.Hash, name: 'wide', keySize: 12, valueSize: 20, maxEntries: 64, flags: MapFlags.NoPrealloc },
		{ id: 10 },
	);
	reg.createMap({
		type: MapType.Array,
		name: 'mm',
		keySize: 4,
		valueSize: 4,
		maxEntries: 16,
		flags: MapFlags.Mmapable,
	});
	const c = counts.typed(u32, u64);
	for (let i = 0; i < 300; i++) c.set(i * 7, 0xffffffffffffff00n + BigInt(i % 256));
	totals.typed(u32, u64).set(0, 12345678901234567890n);
	for (let i = 0; i < 20; i++) wide.update(Buffer.alloc(12, i), Buffer.alloc(20, 255 - i));
	const prog = reg.loadProg({
		type: ProgType.Kprobe,
		name: 'bump',
		license: 'GPL',
		insns: assemble(bumpSource(counts.id, totals.id)),
	});
	return { prog };
}

describe('JSON export and import of maps', () => {
	it('round-trips maps with every entry and a program that uses them, losslessly', () => {
		const { reg } = freshRegistry('json_maps_src');
		populate(reg);
		const text = reg.exportJson();
		const { reg: copy } = freshRegistry('json_maps_dst');
		copy.importJson(text);
		expect(snapshot(copy)).toEqual(snapshot(reg));
		expect(normalized(copy.exportJson())).toEqual(normalized(text));
		// The imported program runs against the imported maps.
		const prog = copy.prog(copy.list().find((d) => d.kind === 'prog')?.id as number);
		expect(prog.run(u32le(7))).toBe(0n);
		expect(copy.mapByName('counts').typed(u32, u64).get(7)).toBe(0xffffffffffffff02n);
		expect(reg.mapByName('counts').typed(u32, u64).get(7)).toBe(0xffffffffffffff01n);
	});

	it.each([
		[
			'an entry whose key has the wrong size',
			(h: { name?: string; entries?: string[][] }) =>
				h.name === 'counts' ? { ...h, entries: [...(h.entries ?? []), ['0102', '0000000000000000']] } : h,
		],
		[
			'more entries than max_entries',
			(h: { name?: string; entries?: string[][] }) =>
				h.name === 'wide'
					? {
							...h,
							entries: Array.from({ length: 65 }, (_, i) => [i.toString(16).padStart(24, '0'), '00'.repeat(20)]),
						}
					: h,
		],
		[
			'an array index past max_entries',
			(h: { name?: string; entries?: string[][] }) =>
				h.name === 'totals' ? { ...h, entries: [['05000000', '0000000000000000']] } : h,
		],
		[
			'a map type given by an unknown name',
			(h: { name?: string; type?: string }) => (h.name === 'mm' ? { ...h, type: 'BPF_MAP_TYPE_NOPE' } : h),
		],
	])('refuses a document with %s and leaves the registry empty', (_what, edit) => {
		const { reg } = freshRegistry('json_maps_bad_src');
		populate(reg);
		const doc = JSON.parse(reg.exportJson());
		doc.handlers = doc.handlers.map(edit);
		const { reg: copy } = freshRegistry('json_maps_bad_dst');
		const e = errorOf(() => copy.importJson(JSON.stringify(doc)));
		expect(['EINVAL', 'E2BIG']).toContain(e.code);
		expect(copy.size).toBe(0);
		// Nothing half-made stays behind: the same registry takes the good document afterwards.
		copy.importJson(reg.exportJson());
		expect(snapshot(copy)).toEqual(snapshot(reg));
	});

	it('either imports a damaged document with maps whole or refuses it and creates nothing', () => {
		const { reg } = freshRegistry('json_maps_fuzz_src');
		populate(reg);
		const text = reg.exportJson();
		const { reg: copy } = freshRegistry('json_maps_fuzz_dst', { sizeMb: 16 });
		const free = () => copy.list().length;
		let refused = 0;
		for (const damaged of damagedCopies(text, { seed: 11, rounds: 120, alphabet: '{}[],:"0-9af' })) {
			if (!importOrRefuse(copy, damaged, free)) {
				refused++;
				continue;
			}
			for (const d of copy.list().reverse()) copy.release(d.id);
		}
		expect(refused).toBeGreaterThan(60);
		// Nothing leaked: the original still imports into the same segment.
		copy.importJson(text);
		expect(snapshot(copy)).toEqual(snapshot(reg));
	});
});

describe('JSON export and import of the id-valued types', () => {
	it('round-trips a prog array and maps of maps with their ids, and the imported tail call runs', () => {
		const { reg } = freshRegistry('json_fd_src');
		const jmp = reg.createMap({ type: MapType.ProgArray, name: 'jmp', keySize: 4, valueSize: 4, maxEntries: 4 });
		const target = reg.loadProg({ type: ProgType.Kprobe, name: 'target', insns: assemble('r0 = 5\nexit') });
		const caller = reg.loadProg({
			type: ProgType.Kprobe,
			name: 'caller',
			insns: assemble(`r2 = map_by_fd(${jmp.id}) ll\nr3 = 1\ncall 12\nr0 = 1\nexit`),
		});
		jmp.update(u32le(1), u32le(target.id));
		const inner = { type: MapType.Array, name: 'in', keySize: 4, valueSize: 8, maxEntries: 2 };
		const t = reg.createMap(inner);
		const a = reg.createMap({ ...inner, name: 'a' });
		const hom = reg.createMap({
			type: MapType.HashOfMaps,
			name: 'hom',
			keySize: 4,
			valueSize: 4,
			maxEntries: 4,
			innerMapId: t.id,
		});
		hom.update(u32le(42), u32le(a.id));
		const text = reg.exportJson();
		const { reg: copy } = freshRegistry('json_fd_dst');
		copy.importJson(text);
		expect(normalized(copy.exportJson())).toEqual(normalized(text));
		expect(copy.mapByName('jmp').lookup(u32le(1))?.readUInt32LE(0)).toBe(target.id);
		expect(copy.mapByName('hom').lookup(u32le(42))?.readUInt32LE(0)).toBe(a.id);
		expect(copy.prog(caller.id).run(undefined, { backend: 'jit' })).toBe(5n);
		// The imported arrays still hold their objects.
		expect(errorOf(() => copy.release(target.id)).code).toBe('EBUSY');
	});
});
