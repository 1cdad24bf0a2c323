import { MapFlags, MapType, ProgType, UpdateFlags } from '@bpftime/handlers';
import { assemble } from '@bpftime/vm';
import { describe, expect, it } from 'vitest';
import { errorOf, freshRegistry, runChild, u32le, u64le } from './helpers.js';

const inner = { type: MapType.Array, name: 'inner', keySize: 4, valueSize: 8, maxEntries: 4 };

describe.each([
	['BPF_MAP_TYPE_ARRAY_OF_MAPS', MapType.ArrayOfMaps],
	['BPF_MAP_TYPE_HASH_OF_MAPS', MapType.HashOfMaps],
])('%s', (typeName, type) => {
	const outerSpec = (innerMapId: number) => ({
		type,
		name: 'outer',
		keySize: 4,
		valueSize: 4,
		maxEntries: 8,
		innerMapId,
	});

	it('stores map ids that match the inner map template and answers lookups with them', () => {
		const { reg } = freshRegistry(`mim_ok_${type}`);
		const template = reg.createMap(inner);
		const outer = reg.createMap(outerSpec(template.id));
		expect(outer.typeName).toBe(typeName);
		const a = reg.createMap({ ...inner, name: 'a' });
		const b = reg.createMap({ ...inner, name: 'b' });
		outer.update(u32le(1), u32le(a.id));
		outer.update(u32le(2), u32le(b.id));
		expect(outer.lookup(u32le(1))?.readUInt32LE(0)).toBe(a.id);
		expect(outer.lookup(u32le(2))?.readUInt32LE(0)).toBe(b.id);
		expect(outer.lookup(u32le(3))).toBeUndefined();
		outer.update(u32le(1), u32le(b.id));
		expect(outer.lookup(u32le(1))?.readUInt32LE(0)).toBe(b.id);
		expect(outer.delete(u32le(1))).toBe(true);
		expect(outer.delete(u32le(1))).toBe(false);
		// A map held by a map-in-map cannot go.
		expect(errorOf(() => b.release()).code).toBe('EBUSY');
		expect(outer.delete(u32le(2))).toBe(true);
		b.release();
	});

	it.each([
		['another type', { type: MapType.Hash }],
		['another value size', { valueSize: 16 }],
		['other map_flags', { flags: MapFlags.RdonlyProg }],
		['an array of another max_entries', { maxEntries: 5 }],
	])('refuses an inner map of %s with EINVAL (bpf_map_meta_equal)', (_, change) => {
		const { reg } = freshRegistry(`mim_meta_${type}`);
		const outer = reg.createMap(outerSpec(reg.createMap(inner).id));
		const other = reg.createMap({ ...inner, name: 'other', ...change });
		const e = errorOf(() => outer.update(u32le(0), u32le(other.id)));
		expect([e.code, e.errno]).toEqual(['EINVAL', 22]);
		expect(e.message).toMatch(/map 'outer'.*update/);
		expect(outer.lookup(u32le(0))).toBeUndefined();
	});

	it('takes arrays of any max_entries when the template has BPF_F_INNER_MAP', () => {
		const { reg } = freshRegistry(`mim_inner_flag_${type}`);
		const template = reg.createMap({ ...inner, flags: MapFlags.InnerMap });
		const outer = reg.createMap(outerSpec(template.id));
		const big = reg.createMap({ ...inner, name: 'big', maxEntries: 100, flags: MapFlags.InnerMap });
		outer.update(u32le(0), u32le(big.id));
		expect(outer.lookup(u32le(0))?.readUInt32LE(0)).toBe(big.id);
	});

	it('refuses a missing inner map, a map-in-map as inner map, a prog id and a non-4-byte value', () => {
		const { reg } = freshRegistry(`mim_create_${type}`);
		const noInner = errorOf(() => reg.createMap({ type, name: 'outer', keySize: 4, valueSize: 4, maxEntries: 8 }));
		expect([noInner.code, noInner.message]).toEqual(['EINVAL', expect.stringMatching(/inner_map_fd/)]);
		const template = reg.createMap(inner);
		const outer = reg.createMap(outerSpec(template.id));
		const nested = errorOf(() => reg.createMap({ ...outerSpec(outer.id), name: 'nested' }));
		expect([nested.code, nested.message]).toEqual(['EINVAL', expect.stringMatching(/one level/)]);
		const wide = errorOf(() => reg.createMap({ ...outerSpec(template.id), valueSize: 8 }));
		expect(wide.code).toBe('EINVAL');
		const p = reg.loadProg({ type: ProgType.Kprobe, name: 'p', insns: assemble('r0 = 0\nexit') });
		expect(errorOf(() => outer.update(u32le(0), u32le(p.id))).code).toBe('EINVAL');
		expect(errorOf(() => outer.update(u32le(0), u32le(12345))).code).toBe('EBADF');
	});

	it('sees an inner map another process stores', async () => {
		const { reg, name } = freshRegistry(`mim_xproc_${type}`);
		const template = reg.createMap(inner);
		const outer = reg.createMap(outerSpec(template.id));
		const a = reg.createMap({ ...inner, name: 'a' });
		a.update(u32le(3), u64le(77n));
		const child = await runChild('fd-child.mjs', ['set', name, String(outer.id), '5', String(a.id)]);
		expect(child.stdout.trim()).toBe('set');
		expect(outer.lookup(u32le(5))?.readUInt32LE(0)).toBe(a.id);
	});
});

describe('BPF_MAP_TYPE_ARRAY_OF_MAPS flags', () => {
	it('answers BPF_NOEXIST with EINVAL, as every fd array (BPF_ANY only)', () => {
		const { reg } = freshRegistry('aom_flags');
		const template = reg.createMap(inner);
		const outer = reg.createMap({
			type: MapType.ArrayOfMaps,
			name: 'outer',
			keySize: 4,
			valueSize: 4,
			maxEntries: 2,
			innerMapId: template.id,
		});
		const a = reg.createMap({ ...inner, name: 'a' });
		expect(errorOf(() => outer.update(u32le(0), u32le(a.id), UpdateFlags.NoExist)).code).toBe('EINVAL');
		expect(errorOf(() => outer.update(u32le(2), u32le(a.id))).code).toBe('E2BIG');
	});
});
