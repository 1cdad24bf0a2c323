import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type BpfMap, MapType, ProgType, u32, u64 } from '@bpftime/handlers';
import { BpfObject } from '@bpftime/loader';
import { compileBpf, findClang, finished, run, startProcess, waitForLine } from '@bpftime/test-support';
import { assemble } from '@bpftime/vm';
import { describe, expect, it, onTestFinished } from 'vitest';
import { createKernelMap, describeKernelMap, KernelMapType, kernelMapId, openKernelMap } from '../src/index.js';
import { bpfUnavailable, errorOf, freshRegistry, u32le, u64le } from './helpers.js';

const noBpf = bpfUnavailable();
// The kernel-backed tests skip where bpf() is refused; say why once.
if (noBpf) console.log(`skipped: ${noBpf}`);
const MMAPABLE = 0x400;

/** bpftool's view of a kernel map without BTF: key and value as little-endian numbers. */
function bpftoolDump(id: number): Map<number, bigint> {
	const out = execFileSync('bpftool', ['-j', 'map', 'dump', 'id', String(id)], { encoding: 'utf8' });
	const rows = JSON.parse(out) as { key: string[]; value: string[] }[];
	const bytes = (h: string[]) => Buffer.from(h.map((x) => Number.parseInt(x, 16)));
	return new Map(rows.map((r) => [bytes(r.key).readUInt32LE(0), bytes(r.value).readBigUInt64LE(0)]));
}

/** key 0 += 1 by lookup, then update (a kernel hash value cannot be written in place from user space). */
function incrementKeyZero(mapId: number): string {
	return [
		'r6 = 1',
		'r1 = 0',
		'*(u32 *)(r10 - 4) = r1',
		`r1 = map_by_fd(${mapId}) ll`,
		'r2 = r10',
		'r2 += -4',
		'call 1',
		'if r0 == 0 goto +2',
		'r6 = *(u64 *)(r0 + 0)',
		'r6 += 1',
		'*(u64 *)(r10 - 16) = r6',
		`r1 = map_by_fd(${mapId}) ll`,
		'r2 = r10',
		'r2 += -4',
		'r3 = r10',
		'r3 += -16',
		'r4 = 0',
		'call 2',
		'r0 = 0',
		'exit',
	].join('\n');
}

describe.skipIf(noBpf !== '')('kernel-backed maps', () => {
	it('stores user-space updates in a kernel hash map that bpftool reads', () => {
		const { reg } = freshRegistry('khash');
		const m = createKernelMap(reg, {
			type: KernelMapType.Hash,
			name: 'khash',
			keySize: 4,
			valueSize: 8,
			maxEntries: 16,
		});
		const view = m.typed(u32, u64);
		view.set(7, 70n);
		view.set(9, 90n);
		expect(view.get(7)).toBe(70n);
		const id = kernelMapId(reg, m);
		expect(describeKernelMap(id)).toMatchObject({ kernelType: MapType.Hash, keySize: 4, valueSize: 8, maxEntries: 16 });
		expect(bpftoolDump(id)).toEqual(
			new Map([
				[7, 70n],
				[9, 90n],
			]),
		);
		m.delete(u32le(7));
		expect(view.get(7)).toBeUndefined();
		expect(new Map(view.entries())).toEqual(new Map([[9, 90n]]));
	});

	it('shares one kernel hash map between a kernel tracepoint program and a bpftime program', async (ctx) => {
		const clang = findClang();
		if (!clang) {
			console.log('skipped: no clang on PATH to build test/fixtures/count_getpid.bpf.c');
			ctx.skip();
			return;
		}
		const obj = join(tmpdir(), `count_getpid-${process.pid}.o`);
		await compileBpf(clang, new URL('./fixtures/count_getpid.bpf.c', import.meta.url).pathname, obj);
		onTestFinished(() => rmSync(obj, { force: true }));

		const { reg } = freshRegistry('kshare');
		const counts = createKernelMap(reg, {
			type: KernelMapType.Hash,
			name: 'counts',
			keySize: 4,
			valueSize: 8,
			maxEntries: 64,
		});
		const id = kernelMapId(reg, counts);

		// The kernel program, loaded by a libbpf tool with its map `counts` replaced by the registry's
		// kernel map, attached to sys_enter_getpid until the tool's stdin closes.
		const tool = join(tmpdir(), `attach_shared-${process.pid}`);
		await run('cc', ['-O1', '-o', tool, new URL('./fixtures/attach_shared.c', import.meta.url).pathname, '-lbpf']);
		onTestFinished(() => rmSync(tool, { force: true }));
		const loader = startProcess(tool, [obj, 'counts', String(id)], { stdio: ['pipe', 'pipe', 'pipe'] });
		await waitForLine(loader, 'attached');

		// A process calling getpid() 100 times, seen by the kernel program.
		const looper = join(tmpdir(), `getpid_loop-${process.pid}`);
		await run('cc', ['-O1', '-o', looper, new URL('./fixtures/getpid_loop.c', import.meta.url).pathname]);
		onTestFinished(() => rmSync(looper, { force: true }));
		const child = spawnSync(looper, ['100'], { encoding: 'utf8' });
		expect(child.status).toBe(0);
		const childPid = Number(child.stdout.trim());

		// The bpftime program, run 25 times in this process, counting under key 0.
		const prog = reg.loadProg({
			type: ProgType.Kprobe,
			name: 'inc0',
			license: 'GPL',
			insns: assemble(incrementKeyZero(counts.id)),
		});
		for (let i = 0; i < 25; i++) expect(prog.run(Buffer.alloc(8))).toBe(0n);

		const view = counts.typed(u32, u64);
		expect(view.get(0)).toBe(25n);
		// Its 100 calls and the one that printed its pid.
		expect(view.get(childPid)).toBe(101n);
		const dumped = bpftoolDump(id);
		expect(dumped.get(0)).toBe(25n);
		expect(dumped.get(childPid)).toBe(view.get(childPid));
		const done = finished(loader);
		loader.stdin?.end();
		expect((await done).code).toBe(0);
	});

	it('maps a BPF_F_MMAPABLE kernel array so program writes land in the kernel value', () => {
		const { reg } = freshRegistry('karr');
		const arr = createKernelMap(reg, {
			type: KernelMapType.Array,
			name: 'karr',
			keySize: 4,
			valueSize: 8,
			maxEntries: 4,
			flags: MMAPABLE,
		});
		const prog = reg.loadProg({
			type: ProgType.Kprobe,
			name: 'add3',
			license: 'GPL',
			insns: assemble(
				[
					'r1 = 2',
					'*(u32 *)(r10 - 4) = r1',
					`r1 = map_by_fd(${arr.id}) ll`,
					'r2 = r10',
					'r2 += -4',
					'call 1',
					'if r0 == 0 goto +2',
					'r1 = 3',
					'lock *(u64 *)(r0 + 0) += r1',
					'r0 = 0',
					'exit',
				].join('\n'),
			),
		});
		for (let i = 0; i < 5; i++) prog.run(Buffer.alloc(8));
		const view = arr.typed(u32, u64);
		expect(view.get(2)).toBe(15n);
		expect(bpftoolDump(kernelMapId(reg, arr)).get(2)).toBe(15n);
		// Node's mmap() view is the kernel's memory too.
		const mem = arr.mmap();
		expect(mem.readBigUInt64LE(2 * 8)).toBe(15n);
		mem.writeBigUInt64LE(99n, 3 * 8);
		expect(bpftoolDump(kernelMapId(reg, arr)).get(3)).toBe(99n);
		// The kernel's array semantics on the mmap path.
		expect(errorOf(() => arr.update(u32le(4), u64le(1n))).code).toBe('E2BIG');
		expect(errorOf(() => arr.update(u32le(1), u64le(1n), 1)).code).toBe('EEXIST');
		expect(errorOf(() => arr.delete(u32le(1))).code).toBe('EINVAL');
	});

	it('keeps a kernel per-CPU array whose CPU values a program updates and user space reads all at once', () => {
		const { reg } = freshRegistry('kpca');
		const pc = createKernelMap(reg, {
			type: KernelMapType.PercpuArray,
			name: 'kpca',
			keySize: 4,
			valueSize: 8,
			maxEntries: 2,
		});
		const cpus = pc.userValueSize / 8;
		expect(cpus).toBeGreaterThanOrEqual(1);
		// User space writes every CPU's value, as the kernel's bpf() takes it.
		const all = Buffer.alloc(pc.userValueSize);
		for (let c = 0; c < cpus; c++) all.writeBigUInt64LE(BigInt(100 * (c + 1)), c * 8);
		pc.update(u32le(0), all);
		// A program adds 1 to its CPU's value of key 0, five times; bpf_map_update_elem from a program
		// writes only that CPU's value.
		const prog = reg.loadProg({
			type: ProgType.Kprobe,
			name: 'pcinc',
			license: 'GPL',
			insns: assemble(incrementKeyZero(pc.id)),
		});
		for (let i = 0; i < 5; i++) prog.run(Buffer.alloc(8));
		const after = pc.lookup(u32le(0));
		if (!after) throw new Error('key 0 of a per-CPU array is absent');
		const values = Array.from({ length: cpus }, (_, c) => after.readBigUInt64LE(c * 8));
		// The runs may be on any CPU: each CPU's value grew by what ran there, 5 in all.
		const grown = values.map((v, c) => v - BigInt(100 * (c + 1)));
		expect(grown.every((g) => g >= 0n)).toBe(true);
		expect(grown.reduce((a, b) => a + b, 0n)).toBe(5n);
		// bpftool reads the kernel's map: per-CPU values, the same numbers.
		const out = execFileSync(
			'bpftool',
			['-j', 'map', 'lookup', 'id', String(kernelMapId(reg, pc)), 'key', '0', '0', '0', '0'],
			{
				encoding: 'utf8',
			},
		);
		const row = JSON.parse(out) as { values: { cpu: number; value: string[] }[] };
		const byCpu = row.values.map((v) => Buffer.from(v.value.map((x) => Number.parseInt(x, 16))).readBigUInt64LE(0));
		expect(byCpu).toEqual(values);
		// The kernel's array answers: past the end E2BIG, BPF_NOEXIST EEXIST, delete EINVAL.
		expect(errorOf(() => pc.update(u32le(2), all)).code).toBe('E2BIG');
		expect(errorOf(() => pc.update(u32le(1), all, 1)).code).toBe('EEXIST');
		expect(errorOf(() => pc.delete(u32le(1))).code).toBe('EINVAL');
	});

	it("exports a kernel map's entries to JSON and imports them into another registry, read through bpf()", () => {
		const { reg } = freshRegistry('kjson');
		const h = createKernelMap(reg, { type: KernelMapType.Hash, name: 'kh', keySize: 4, valueSize: 8, maxEntries: 8 });
		h.update(u32le(3), u64le(33n));
		h.update(u32le(4), u64le(44n));
		const text = reg.exportJson();
		const doc = JSON.parse(text) as { handlers: { kind: string; entries?: unknown[] }[] };
		expect(doc.handlers.find((x) => x.kind === 'map')?.entries).toHaveLength(2);
		// The document names the kernel map by its id: the import opens that map and writes the entries.
		const { reg: reg2 } = freshRegistry('kjson2');
		h.update(u32le(3), u64le(0n));
		reg2.importJson(text);
		const m2 = reg2.mapByName('kh');
		expect(m2 && kernelMapId(reg2, m2)).toBe(kernelMapId(reg, h));
		expect(new Map(m2?.typed(u32, u64).entries())).toEqual(
			new Map([
				[3, 33n],
				[4, 44n],
			]),
		);
		expect(bpftoolDump(kernelMapId(reg, h)).get(3)).toBe(33n);
	});

	// Each row runs on an mmapped array (answered by this package) and on a plain kernel array (answered
	// by the kernel's bpf()): the answers must agree.
	const arrayCases: [string, (m: BpfMap) => unknown][] = [
		['update of the last index', (m) => m.update(u32le(3), u64le(5n))],
		['update past the end', (m) => m.update(u32le(4), u64le(5n))],
		['update with BPF_NOEXIST', (m) => m.update(u32le(0), u64le(5n), 1)],
		['update with BPF_EXIST', (m) => m.update(u32le(1), u64le(6n), 2)],
		['update with BPF_F_LOCK', (m) => m.update(u32le(1), u64le(6n), 4)],
		['update with an unknown flag', (m) => m.update(u32le(1), u64le(6n), 8)],
		['lookup past the end', (m) => m.lookup(u32le(9))],
		['delete', (m) => m.delete(u32le(0))],
	];
	it.each(arrayCases)('answers %s on the mmap path as the kernel does', (_what, op) => {
		const { reg } = freshRegistry('kdiff');
		const spec = { type: KernelMapType.Array, keySize: 4, valueSize: 8, maxEntries: 4 };
		const mm = createKernelMap(reg, { ...spec, name: 'mm', flags: MMAPABLE });
		const plain = createKernelMap(reg, { ...spec, name: 'plain' });
		const answer = (m: BpfMap) => {
			try {
				const r = op(m);
				return { ok: r instanceof Buffer ? r.toString('hex') : r, values: [...m.typed(u32, u64).entries()] };
			} catch (e) {
				return { code: (e as { code?: string }).code, values: [...m.typed(u32, u64).entries()] };
			}
		};
		expect(answer(mm)).toEqual(answer(plain));
	});

	it('refuses, as the kernel does, a program that stores into a BPF_F_RDONLY_PROG array', () => {
		const { reg } = freshRegistry('krdonly');
		const ro = createKernelMap(reg, {
			type: KernelMapType.Array,
			name: 'ro',
			keySize: 4,
			valueSize: 8,
			maxEntries: 2,
			flags: MMAPABLE | 0x80, // BPF_F_RDONLY_PROG
		});
		ro.typed(u32, u64).set(0, 41n);
		// A store through the looked-up pointer: the kernel's verifier refuses it, and so does ours.
		const load = () =>
			reg.loadProg({
				type: ProgType.Kprobe,
				name: 'poke',
				license: 'GPL',
				insns: assemble(
					[
						'r1 = 0',
						'*(u32 *)(r10 - 4) = r1',
						`r1 = map_by_fd(${ro.id}) ll`,
						'r2 = r10',
						'r2 += -4',
						'call 1',
						'r6 = 0',
						'if r0 == 0 goto +3',
						'r6 = *(u64 *)(r0 + 0)',
						'r2 = 7',
						'*(u64 *)(r0 + 0) = r2',
						'r0 = r6',
						'exit',
					].join('\n'),
				),
			});
		expect(load).toThrow(/write into map forbidden/);
		expect(ro.typed(u32, u64).get(0)).toBe(41n);
	});

	it('opens an existing kernel map by id and by pin path', () => {
		const { reg } = freshRegistry('kopen');
		const m = createKernelMap(reg, { type: KernelMapType.Hash, name: 'orig', keySize: 4, valueSize: 8, maxEntries: 8 });
		m.typed(u32, u64).set(1, 11n);
		const id = kernelMapId(reg, m);
		const byId = openKernelMap(reg, id, 'byid');
		expect(byId.typed(u32, u64).get(1)).toBe(11n);
		const pin = `/sys/fs/bpf/bpftime_test_pin_${process.pid}`;
		execFileSync('bpftool', ['map', 'pin', 'id', String(id), pin]);
		onTestFinished(() => rmSync(pin, { force: true }));
		const byPin = openKernelMap(reg, pin);
		byPin.typed(u32, u64).set(2, 22n);
		expect(m.typed(u32, u64).get(2)).toBe(22n);
	});

	it('keeps the kernel map by a pin in BPFTIME_KERNEL_MAP_PIN_DIR until the registry map is released', () => {
		const dir = `/sys/fs/bpf/bpftime_test_pins_${process.pid}`;
		mkdirSync(dir, { recursive: true });
		const saved = process.env.BPFTIME_KERNEL_MAP_PIN_DIR;
		process.env.BPFTIME_KERNEL_MAP_PIN_DIR = dir;
		onTestFinished(() => {
			if (saved === undefined) delete process.env.BPFTIME_KERNEL_MAP_PIN_DIR;
			else process.env.BPFTIME_KERNEL_MAP_PIN_DIR = saved;
			rmSync(dir, { recursive: true, force: true });
		});
		const { reg } = freshRegistry('kpin');
		const m = createKernelMap(reg, {
			type: KernelMapType.Hash,
			name: 'pinned',
			keySize: 4,
			valueSize: 8,
			maxEntries: 4,
		});
		const id = kernelMapId(reg, m);
		const pins = readdirSync(dir);
		expect(pins).toHaveLength(1);
		expect(pins[0]).toMatch(new RegExp(`^bpftime_kmap_${id}_${process.pid}_\\d+$`));
		// The pin is the same kernel map.
		expect(describeKernelMap(join(dir, pins[0] as string)).id).toBe(id);
		m.release();
		expect(readdirSync(dir)).toEqual([]);
	});

	it('places a map in the kernel when the loader reads type BPFTIME_MAP_TYPE_KERNEL_USER_HASH', async (ctx) => {
		const clang = findClang();
		if (!clang) {
			console.log('skipped: no clang on PATH to build test/fixtures/loader_placed.bpf.c');
			ctx.skip();
			return;
		}
		const obj = join(tmpdir(), `loader_placed-${process.pid}.o`);
		await compileBpf(clang, new URL('./fixtures/loader_placed.bpf.c', import.meta.url).pathname, obj);
		onTestFinished(() => rmSync(obj, { force: true }));
		const { reg } = freshRegistry('kloader');
		const loaded = await BpfObject.open(obj).load(reg);
		const m = loaded.maps.get('ldr_counts');
		const p = loaded.programs.get('count_runs');
		if (!m || !p) throw new Error('the object lost its map or program');
		expect(reg.get(m.id)).toMatchObject({ type: KernelMapType.Hash, mapExtra: 0n });
		for (let i = 0; i < 3; i++) reg.prog(p.id).run(Buffer.alloc(8));
		expect(reg.map(m.id, u32, u64).get(0)).toBe(3n);
		// The kernel id comes from the map's state (map_extra is 0); the kernel's own list has that map.
		const id = kernelMapId(reg, reg.map(m.id));
		expect(describeKernelMap(id)).toMatchObject({ kernelType: MapType.Hash, name: 'ldr_counts' });
		expect(bpftoolDump(id).get(0)).toBe(3n);
	});

	it('refuses a kernel map that is gone, a path that is not a map and mismatched attributes', () => {
		const { reg } = freshRegistry('kerr');
		const before = reg.size;
		const gone = errorOf(() => openKernelMap(reg, 0x7ffffff0));
		expect(gone.code).toBe('ENOENT');
		expect(gone.message).toMatch(/kernel map id 2147483632/);
		expect(errorOf(() => openKernelMap(reg, '/sys/fs/bpf/no-such-pin')).code).toBe('ENOENT');
		const m = createKernelMap(reg, { type: KernelMapType.Hash, name: 'h', keySize: 4, valueSize: 8, maxEntries: 8 });
		const e = errorOf(() =>
			reg.createMap({
				type: KernelMapType.Hash,
				name: 'wrong',
				keySize: 4,
				valueSize: 16,
				maxEntries: 8,
				mapExtra: BigInt(kernelMapId(reg, m)),
			}),
		);
		expect(e.code).toBe('EINVAL');
		expect(e.message).toMatch(/value 8 .*asked for .*value 16/);
		const k = errorOf(() =>
			createKernelMap(reg, { type: KernelMapType.Hash, name: 'zero', keySize: 0, valueSize: 8, maxEntries: 8 }),
		);
		expect(k.code).toBe('EINVAL');
		expect(k.message).toMatch(/BPF_MAP_CREATE/);
		expect(reg.size).toBe(before + 1);
	});
});

describe('kernel-backed maps for a process bpf() refuses', () => {
	it('fails at creation with EPERM naming BPF_MAP_CREATE, and the registry keeps nothing', (ctx) => {
		const setpriv = ['/usr/bin/setpriv', '/bin/setpriv'].find((p) => existsSync(p));
		if (
			process.getuid?.() !== 0 ||
			!setpriv ||
			readFileSync('/proc/sys/kernel/unprivileged_bpf_disabled', 'utf8').trim() === '0'
		) {
			console.log('skipped: needs root and setpriv to run a child as nobody, and unprivileged bpf() disabled');
			ctx.skip();
			return;
		}
		const segment = `bpftime_test_unpriv_${process.pid}`;
		onTestFinished(() => rmSync(`/dev/shm/${segment}`, { force: true }));
		const child = spawnSync(
			setpriv,
			[
				'--reuid=65534',
				'--regid=65534',
				'--clear-groups',
				process.execPath,
				fileURLToPath(new URL('./fixtures/unprivileged.mjs', import.meta.url)),
				segment,
			],
			{ encoding: 'utf8' },
		);
		expect(child.status, child.stderr).toBe(0);
		const out = JSON.parse(child.stdout.trim().split('\n').at(-1) as string);
		expect(out.code).toBe('EPERM');
		expect(out.message).toMatch(/BPF_MAP_CREATE.*CAP_BPF/);
		expect(out.size).toBe(0);
	});
});
