import { type Backend, JSON_VERSION, MapFlags, MapType, ProgType, u32, u64 } from '@bpftime/handlers';
import { assemble } from '@bpftime/vm';
import { describe, expect, it } from 'vitest';
import { errorOf, freshRegistry, runChild, startChild, u32le, u64le, waitForLine } from './helpers.js';

// The kernel's errno values (include/uapi/asm-generic/errno-base.h).
const EPERM = 1;

/** bpf_map_update_elem(map, &(u32)0, &(u64)value, BPF_ANY); r0 = what it returned. */
const updateKey0 = (map: number, value: number) =>
	assemble(`
		r1 = 0
		*(u32 *)(r10 - 4) = r1
		r1 = ${value}
		*(u64 *)(r10 - 16) = r1
		r1 = map_by_fd(${map}) ll
		r2 = r10
		r2 += -4
		r3 = r10
		r3 += -16
		r4 = 0
		call 2
		exit`);

const frozenMessage = (name: string, id: number, op: string) =>
	new RegExp(`^map '${name}' \\(id ${id}\\): ${op}: EPERM \\(the map is frozen\\)$`);

describe('BPF_MAP_FREEZE', () => {
	it('refuses updates, deletes and batch writes from user space with EPERM naming the map; reads keep working', () => {
		const { reg } = freshRegistry('freeze_ops');
		const m = reg.createMap({ type: MapType.Hash, name: 'cfg', keySize: 4, valueSize: 8, maxEntries: 8 });
		const view = m.typed(u32, u64);
		view.set(1, 10n).set(2, 20n);
		expect(m.frozen).toBe(false);
		expect(reg.get(m.id)).toMatchObject({ kind: 'map', frozen: false });

		m.freeze();
		expect(m.frozen).toBe(true);
		expect(reg.get(m.id)).toMatchObject({ kind: 'map', frozen: true });
		const refused: [string, () => unknown][] = [
			['update', () => m.update(u32le(1), u64le(11n))],
			['update', () => m.update(u32le(3), u64le(30n))],
			['delete', () => m.delete(u32le(1))],
			['update batch', () => m.updateBatch(Buffer.concat([u32le(1), u32le(4)]), Buffer.concat([u64le(1n), u64le(4n)]))],
			['delete batch', () => m.deleteBatch(u32le(2))],
		];
		for (const [op, fn] of refused) {
			const e = errorOf(fn);
			expect(e.code).toBe('EPERM');
			expect(e.errno).toBe(EPERM);
			expect(e.message).toMatch(frozenMessage('cfg', m.id, op));
		}
		// Nothing changed, and every read works.
		expect(view.get(1)).toBe(10n);
		expect(view.has(3)).toBe(false);
		// A hash map's order depends on its seed: compare as a Map.
		expect(new Map(view.readAll())).toEqual(
			new Map([
				[1, 10n],
				[2, 20n],
			]),
		);
		expect(m.nextKey()).toBeDefined();
		expect(m.lookupBatch(undefined, 8).count).toBe(2);
	});

	it('refuses a writable view of a frozen BPF_F_MMAPABLE array (EPERM); one taken before keeps its values', () => {
		const { reg } = freshRegistry('freeze_mmap');
		const m = reg.createMap({
			type: MapType.Array,
			name: 'data',
			keySize: 4,
			valueSize: 8,
			maxEntries: 4,
			flags: MapFlags.Mmapable,
		});
		const before = m.mmap();
		before.writeBigUInt64LE(5n, 8);
		m.freeze();
		const e = errorOf(() => m.mmap());
		expect(e.code).toBe('EPERM');
		expect(e.message).toMatch(/^map 'data' \(id \d+\): mmap: EPERM \(the map is frozen/);
		expect(m.typed(u32, u64).get(1)).toBe(5n);
	});

	// The kernel's map_freeze() checks write permission first, and a frozen map has none: a second
	// freeze is EPERM there (the loader's registry test compares with the kernel itself).
	it('answers EPERM for a second freeze and for a BPF_F_RDONLY map, and EBADF for a released one', () => {
		const { reg } = freshRegistry('freeze_errors');
		const m = reg.createMap({ type: MapType.Array, name: 'once', keySize: 4, valueSize: 4, maxEntries: 1 });
		m.freeze();
		const again = errorOf(() => m.freeze());
		expect(again.code).toBe('EPERM');
		expect(again.message).toMatch(/^map 'once' \(id \d+\): freeze: EPERM \(already frozen\)$/);
		expect(m.frozen).toBe(true);

		const ro = reg.createMap({
			type: MapType.Array,
			name: 'ro',
			keySize: 4,
			valueSize: 4,
			maxEntries: 1,
			flags: MapFlags.Rdonly,
		});
		const perm = errorOf(() => ro.freeze());
		expect(perm.code).toBe('EPERM');
		expect(perm.message).toMatch(/^map 'ro' \(id \d+\): freeze: EPERM \(BPF_F_RDONLY map\)$/);
		expect(ro.frozen).toBe(false);

		const gone = reg.createMap({ type: MapType.Array, name: 'gone', keySize: 4, valueSize: 4, maxEntries: 1 });
		gone.release();
		expect(errorOf(() => reg.map(gone.id).freeze()).code).toBe('EBADF');
		expect(reg.list().map((d) => d.id)).toEqual([m.id, ro.id]);
	});

	it.each<Backend>(['interpreter', 'jit'])(
		'lets a program (%s) write a frozen map, unless the map was created with BPF_F_RDONLY_PROG',
		(backend) => {
			const { reg } = freshRegistry(`freeze_prog_${backend}`);
			const rw = reg.createMap({ type: MapType.Array, name: 'rw', keySize: 4, valueSize: 8, maxEntries: 1 });
			const rodata = reg.createMap({
				type: MapType.Array,
				name: 'rodata',
				keySize: 4,
				valueSize: 8,
				maxEntries: 1,
				flags: MapFlags.RdonlyProg,
			});
			rodata.update(u32le(0), u64le(3n));
			rw.freeze();
			rodata.freeze();
			const writeRw = reg.loadProg({ type: ProgType.Kprobe, name: 'write_rw', insns: updateKey0(rw.id, 42) });
			const writeRo = reg.loadProg({ type: ProgType.Kprobe, name: 'write_ro', insns: updateKey0(rodata.id, 42) });
			expect(writeRw.run(undefined, { backend })).toBe(0n);
			expect(rw.typed(u32, u64).get(0)).toBe(42n);
			expect(BigInt.asIntN(64, writeRo.run(undefined, { backend }))).toBe(BigInt(-EPERM));
			expect(rodata.typed(u32, u64).get(0)).toBe(3n);
			// User space still cannot write the map the program just wrote.
			expect(errorOf(() => rw.update(u32le(0), u64le(1n))).code).toBe('EPERM');
		},
	);

	it('is seen by another process: a map frozen by a child refuses writes here, and the other way round', async () => {
		const { reg, name } = freshRegistry('freeze_xproc');
		const a = reg.createMap({ type: MapType.Array, name: 'by_child', keySize: 4, valueSize: 8, maxEntries: 1 });
		const b = reg.createMap({ type: MapType.Array, name: 'by_parent', keySize: 4, valueSize: 8, maxEntries: 1 });

		const child = await runChild('freeze-child.mjs', ['freeze', name, String(a.id)]);
		expect(child.stderr).toBe('');
		expect(child.stdout.trim()).toBe('frozen true');
		expect(a.frozen).toBe(true);
		expect(reg.get(a.id)).toMatchObject({ frozen: true });
		expect(errorOf(() => a.update(u32le(0), u64le(1n))).message).toMatch(frozenMessage('by_child', a.id, 'update'));

		b.freeze();
		const probe = await runChild('freeze-child.mjs', ['probe', name, String(b.id)]);
		expect(probe.stderr).toBe('');
		expect(probe.stdout.trim().split('\n')).toEqual([
			'frozen true',
			`update EPERM map 'by_parent' (id ${b.id}): update: EPERM (the map is frozen)`,
			`freeze EPERM map 'by_parent' (id ${b.id}): freeze: EPERM (already frozen)`,
		]);
		expect(b.typed(u32, u64).get(0)).toBe(0n);
	});

	it('lets no write of another process land after a freeze that succeeded', async () => {
		const { reg, name } = freshRegistry('freeze_race');
		const m = reg.createMap({ type: MapType.Array, name: 'race', keySize: 4, valueSize: 8, maxEntries: 1 });
		const writer = startChild('freeze-child.mjs', ['write', name, String(m.id)]);
		let out = '';
		writer.stdout?.on('data', (d) => {
			out += d;
		});
		await waitForLine(writer, /^running$/);
		// A freeze that meets a write in progress fails with EBUSY and leaves the map writable; retry.
		for (;;) {
			try {
				m.freeze();
				break;
			} catch (e) {
				expect((e as { code?: string }).code).toBe('EBUSY');
			}
		}
		const atFreeze = m.typed(u32, u64).get(0);
		await new Promise((resolve) => writer.once('exit', resolve));
		const [word, code, last] = out.trim().split('\n').at(-1)?.split(' ') ?? [];
		expect([word, code]).toEqual(['stopped', 'EPERM']);
		expect(BigInt(last as string)).toBe(atFreeze);
		expect(m.typed(u32, u64).get(0)).toBe(atFreeze);
	});

	it('keeps the frozen flag through a JSON export and import, and refuses a document of the older version', () => {
		const { reg } = freshRegistry('freeze_json_src');
		const cold = reg.createMap({ type: MapType.Hash, name: 'cold', keySize: 4, valueSize: 8, maxEntries: 4 });
		const warm = reg.createMap({ type: MapType.Hash, name: 'warm', keySize: 4, valueSize: 8, maxEntries: 4 });
		cold.typed(u32, u64).set(7, 70n);
		warm.typed(u32, u64).set(8, 80n);
		cold.freeze();
		const text = reg.exportJson();
		const doc = JSON.parse(text);
		expect(doc.handlers.map((h: { name: string; frozen: boolean }) => [h.name, h.frozen])).toEqual([
			['cold', true],
			['warm', false],
		]);

		const { reg: copy } = freshRegistry('freeze_json_dst');
		copy.importJson(text);
		expect(copy.exportJson()).toBe(text);
		const c = copy.map(cold.id);
		expect(c.frozen).toBe(true);
		expect(c.typed(u32, u64).get(7)).toBe(70n);
		expect(errorOf(() => c.update(u32le(7), u64le(1n))).code).toBe('EPERM');
		expect(copy.map(warm.id).frozen).toBe(false);
		copy.map(warm.id).typed(u32, u64).set(9, 90n);

		// A document of the version before the frozen flag is refused, as any other version is.
		const older = { ...doc, version: JSON_VERSION - 1 };
		for (const h of older.handlers) delete h.frozen;
		const { reg: empty } = freshRegistry('freeze_json_old');
		const e = errorOf(() => empty.importJson(JSON.stringify(older)));
		expect(e.code).toBe('EPROTONOSUPPORT');
		expect(e.message).toMatch(`document version ${JSON_VERSION - 1}, this bpftime reads version ${JSON_VERSION}`);
		expect(empty.size).toBe(0);
		// A map without the flag in a document of this version is malformed.
		const { reg: strict } = freshRegistry('freeze_json_strict');
		const missing = JSON.parse(text);
		delete missing.handlers[0].frozen;
		const bad = errorOf(() => strict.importJson(JSON.stringify(missing)));
		expect(bad.code).toBe('EINVAL');
		expect(bad.message).toMatch(/frozen/);
		expect(strict.size).toBe(0);
	});
});
