import { execFileSync } from 'node:child_process';
import { beforeAll, describe, expect, it } from 'vitest';
import { BpfObject, findSecDef, ProgType, parseAttachPoint } from '../src/index.js';
import { useFixtures } from './helpers.js';
import { RecordingTarget } from './targets.js';

// Program types from libbpf's section_defs[]; attach points as libbpf's
// attach_uprobe(), attach_usdt(), attach_tp() and attach_raw_tp() read them.
describe('SEC names', () => {
	it.each([
		[
			'uprobe//usr/bin/bash:readline',
			ProgType.Kprobe,
			{ kind: 'uprobe', retprobe: false, binary: '/usr/bin/bash', func: 'readline', offset: 0n },
		],
		[
			'uretprobe//lib/x86_64-linux-gnu/libc.so.6:malloc',
			ProgType.Kprobe,
			{ kind: 'uprobe', retprobe: true, binary: '/lib/x86_64-linux-gnu/libc.so.6', func: 'malloc', offset: 0n },
		],
		[
			'uprobe//bin/x:func+0x10',
			ProgType.Kprobe,
			{ kind: 'uprobe', retprobe: false, binary: '/bin/x', func: 'func', offset: 16n },
		],
		['uprobe//bin/x:func+8', ProgType.Kprobe, { kind: 'uprobe', func: 'func', offset: 8n }],
		['uprobe//bin/x:0x4f0', ProgType.Kprobe, { kind: 'uprobe', binary: '/bin/x', func: undefined, offset: 0x4f0n }],
		['uprobe/libc.so.6:malloc', ProgType.Kprobe, { kind: 'uprobe', binary: 'libc.so.6', func: 'malloc' }],
		['uprobe/readline', ProgType.Kprobe, { kind: 'uprobe', binary: undefined, func: 'readline', offset: 0n }],
		['uprobe.s//bin/x:f', ProgType.Kprobe, { kind: 'uprobe', retprobe: false, func: 'f' }],
		['uretprobe.s//bin/x:f', ProgType.Kprobe, { kind: 'uprobe', retprobe: true, func: 'f' }],
		[
			'usdt//usr/lib/libc.so.6:libc:setjmp',
			ProgType.Kprobe,
			{ kind: 'usdt', binary: '/usr/lib/libc.so.6', provider: 'libc', name: 'setjmp' },
		],
		[
			'tracepoint/syscalls/sys_enter_openat',
			ProgType.Tracepoint,
			{ kind: 'tracepoint', category: 'syscalls', name: 'sys_enter_openat' },
		],
		[
			'tracepoint/syscalls/sys_exit_read',
			ProgType.Tracepoint,
			{ kind: 'tracepoint', category: 'syscalls', name: 'sys_exit_read' },
		],
		[
			'tp/syscalls/sys_enter_write',
			ProgType.Tracepoint,
			{ kind: 'tracepoint', category: 'syscalls', name: 'sys_enter_write' },
		],
		['raw_tracepoint/sys_enter', ProgType.RawTracepoint, { kind: 'raw_tracepoint', name: 'sys_enter' }],
		['raw_tp/sys_exit', ProgType.RawTracepoint, { kind: 'raw_tracepoint', name: 'sys_exit' }],
		['raw_tracepoint.w/sys_enter', ProgType.RawTracepointWritable, { kind: 'raw_tracepoint', name: 'sys_enter' }],
		['kprobe/do_nanosleep', ProgType.Kprobe, { kind: 'kprobe', retprobe: false, func: 'do_nanosleep', offset: 0n }],
		['kretprobe/do_nanosleep', ProgType.Kprobe, { kind: 'kprobe', retprobe: true, func: 'do_nanosleep' }],
		['ksyscall/nanosleep', ProgType.Kprobe, { kind: 'kprobe', func: 'nanosleep' }],
	])('parses %s as prog type %i with its attach point', (sec, type, point) => {
		const def = findSecDef(sec);
		expect(def?.progType).toBe(type);
		const parsed = parseAttachPoint(sec, def as never);
		expect(parsed).toMatchObject({ point });
		expect('error' in parsed ? parsed.error : undefined).toBeUndefined();
	});

	it.each([
		['uprobe', 'uprobe'],
		['uretprobe', 'uprobe'],
		['usdt', 'usdt'],
		['tracepoint', 'tracepoint'],
		['raw_tp', 'raw_tracepoint'],
		['kprobe', 'kprobe'],
	])('accepts the bare %s, which gives no attach point (attach by hand)', (sec, family) => {
		const def = findSecDef(sec);
		expect(def?.family).toBe(family);
		expect(parseAttachPoint(sec, def as never)).toEqual({ point: undefined });
	});

	it.each([
		['uretprobe//bin/x:f+4', /uretprobes do not support offset/],
		['uprobe//bin/x:', /invalid format/],
		['uprobe/:func', /invalid format/],
		['uprobe//bin/x:f+zz', /invalid format/],
		['usdt//bin/x:onlyprovider', /expected usdt\/<path>:<provider>:<name>/],
		['tracepoint/syscalls', /expected tracepoint\/<category>\/<name>/],
		['tp/syscalls/', /expected tp\/<category>\/<name>/],
		['kretprobe/f+4', /kretprobes do not support offset/],
	])('refuses the malformed %s, saying why', (sec, why) => {
		const def = findSecDef(sec);
		const parsed = parseAttachPoint(sec, def as never);
		expect(parsed.point).toBeUndefined();
		expect('error' in parsed ? parsed.error : '').toMatch(why);
	});

	it.each([
		['xdp', ProgType.Xdp],
		['socket', ProgType.SocketFilter],
		['fentry/do_unlinkat', ProgType.Tracing],
		['lsm/file_open', ProgType.Lsm],
		['tc', ProgType.SchedCls],
		['classifier', ProgType.SchedCls],
		['cgroup/connect4', ProgType.CgroupSockAddr],
		['tp_btf/sched_switch', ProgType.Tracing],
	])('knows the kernel-only %s (prog type %i)', (sec, type) => {
		expect(findSecDef(sec)).toMatchObject({ progType: type, family: 'kernel' });
	});

	it.each(['uprobex', 'tracepointy/a/b', 'kprobe_extra', 'my_section'])('does not match %s to any type', (sec) => {
		expect(findSecDef(sec)).toBeUndefined();
	});
});

describe('attaching', () => {
	const fx = useFixtures();
	let victim: string;
	let path: string;

	/** File offset of a function, from readelf: st_value - sh_addr + sh_offset of its section. */
	function fileOffset(bin: string, func: string): bigint {
		const syms = execFileSync('readelf', ['-sW', bin], { encoding: 'utf8' });
		const line = syms.split('\n').find((l) => l.trim().split(/\s+/)[7] === func) as string;
		const f = line.trim().split(/\s+/);
		const value = BigInt(`0x${f[1]}`);
		const ndx = Number(f[6]);
		const secs = execFileSync('readelf', ['-SW', bin], { encoding: 'utf8' });
		const sec = secs.split('\n').find((l) => new RegExp(`^\\s*\\[\\s*${ndx}\\]`).test(l)) as string;
		const s = sec
			.replace(/^\s*\[\s*\d+\]\s*/, '')
			.trim()
			.split(/\s+/);
		return value - BigInt(`0x${s[2]}`) + BigInt(`0x${s[3]}`);
	}

	beforeAll(async () => {
		victim = await fx.victim();
		path = await fx.bpf('attach', [`-DTARGET="${victim}"`]);
	});

	async function loaded(programs?: string[]) {
		const o = BpfObject.open(path);
		const t = new RecordingTarget();
		await o.load(t, { programs });
		return { o, t };
	}

	it('creates a uprobe perf event at the file offset of the function, and a link with the cookie', async () => {
		const { o, t } = await loaded();
		const link = await o.attach('up_func', undefined, { pid: 42, cookie: 7n });
		const pe = t.log.find((r) => r.op === 'createPerfEvent');
		expect(pe?.op === 'createPerfEvent' && pe.req).toEqual({
			kind: 'uprobe',
			path: victim,
			offset: fileOffset(victim, 'target_add'),
			retprobe: false,
			pid: 42,
			refCtrOffset: 0n,
		});
		const ln = t.log.find((r) => r.op === 'createLink');
		expect(ln?.op === 'createLink' && ln.req).toEqual({
			kind: 'perf_event',
			prog: o.loaded?.programs.get('up_func')?.id,
			perfEvent: pe?.op === 'createPerfEvent' && pe.id,
			cookie: 7n,
		});
		expect(link.target).toBe(`uprobe ${victim}:target_add`);
		link.close();
		expect(t.log.slice(-2).map((r) => r.op)).toEqual(['release', 'release']);
		o.close();
		expect(t.live.size).toBe(0);
	});

	it('adds the offset of +off, marks uretprobes, and takes raw offsets', async () => {
		const { o, t } = await loaded();
		await o.attach('up_func_off');
		await o.attach('uret_func');
		await o.attach('up_raw_off');
		const reqs = t.log.flatMap((r) =>
			r.op === 'createPerfEvent' && r.req.kind === 'uprobe' ? [[r.req.offset, r.req.retprobe]] : [],
		);
		const base = fileOffset(victim, 'target_add');
		expect(reqs).toEqual([
			[base + 4n, false],
			[base, true],
			[0x1000n, false],
		]);
		o.close();
	});

	it('takes the binary of uprobe/<func> sections from the attach options', async () => {
		const { o } = await loaded();
		await expect(o.attach('up_no_binary')).rejects.toMatchObject({
			code: 'EINVAL',
			message: expect.stringContaining('names no binary'),
		});
		const link = await o.attach('up_no_binary', undefined, { binary: victim });
		expect(link.target).toBe(`uprobe ${victim}:target_add`);
		o.close();
	});

	it('attaches SEC("uprobe") only to a target given by hand', async () => {
		const { o, t } = await loaded();
		await expect(o.attach('up_manual')).rejects.toMatchObject({
			code: 'EINVAL',
			message: expect.stringContaining('gives no attach target'),
		});
		await o.attach('up_manual', { kind: 'uprobe', binary: victim, func: 'target_loop', retprobe: true });
		const pe = t.log.find((r) => r.op === 'createPerfEvent');
		expect(pe?.op === 'createPerfEvent' && pe.req).toMatchObject({
			offset: fileOffset(victim, 'target_loop'),
			retprobe: true,
		});
		o.close();
	});

	it('creates one uprobe per USDT site, with the semaphore offset when the probe has one', async () => {
		const { o, t } = await loaded();
		const link = await o.attach('usdt_tick');
		const sites = t.log.filter((r) => r.op === 'createPerfEvent');
		expect(sites).toHaveLength(2);
		expect(link.linkIds).toHaveLength(2);
		expect(link.target).toContain('(2 sites)');
		await o.attach('usdt_tick', { kind: 'usdt', binary: victim, provider: 'bpftime_test', name: 'tock' });
		const tock = t.log.filter((r) => r.op === 'createPerfEvent').slice(2);
		expect(tock).toHaveLength(1);
		expect(
			tock[0]?.op === 'createPerfEvent' && tock[0].req.kind === 'uprobe' && tock[0].req.refCtrOffset,
		).toBeGreaterThan(0n);
		await expect(
			o.attach('usdt_tick', { kind: 'usdt', binary: victim, provider: 'bpftime_test', name: 'nope' }),
		).rejects.toMatchObject({
			code: 'ENOENT',
			message: expect.stringContaining("no probe 'bpftime_test:nope'"),
		});
		o.close();
	});

	it('attaches syscall tracepoints and raw syscall tracepoints', async () => {
		const { o, t } = await loaded();
		await o.attach('tp_enter');
		await o.attach('tp_exit');
		await o.attach('raw_enter');
		await o.attach('raw_exit');
		expect(t.log.flatMap((r) => (r.op === 'createPerfEvent' ? [r.req] : []))).toEqual([
			{ kind: 'tracepoint', category: 'syscalls', name: 'sys_enter_openat', pid: -1 },
			{ kind: 'tracepoint', category: 'syscalls', name: 'sys_exit_openat', pid: -1 },
		]);
		expect(
			t.log.flatMap((r) => (r.op === 'createLink' && r.req.kind === 'raw_tracepoint' ? [r.req.name] : [])),
		).toEqual(['sys_enter', 'sys_exit']);
		o.close();
	});

	it.each([
		['kp', /attaches to kernel functions; bpftime runs eBPF in user space: use uprobe\//],
		['kretp', /attaches to kernel functions/],
		['ksys', /attaches to kernel functions/],
		['xdp_prog', /kernel-only program type/],
		['sock_prog', /kernel-only program type/],
		['tp_sched', /tracepoint 'sched\/sched_switch' is a kernel event/],
	])('refuses to attach %s with EOPNOTSUPP and a clear message, creating nothing', async (name, why) => {
		const { o, t } = await loaded();
		const before = t.live.size;
		await expect(o.attach(name)).rejects.toMatchObject({ code: 'EOPNOTSUPP', message: expect.stringMatching(why) });
		expect(t.live.size).toBe(before);
		o.close();
	});

	it('attachAll attaches every program with a target, and undoes them all when one fails', async () => {
		const user = ['up_func', 'uret_func', 'up_no_binary', 'up_manual', 'usdt_tick', 'tp_enter', 'raw_exit'];
		const { o, t } = await loaded(user);
		const links = await o.attachAll({ binary: victim });
		// up_manual has no target and is skipped; usdt_tick has two sites.
		expect(links.map((l) => l.program)).toEqual([
			'up_func',
			'uret_func',
			'up_no_binary',
			'usdt_tick',
			'tp_enter',
			'raw_exit',
		]);
		for (const l of links) l.close();
		o.close();
		expect(t.live.size).toBe(0);

		const all = await loaded();
		const before = all.t.live.size;
		await expect(all.o.attachAll({ binary: victim })).rejects.toMatchObject({ code: 'EOPNOTSUPP' });
		expect(all.t.live.size).toBe(before);
		expect(all.o.links).toHaveLength(0);
		all.o.close();
	});

	it('undoes the perf event when the link cannot be created', async () => {
		const o = BpfObject.open(path);
		const t = new RecordingTarget().failAt('createLink', 1);
		await o.load(t, { programs: ['up_func'] });
		const before = t.live.size;
		await expect(o.attach('up_func')).rejects.toMatchObject({
			code: 'ENOSPC',
			message: expect.stringContaining("prog 'up_func': create link"),
		});
		expect(t.live.size).toBe(before);
		o.close();
	});

	it('refuses to attach before load', async () => {
		const o = BpfObject.open(path);
		await expect(o.attach('up_func')).rejects.toMatchObject({
			code: 'EINVAL',
			message: expect.stringContaining('did you load it?'),
		});
	});

	it('names the binary that is missing', async () => {
		const { o } = await loaded();
		await expect(o.attach('up_manual', { kind: 'uprobe', binary: '/no/such/binary', func: 'f' })).rejects.toMatchObject(
			{
				code: 'ENOENT',
				message: expect.stringContaining("'/no/such/binary' not found"),
			},
		);
		await expect(
			o.attach('up_manual', { kind: 'uprobe', binary: victim, func: 'no_such_function' }),
		).rejects.toMatchObject({
			code: 'ENOENT',
			message: expect.stringContaining("failed to find symbol 'no_such_function'"),
		});
		o.close();
	});
});
