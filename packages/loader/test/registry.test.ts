// End to end: objects loaded into a real registry of @bpftime/handlers in a
// real shared-memory segment, programs run by its VM, maps read back.
import '@bpftime/maps-userspace';
import { existsSync } from 'node:fs';
import { MapType, Registry } from '@bpftime/handlers';
import { Segment } from '@bpftime/shm';
import { beforeAll, describe, expect, it, onTestFinished } from 'vitest';
import { BpfObject, registryTarget } from '../src/index.js';
import { bpfAllowed, useFixtures } from './helpers.js';
import { KernelTarget } from './targets.js';

const fx = useFixtures();
let count = 0;

/** A fresh segment and registry, both removed when the test ends. */
function freshRegistry(): Registry {
	const name = `bpftime_loader_test_${process.pid}_${count++}`;
	const seg = Segment.create({ name, sizeMb: 16 });
	const reg = Registry.create(seg);
	onTestFinished(() => {
		reg.close();
		seg.close();
		if (existsSync(`/dev/shm/${name}`)) Segment.remove({ name });
	});
	return reg;
}

const u32 = (n: number) => {
	const b = Buffer.alloc(4);
	b.writeUInt32LE(n);
	return b;
};

let globals: string;
let subprogs: string;
let legacy: string;
let maps: string;

beforeAll(async () => {
	[globals, subprogs, legacy, maps] = await Promise.all([
		fx.bpf('globals'),
		fx.bpf('subprogs'),
		fx.bpf('legacy'),
		fx.bpf('maps'),
	]);
});

describe('load(registry)', () => {
	it('creates the maps with their attributes and initial values, and the programs with their instructions', async () => {
		const reg = freshRegistry();
		const o = BpfObject.open(globals);
		o.setRodata('target_pid', 1000);
		const loaded = await o.load(reg);
		for (const m of o.maps) {
			const id = loaded.maps.get(m.name)?.id as number;
			const d = reg.get(id);
			expect(d).toMatchObject({
				kind: 'map',
				name: m.kernelName,
				type: MapType.Array,
				keySize: 4,
				valueSize: m.valueSize,
				maxEntries: m.maxEntries,
				flags: m.flags,
			});
			if (m.contents) expect(reg.map(id).lookup(u32(0))?.equals(m.contents)).toBe(true);
		}
		const prog = reg.get(loaded.programs.get('read_globals')?.id as number);
		expect(prog).toMatchObject({ kind: 'prog', name: 'read_globals', type: 2, license: 'GPL' });
		expect(prog?.kind === 'prog' && prog.insns.length).toBe(o.program('read_globals').instructions.length);
		// Every map the program reads is bound to it.
		expect(prog?.kind === 'prog' && prog.mapIds).toEqual(
			[...new Set(o.maps.map((m) => loaded.maps.get(m.name)?.id))].sort((a, b) => (a as number) - (b as number)),
		);
		o.close();
		expect(reg.list()).toEqual([]);
	});

	it('runs a program that reads every section of global data, and sees its writes in the maps', async () => {
		const reg = freshRegistry();
		const o = BpfObject.open(globals);
		o.setRodata('target_pid', 1000);
		const loaded = await o.load(reg);
		reg.prog(loaded.programs.get('read_globals')?.id as number).run(Buffer.alloc(168));
		// From globals.bpf.c: 42 + 5 + 1000 + (-3) + 0 + 'i' + 1000 + 0 + 8 + 2^40 + 'h' + 0, then + 's' from the literal.
		const want = 42n + 5n + 1000n - 3n + 105n + 1000n + 8n + (1n << 40n) + 104n + 115n;
		const results = reg.map(loaded.maps.get('results')?.id as number);
		expect(results.lookup(u32(0))?.readBigUInt64LE(0)).toBe(want);
		const bss = reg.map(loaded.maps.get('globals.bss')?.id as number).lookup(u32(0)) as Buffer;
		expect(bss.readBigUInt64LE(0)).toBe(1n); // hits++
		const data = reg.map(loaded.maps.get('globals.data')?.id as number).lookup(u32(0)) as Buffer;
		expect(data.readInt32LE(4)).toBe(6); // hidden_counter++
		o.close();
	});

	it('freezes each .rodata map in the registry after load, as libbpf does, and leaves the writable maps writable', async () => {
		const reg = freshRegistry();
		const o = BpfObject.open(globals);
		o.setRodata('target_pid', 1000);
		const loaded = await o.load(reg);
		const frozen = o.maps.map((m) => {
			const id = loaded.maps.get(m.name)?.id as number;
			const d = reg.get(id);
			return [m.name, m.kind, d?.kind === 'map' && d.frozen, reg.map(id).frozen];
		});
		const want = (m: { kind: string }) => m.kind === 'rodata';
		expect(frozen).toEqual(o.maps.map((m) => [m.name, m.kind, want(m), want(m)]));
		// globals.bpf.c has two read-only sections: .rodata and .rodata.limits.
		expect(frozen.filter(([, kind]) => kind === 'rodata').map(([name]) => name)).toEqual([
			'globals.rodata',
			'.rodata.limits',
		]);
		expect(frozen.some(([, kind]) => kind === 'data')).toBe(true);

		// User space can no longer write .rodata (the value set before load stays); .data takes writes.
		const ro = reg.map(loaded.maps.get('globals.rodata')?.id as number);
		const before = ro.lookup(u32(0)) as Buffer;
		expect(() => ro.update(u32(0), Buffer.alloc(ro.valueSize))).toThrow(
			expect.objectContaining({
				code: 'EPERM',
				message: expect.stringMatching(/^map '[^']+' \(id \d+\): update: EPERM/),
			}),
		);
		expect(ro.lookup(u32(0))?.equals(before)).toBe(true);
		const data = reg.map(loaded.maps.get('globals.data')?.id as number);
		data.update(u32(0), Buffer.alloc(data.valueSize, 1));
		expect(data.lookup(u32(0))?.equals(Buffer.alloc(data.valueSize, 1))).toBe(true);

		// Then, on .rodata and .data: an update, a freeze, an update. The kernel's answers (map_freeze()
		// and map_update_elem() in kernel/bpf/syscall.c) are written here, and compared with the kernel's
		// own where bpf() is allowed.
		const outcome = async (fn: () => unknown) => {
			try {
				await fn();
				return 'ok';
			} catch (e) {
				return (e as { code?: string }).code;
			}
		};
		const sequence = async (
			id: number,
			valueSize: number,
			t: { update(id: number, k: Buffer, v: Buffer): unknown; freeze(id: number): unknown },
		) => [
			await outcome(() => t.update(id, u32(0), Buffer.alloc(valueSize))),
			await outcome(() => t.freeze(id)),
			await outcome(() => t.update(id, u32(0), Buffer.alloc(valueSize))),
		];
		const inRegistry = {
			update: (id: number, k: Buffer, v: Buffer) => reg.map(id).update(k, v),
			freeze: (id: number) => reg.map(id).freeze(),
		};
		const sections = ['globals.rodata', 'globals.data'];
		const bpftime = [];
		for (const name of sections) {
			const m = reg.map(loaded.maps.get(name)?.id as number);
			bpftime.push(await sequence(m.id, m.valueSize, inRegistry));
		}
		expect(bpftime).toEqual([
			// Already frozen: a second freeze is EPERM too (no write permission, map_get_sys_perms()).
			['EPERM', 'EPERM', 'EPERM'],
			['ok', 'ok', 'EPERM'],
		]);
		o.close();

		const allowed = await bpfAllowed(fx);
		if (!allowed.ok) {
			console.log(`comparison with the kernel skipped: ${allowed.why}`);
			return;
		}
		const kernel = new KernelTarget(await fx.host('kernel-target', ['-lbpf']));
		onTestFinished(() => kernel.close());
		const ko = BpfObject.open(globals);
		ko.setRodata('target_pid', 1000);
		const kl = await ko.load(kernel);
		const inKernel = {
			update: (id: number, k: Buffer, v: Buffer) => kernel.updateMap(id, k, v),
			freeze: (id: number) => kernel.freezeMap(id),
		};
		const kernelRows = [];
		for (const name of sections) {
			const valueSize = ko.maps.find((m) => m.name === name)?.valueSize as number;
			kernelRows.push(await sequence(kl.maps.get(name)?.id as number, valueSize, inKernel));
		}
		expect(bpftime).toEqual(kernelRows);
		ko.close();
	});

	it('runs programs with sub-programs, a bounded loop and a bpf_loop callback', async () => {
		const reg = freshRegistry();
		const o = BpfObject.open(subprogs);
		const loaded = await o.load(reg);
		const run = (name: string) => reg.prog(loaded.programs.get(name)?.id as number).run(Buffer.alloc(168));
		const out = reg.map(loaded.maps.get('out')?.id as number);
		const get = (k: number) => out.lookup(u32(k))?.readBigUInt64LE(0);
		// leaf(x) = 3x + 1; middle(x) = leaf(x) + leaf(x + 1); looped(n) = 0 + 1 + … + (n - 1), n < 16.
		run('first');
		expect(get(0)).toBe(17n); // middle(2) = 7 + 10
		const n = Buffer.alloc(8);
		n.writeBigUInt64LE(5n);
		out.update(u32(3), n);
		expect(run('second')).toBe(3n); // global_add(1, 2)
		expect(get(1)).toBe(10n + 4n); // looped(5) + leaf(1)
		run('third');
		expect(get(2)).toBe(28n + 11n); // bpf_loop sums 0..7, + middle(1)
		o.close();
		expect(reg.list()).toEqual([]);
	});

	it('loads legacy maps', async () => {
		const reg = freshRegistry();
		const o = BpfObject.open(legacy);
		const loaded = await o.load(reg);
		expect(reg.get(loaded.maps.get('legacy_hash')?.id as number)).toMatchObject({
			type: MapType.Hash,
			keySize: 4,
			valueSize: 8,
			maxEntries: 1024,
		});
		reg.prog(loaded.programs.get('count')?.id as number).run(Buffer.alloc(168));
		expect(
			reg
				.map(loaded.maps.get('legacy_hash')?.id as number)
				.lookup(u32(0))
				?.readBigUInt64LE(0),
		).toBe(1n);
		o.close();
	});

	it('leaves nothing in the registry, and keeps what was there, when a load fails half-way', async () => {
		const reg = freshRegistry();
		const keep = reg.createMap({ type: MapType.Hash, name: 'keep', keySize: 4, valueSize: 4, maxEntries: 4 });
		keep.update(u32(1), u32(2));
		const before = reg.list();
		// The third of maps.bpf.o's maps asks the registry for flags no map takes, which it refuses
		// (EINVAL), with its BTF and on the loader's retry without: creation stops there, after two
		// were made.
		const o = BpfObject.open(maps);
		const rt = registryTarget(reg);
		let made = 0;
		let bad: string | undefined;
		const createMap = (r: Parameters<typeof rt.createMap>[0]) => {
			if (++made === 3) bad = r.name;
			return rt.createMap(r.name === bad ? { ...r, flags: 0xffffffff } : r);
		};
		const err = await o.load({ ...rt, createMap }).catch((e) => e);
		expect(err).toMatchObject({ name: 'BpftimeError' });
		expect(err.message).toMatch(/^map '[\w.]+': create: /);
		expect(reg.list()).toEqual(before);
		expect(keep.lookup(u32(1))?.readUInt32LE(0)).toBe(2);
		// A program that fails to load rolls back the maps created before it.
		const g = BpfObject.open(globals);
		const t = registryTarget(reg);
		await expect(
			g.load({ ...t, loadProgram: () => reg.loadProg({ type: 2, insns: Buffer.alloc(3) }).id }),
		).rejects.toMatchObject({
			message: expect.stringMatching(/^prog 'read_globals': load: /),
		});
		expect(reg.list()).toEqual(before);
		o.close();
		g.close();
	});

	it('attaches uprobes and syscall tracepoints as perf events and links in the registry', async () => {
		const reg = freshRegistry();
		const victim = await fx.victim();
		const o = BpfObject.open(await fx.bpf('attach', [`-DTARGET="${victim}"`]));
		await o.load(reg, { programs: ['up_func', 'uret_func', 'tp_enter', 'tp_exit', 'raw_enter'] });
		const links = await o.attachAll();
		expect(links).toHaveLength(5);
		const events = reg.list().filter((d) => d.kind === 'perf_event');
		expect(events.map((e) => e.kind === 'perf_event' && [e.type, e.path, e.syscallId, e.syscallExit])).toEqual([
			['uprobe', victim, -1, false].map((x, i) => (i === 2 ? expect.any(Number) : x)),
			['uretprobe', victim, expect.any(Number), false],
			// openat is system call 257 on x86-64 (arch/x86/entry/syscalls/syscall_64.tbl).
			['syscall_tracepoint', '', 257, false],
			['syscall_tracepoint', '', 257, true],
			['syscall_tracepoint', '', -1, false],
		]);
		const linkDescs = reg.list().filter((d) => d.kind === 'link');
		expect(linkDescs).toHaveLength(5);
		for (const l of links) l.close();
		expect(reg.list().filter((d) => d.kind === 'link' || d.kind === 'perf_event')).toEqual([]);
		o.close();
		expect(reg.list()).toEqual([]);
	});
});
