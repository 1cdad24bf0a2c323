// load() into the Linux kernel through bpf(2): the kernel's verifier and map
// code check what the loader asks for, and a load that fails half-way must
// leave no file descriptor behind.
import { execFileSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { BpfObject, BpftimeError, type LoadTarget } from '../src/index.js';
import { hasVmlinux, useFixtures, useKernelTarget } from './helpers.js';
import { type KernelTarget, RecordingTarget } from './targets.js';

const fx = useFixtures();
const needKernel = useKernelTarget(fx);

/** A target that forwards to another and refuses one operation with ENOSPC from its n-th call on, as a full registry would. */
function failing(
	inner: KernelTarget,
	op: 'loadBtf' | 'createMap' | 'loadProgram' | 'updateMap' | 'freezeMap',
	n: number,
): LoadTarget {
	let count = 0;
	// The target to forward `which` to, once counted (and refused at the n-th `op`).
	const via = (which: typeof op): KernelTarget => {
		if (which === op && ++count >= n)
			throw Object.assign(new Error(`injected failure of ${op} #${n}`), { code: 'ENOSPC' });
		return inner;
	};
	return {
		loadBtf: (d) => via('loadBtf').loadBtf(d),
		createMap: (r) => via('createMap').createMap(r),
		updateMap: (m, k, v) => via('updateMap').updateMap(m, k, v),
		freezeMap: (m) => via('freezeMap').freezeMap(m),
		loadProgram: (r) => via('loadProgram').loadProgram(r),
		createPerfEvent: (r) => inner.createPerfEvent(r),
		createLink: (r) => inner.createLink(r),
		release: (id) => inner.release(id),
	};
}

describe('load() into the kernel', () => {
	it.for(['maps', 'globals', 'subprogs', 'legacy', 'attach', 'core', 'strings', 'count'])(
		'loads every map and program of %s.bpf.o, which the verifier accepts',
		async (name, ctx) => {
			const k = needKernel(ctx);
			if (name === 'core' && !hasVmlinux) {
				console.log('skipped: no /sys/kernel/btf/vmlinux');
				ctx.skip();
			}
			const fds = await k.fdCount();
			const o = BpfObject.open(
				await fx.bpf(name, name === 'attach' || name === 'count' ? [`-DTARGET="${await fx.victim()}"`] : []),
			);
			let loaded: Awaited<ReturnType<BpfObject['load']>>;
			try {
				loaded = await o.load(k);
			} catch (e) {
				throw new Error(`${(e as Error).message}\n${k.lastLog}`);
			}
			expect([...loaded.maps.keys()]).toEqual(o.maps.map((m) => m.name));
			expect([...loaded.programs.keys()]).toEqual(o.programs.map((p) => p.name));
			// The BTF fd, map fds, program fds; the inner-map templates are closed already.
			expect(await k.fdCount()).toBe(fds + 1 + o.maps.length + o.programs.length);
			o.close();
			expect(await k.fdCount()).toBe(fds);
		},
	);

	it('puts the initial slots of a map-in-map into the kernel map', async (ctx) => {
		const k = needKernel(ctx);
		const o = BpfObject.open(await fx.bpf('maps'));
		const loaded = await o.load(k);
		const outer = loaded.maps.get('outer_array')?.id as number;
		const key = Buffer.alloc(4);
		// A lookup from user space of an array of maps returns the inner map's id (not fd): non-zero for slot 0.
		expect((await k.lookup(outer, key, 4)).readUInt32LE(0)).toBeGreaterThan(0);
		key.writeUInt32LE(1);
		expect((await k.lookup(outer, key, 4).catch((e) => e)).code).toBe('ENOENT');
		o.close();
	});

	it.for([
		['loadBtf', 1],
		['createMap', 1],
		['createMap', 5],
		['updateMap', 2],
		['freezeMap', 1],
		['loadProgram', 1],
		['loadProgram', 3],
	] as const)('releases everything it created when %s #%i fails, and names what failed', async ([op, n], ctx) => {
		const k = needKernel(ctx);
		const fds = await k.fdCount();
		const path = await fx.bpf(op === 'loadProgram' ? 'subprogs' : 'globals');
		const o = BpfObject.open(path);
		const err = await o.load(failing(k, op, n)).catch((e) => e);
		expect(err).toMatchObject({ name: 'BpftimeError', code: 'ENOSPC' });
		expect(err.message).toMatch(
			op === 'loadProgram'
				? /^prog '\w+': load: /
				: op === 'loadBtf'
					? /^object 'globals': BTF load: /
					: /^map '[\w.]+': /,
		);
		expect(o.loaded).toBeUndefined();
		expect(await k.fdCount()).toBe(fds);
		// The object is still usable: a second load into the kernel works.
		await o.load(k);
		o.close();
		expect(await k.fdCount()).toBe(fds);
	});

	it('passes on the verifier refusal of a program, as the kernel says it, and releases the maps', async (ctx) => {
		const k = needKernel(ctx);
		const fds = await k.fdCount();
		const o = BpfObject.open(await fx.bpf('attach', [`-DTARGET="${await fx.victim()}"`]));
		// Loading a tracepoint program as a socket filter is something the verifier decides on; a bogus type is refused outright.
		const bogus: LoadTarget = {
			...failing(k, 'createMap', Number.POSITIVE_INFINITY),
			loadProgram: (r) => k.loadProgram({ ...r, type: 999 }),
		};
		await expect(o.load(bogus)).rejects.toMatchObject({
			code: 'EINVAL',
			message: expect.stringMatching(/^prog 'up_func': load: kernel/),
		});
		expect(await k.fdCount()).toBe(fds);
	});
});

describe('load() bookkeeping', () => {
	it('loads only the programs asked for, and refuses unknown names before creating anything', async () => {
		const path = await fx.bpf('subprogs');
		const o = BpfObject.open(path);
		const t = new RecordingTarget();
		await expect(o.load(t, { programs: ['first', 'nope'] })).rejects.toMatchObject({ code: 'ENOENT' });
		expect(t.log).toEqual([]);
		const loaded = await o.load(t, { programs: ['second'] });
		expect([...loaded.programs.keys()]).toEqual(['second']);
		await expect(o.load(t)).rejects.toMatchObject({ code: 'EBUSY' });
		o.close();
		expect(t.live.size).toBe(0);
		await expect(o.load(t)).rejects.toMatchObject({ code: 'EBADF' });
	});

	it('hands the registry the map ids in every map lddw of a program, in first-use order', async () => {
		const o = BpfObject.open(await fx.bpf('globals'));
		const t = new RecordingTarget();
		const loaded = await o.load(t);
		const prog = t.log.find((r) => r.op === 'loadProgram');
		const req = prog?.op === 'loadProgram' ? prog.req : undefined;
		const ids = new Set(o.program('read_globals').mapReferences.map((r) => loaded.maps.get(r.map)?.id));
		expect(req?.mapIds).toEqual([...ids]);
		for (const r of o.program('read_globals').mapReferences) {
			const code = req?.instructions as Buffer;
			expect((code[r.insnIdx * 8 + 1] as number) >> 4).toBe(r.kind === 'fd' ? 1 : 2);
			expect(code.readInt32LE(r.insnIdx * 8 + 4)).toBe(loaded.maps.get(r.map)?.id);
			if (r.kind === 'value') expect(code.readInt32LE(r.insnIdx * 8 + 12)).toBe(r.offset);
		}
		expect(req).toMatchObject({ name: 'read_globals', license: 'GPL', type: 2, flags: 0 });
		o.close();
	});

	it('retries a map without BTF when the target refuses its BTF types, as libbpf does', async () => {
		const o = BpfObject.open(await fx.bpf('globals'));
		const t = new RecordingTarget();
		const picky: LoadTarget = {
			loadBtf: () => t.createPerfEvent({ kind: 'tracepoint', category: 'btf', name: 'btf', pid: -1 }),
			createMap: (r) => {
				if (r.btfValueTypeId !== 0) throw new BpftimeError('EINVAL', 'BTF types refused');
				return t.createMap(r);
			},
			updateMap: (m, k, v) => t.updateMap(m, k, v),
			freezeMap: (m) => t.freezeMap(m),
			loadProgram: (r) => t.loadProgram(r),
			createPerfEvent: (r) => t.createPerfEvent(r),
			createLink: (r) => t.createLink(r),
			release: (id) => t.release(id),
		};
		const loaded = await o.load(picky);
		expect(loaded.maps.size).toBe(o.maps.length);
		const creates = t.log.flatMap((r) => (r.op === 'createMap' ? [r.req] : []));
		expect(creates.every((r) => r.btfId === undefined && r.btfValueTypeId === 0)).toBe(true);
		// Programs still get the BTF, with func and line info.
		const prog = t.log.find((r) => r.op === 'loadProgram');
		expect(prog?.op === 'loadProgram' && prog.req.btfId).toBeGreaterThan(0);
		expect(prog?.op === 'loadProgram' && prog.req.funcInfo.length).toBe(8 * o.program('read_globals').funcInfo.length);
		expect(prog?.op === 'loadProgram' && prog.req.lineInfo.length).toBe(16 * o.program('read_globals').lineInfo.length);
		o.close();
		expect(t.live.size).toBe(0);
	});

	it('releases everything it can at close, then reports the release that failed', async () => {
		const o = BpfObject.open(await fx.bpf('subprogs'));
		const t = new RecordingTarget();
		const loaded = await o.load(t);
		const map = loaded.maps.get('out')?.id as number;
		t.busy.add(map);
		expect(() => o.close()).toThrow(
			expect.objectContaining({ code: 'EBUSY', message: expect.stringContaining(`release of id ${map}`) }),
		);
		expect([...t.live]).toEqual([map]);
	});

	it('marks programs of .s sections sleepable (BPF_F_SLEEPABLE)', async () => {
		const o = BpfObject.open(await fx.bpf('attach', [`-DTARGET="${await fx.victim()}"`]));
		const t = new RecordingTarget();
		await o.load(t, { programs: ['up_sleepable', 'up_func'] });
		const flags = t.log.flatMap((r) => (r.op === 'loadProgram' ? [[r.req.name, r.req.flags]] : []));
		expect(flags).toEqual([
			['up_func', 0],
			['up_sleepable', 1 << 4],
		]);
		o.close();
	});
});

describe('attach() in the kernel', () => {
	it('puts uprobes, uretprobes and USDT probes where the kernel hits them as often as the victim calls them', async (ctx) => {
		const k = needKernel(ctx);
		const victim = await fx.victim();
		const fds = await k.fdCount();
		const o = BpfObject.open(await fx.bpf('count', [`-DTARGET="${victim}"`]));
		const loaded = await o.load(k);
		const links = await o.attachAll();
		expect(links.map((l) => [l.program, l.linkIds.length])).toEqual([
			['on_add', 1],
			['on_loop_return', 1],
			['on_tick', 2],
			['on_tock', 1],
		]);
		// victim.c with no arguments: target_loop(4) calls target_add 4 times; tick fires in
		// target_add and once per iteration (8), tock once per iteration (4).
		const out = execFileSync(victim, [], { encoding: 'utf8' });
		expect(out.trim()).toBe('6');
		const hits = loaded.maps.get('hits')?.id as number;
		const count = async (key: number) => {
			const kb = Buffer.alloc(4);
			kb.writeUInt32LE(key);
			return (await k.lookup(hits, kb, 8)).readBigUInt64LE(0);
		};
		expect([await count(0), await count(1), await count(2), await count(3)]).toEqual([4n, 1n, 8n, 4n]);
		for (const l of links) l.close();
		o.close();
		expect(await k.fdCount()).toBe(fds);
	});
});
