// Real clients under libbpftime-syscall-server.so: a libbpf skeleton tool
// built here (clang, bpftool gen skeleton, Debian's libbpf), bpftool, and a
// C client of bad bpf() calls, each compared with the same run against the
// kernel (we are root here; each kernel comparison skips, saying why, where
// bpf() is refused).
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { spawnWithAgent } from '@bpftime/agent';
import { type HandlerDescriptor, Registry } from '@bpftime/handlers';
import '@bpftime/maps-userspace';
import { Segment } from '@bpftime/shm';
import * as support from '@bpftime/test-support';
import { describe, expect, it, onTestFinished } from 'vitest';
import { spawnWithSyscallServer, syscallServerEnv, syscallServerPath } from '../src/index.js';

const fixtureDir = new URL('./fixtures/', import.meta.url).pathname;

function kernelBpfRefusal(): string | undefined {
	const r = spawnSync('bpftool', ['prog', 'show'], { encoding: 'utf8' });
	if (r.error) return `bpftool: ${r.error.message}`;
	return r.status === 0 ? undefined : `bpf() is refused here: ${r.stderr.trim()}`;
}
const clang = support.findClang();
const noKernel = kernelBpfRefusal();
const noTools = clang ? undefined : 'clang is not installed';

const { dir, once } = support.useBuildDir('syscall-server');
const build = {
	victim: () =>
		once('victim', async () => {
			await support.run('cc', ['-O2', join(fixtureDir, 'victim.c'), '-o', join(dir, 'victim')]);
			return join(dir, 'victim');
		}),
	// The same victim where main() keeps nothing in a caller-saved register
	// across the call (no interprocedural register allocation): what the
	// agent's uretprobes need today, see the test of the other one below.
	victimNoIpaRa: () =>
		once('victim-no-ipa-ra', async () => {
			await support.run('cc', [
				'-O2',
				'-fno-ipa-ra',
				join(fixtureDir, 'victim.c'),
				'-o',
				join(dir, 'victim-no-ipa-ra'),
			]);
			return join(dir, 'victim-no-ipa-ra');
		}),
	counter: () =>
		once('counter', async () => {
			const obj = await support.compileBpf(
				clang ?? 'clang',
				join(fixtureDir, 'counter.bpf.c'),
				join(dir, 'counter.bpf.o'),
				['-D__TARGET_ARCH_x86'],
			);
			const skel = await support.run('bpftool', ['gen', 'skeleton', obj, 'name', 'counter_bpf']);
			const { writeFileSync } = await import('node:fs');
			writeFileSync(join(dir, 'counter.skel.h'), skel.stdout);
			await support.run('cc', [
				'-O2',
				`-I${dir}`,
				join(fixtureDir, 'uprobe_counter.c'),
				'-lbpf',
				'-o',
				join(dir, 'uprobe_counter'),
			]);
			return join(dir, 'uprobe_counter');
		}),
	tracepoints: () =>
		once('tracepoints', async () => {
			const obj = await support.compileBpf(
				clang ?? 'clang',
				join(fixtureDir, 'tracepoints.bpf.c'),
				join(dir, 'tracepoints.bpf.o'),
			);
			const skel = await support.run('bpftool', ['gen', 'skeleton', obj, 'name', 'tracepoints_bpf']);
			const { writeFileSync } = await import('node:fs');
			writeFileSync(join(dir, 'tracepoints.skel.h'), skel.stdout);
			await support.run('cc', [
				'-O2',
				`-I${dir}`,
				join(fixtureDir, 'tracepoints.c'),
				'-lbpf',
				'-o',
				join(dir, 'tracepoints'),
			]);
			await support.run('cc', ['-O2', join(fixtureDir, 'tp_victim.c'), '-o', join(dir, 'tp_victim')]);
			return join(dir, 'tracepoints');
		}),
	usdt: () =>
		once('usdt', async () => {
			const obj = await support.compileBpf(clang ?? 'clang', join(fixtureDir, 'usdt.bpf.c'), join(dir, 'usdt.bpf.o'), [
				'-D__TARGET_ARCH_x86',
			]);
			const skel = await support.run('bpftool', ['gen', 'skeleton', obj, 'name', 'usdt_bpf']);
			const { writeFileSync } = await import('node:fs');
			writeFileSync(join(dir, 'usdt.skel.h'), skel.stdout);
			await support.run('cc', ['-O2', `-I${dir}`, join(fixtureDir, 'usdt.c'), '-lbpf', '-o', join(dir, 'usdt')]);
			await support.run('cc', ['-O2', join(fixtureDir, 'usdt_victim.c'), '-o', join(dir, 'usdt_victim')]);
			return join(dir, 'usdt');
		}),
	pinned: () =>
		once('pinned', async () => {
			const obj = await support.compileBpf(
				clang ?? 'clang',
				join(fixtureDir, 'pinned.bpf.c'),
				join(dir, 'pinned.bpf.o'),
			);
			const skel = await support.run('bpftool', ['gen', 'skeleton', obj, 'name', 'pinned_bpf']);
			const { writeFileSync } = await import('node:fs');
			writeFileSync(join(dir, 'pinned.skel.h'), skel.stdout);
			await support.run('cc', ['-O2', `-I${dir}`, join(fixtureDir, 'pinned.c'), '-lbpf', '-o', join(dir, 'pinned')]);
			return join(dir, 'pinned');
		}),
	hotPathAllocs: () =>
		once('hot_path_allocs', async () => {
			await support.run('cc', ['-O2', join(fixtureDir, 'hot_path_allocs.c'), '-o', join(dir, 'hot_path_allocs')]);
			return join(dir, 'hot_path_allocs');
		}),
	closeRace: () =>
		once('close_race', async () => {
			await support.run('cc', ['-O2', '-pthread', join(fixtureDir, 'close_race.c'), '-o', join(dir, 'close_race')]);
			return join(dir, 'close_race');
		}),
	commands: () =>
		once('commands', async () => {
			await support.run('cc', ['-O2', join(fixtureDir, 'commands.c'), '-o', join(dir, 'commands')]);
			return join(dir, 'commands');
		}),
	stats: () =>
		once('stats', async () => {
			await build.counter();
			await support.run('cc', ['-O2', join(fixtureDir, 'stats.c'), '-lbpf', '-o', join(dir, 'stats')]);
			return join(dir, 'stats');
		}),
	legacy: () =>
		once('legacy_uprobe', async () => {
			await build.counter();
			await support.run('cc', ['-O2', join(fixtureDir, 'legacy_uprobe.c'), '-lbpf', '-o', join(dir, 'legacy_uprobe')]);
			return join(dir, 'legacy_uprobe');
		}),
	uprobeMulti: () =>
		once('uprobe_multi', async () => {
			await support.compileBpf(clang ?? 'clang', join(fixtureDir, 'multi.bpf.c'), join(dir, 'multi.bpf.o'), [
				'-D__TARGET_ARCH_x86',
			]);
			await support.run('cc', ['-O2', join(fixtureDir, 'uprobe_multi.c'), '-lbpf', '-o', join(dir, 'uprobe_multi')]);
			return join(dir, 'uprobe_multi');
		}),
	share: () =>
		once('share', async () => {
			await support.run('cc', ['-O2', join(fixtureDir, 'share.c'), '-o', join(dir, 'share')]);
			return join(dir, 'share');
		}),
	fdMaps: () =>
		once('fd_maps', async () => {
			await support.run('cc', ['-O2', join(fixtureDir, 'fd_maps.c'), '-o', join(dir, 'fd_maps')]);
			return join(dir, 'fd_maps');
		}),
	badInput: () =>
		once('bad_input', async () => {
			await support.run('cc', ['-O2', join(fixtureDir, 'bad_input.c'), '-o', join(dir, 'bad_input')]);
			return join(dir, 'bad_input');
		}),
};

function openRegistry(name: string): Registry {
	const seg = Segment.open({ name });
	const reg = Registry.open(seg);
	return reg;
}

const kinds = (list: HandlerDescriptor[]) => list.map((d) => d.kind).sort();

/** The counter tool under the syscall-server, waiting (calls 0) until told to print. */
async function startCounter(segment: string, mode: 'both' | 'entry', extra: { keepObjects?: boolean } = {}) {
	const tool = await build.counter();
	const victim = await build.victim();
	const child = await spawnWithSyscallServer(tool, [victim, '0', '4', mode], {
		segment,
		stdio: ['pipe', 'pipe', 'pipe'],
		...extra,
	});
	const proc = new support.Proc(child);
	await proc.waitFor('stdout', /^ready$/);
	return { proc, victim };
}

/** The victim with the agent; killed after 3 s (a victim whose registers a probe broke may never end). */
async function runVictim(segment: string, victim: string) {
	const child = await spawnWithAgent(victim, ['100'], { segment, logLevel: 'warn', stdio: ['ignore', 'pipe', 'pipe'] });
	const timer = setTimeout(() => child.kill('SIGKILL'), 3000);
	try {
		return await new support.Proc(child).done();
	} finally {
		clearTimeout(timer);
	}
}

describe.skipIf(noTools)('a libbpf skeleton tool', () => {
	/**
	 * The tool and the victim against the kernel, then under bpftime; both
	 * outputs. The tool prints once told to (a line on stdin), after the
	 * victim exited.
	 */
	async function compare(victim: string, mode: 'both' | 'entry') {
		const tool = await build.counter();
		const kproc = new support.Proc(
			support.startProcess(tool, [victim, '0', '4', mode], { stdio: ['pipe', 'pipe', 'pipe'] }),
		);
		await kproc.waitFor('stdout', /^ready$/);
		const kvictim = await new support.Proc(support.startProcess(victim, ['100'])).done();
		kproc.child.stdin?.end('go\n');
		const kernel = await kproc.done();
		expect(kernel.code, kernel.stderr.join('\n')).toBe(0);

		const segment = support.uniqueSegmentName('sysserver');
		const bproc = new support.Proc(
			await spawnWithSyscallServer(tool, [victim, '0', '4', mode], { segment, stdio: ['pipe', 'pipe', 'pipe'] }),
		);
		await bproc.waitFor('stdout', /^ready$/);
		const bvictim = await runVictim(segment, victim);
		bproc.child.stdin?.end('go\n');
		const ours = await bproc.done();
		expect(ours.code, ours.stderr.join('\n')).toBe(0);
		return { kernel, kvictim, ours, bvictim };
	}

	it.skipIf(noKernel)('counts a victim started with the agent exactly as it counts under the kernel', async () => {
		const { kernel, kvictim, ours, bvictim } = await compare(await build.victim(), 'entry');
		expect(bvictim.stdout).toEqual(kvictim.stdout);
		expect(ours.stdout).toEqual(kernel.stdout);
		expect(ours.stdout).toContain('bucket 0: 25');
		expect(ours.stdout).toContain('calls: 100');
	});

	it.skipIf(noKernel)('sums what the victim returns with a uretprobe exactly as the kernel does', async () => {
		const { kernel, kvictim, ours, bvictim } = await compare(await build.victimNoIpaRa(), 'both');
		expect(bvictim.stdout).toEqual(kvictim.stdout);
		expect(ours.stdout).toEqual(kernel.stdout);
		expect(ours.stdout).toContain('returned sum: 14950');
	});

	// gcc -O2 keeps main()'s loop counter and sum in rsi, edx and ecx across
	// the call, since it knows target_fn does not touch them (-fipa-ra): the
	// return probe must give every register back as the kernel's does.
	it.skipIf(noKernel)(
		'sums what the victim returns with a uretprobe when main() keeps values in caller-saved registers',
		async () => {
			const { kvictim, bvictim } = await compare(await build.victim(), 'both');
			expect(bvictim.stdout).toEqual(kvictim.stdout);
		},
	);

	it.skipIf(noKernel)(
		"reads the arguments of a USDT probe (bpf_usdt_arg, by the link's BPF cookie) as the kernel does",
		async () => {
			const tool = await build.usdt();
			const victim = join(dir, 'usdt_victim');
			const kproc = new support.Proc(support.startProcess(tool, [victim], { stdio: ['pipe', 'pipe', 'pipe'] }));
			await kproc.waitFor('stdout', /^ready$/);
			const kvictim = await new support.Proc(support.startProcess(victim, ['100'])).done();
			kproc.child.stdin?.end('go\n');
			const kernel = await kproc.done();
			expect(kernel.code, kernel.stderr.join('\n')).toBe(0);

			const segment = support.uniqueSegmentName('sysserver');
			const bproc = new support.Proc(
				await spawnWithSyscallServer(tool, [victim], { segment, stdio: ['pipe', 'pipe', 'pipe'] }),
			);
			await bproc.waitFor('stdout', /^ready$/);
			const child = await spawnWithAgent(victim, ['100'], {
				segment,
				logLevel: 'warn',
				stdio: ['ignore', 'pipe', 'pipe'],
			});
			const bvictim = await new support.Proc(child).done();
			bproc.child.stdin?.end('go\n');
			const ours = await bproc.done();
			expect(ours.code, ours.stderr.join('\n')).toBe(0);
			expect(bvictim.stdout).toEqual(kvictim.stdout);
			expect(ours.stdout).toEqual(kernel.stdout);
			expect(ours.stdout).toEqual(['ready', 'sum 0: 4950', 'sum 1: 9900', 'sum 2: 100']);
		},
	);

	it('holds its maps, programs, uprobe and uretprobe events and links in the registry while it runs, and releases them at exit', async () => {
		const segment = support.uniqueSegmentName('sysserver');
		const { proc } = await startCounter(segment, 'both');
		const reg = openRegistry(segment);
		try {
			const live = reg.list();
			const events = live.filter((d) => d.kind === 'perf_event');
			expect(events.map((e) => e.type).sort()).toEqual(['uprobe', 'uretprobe']);
			for (const e of events) expect(e.kind === 'perf_event' && e.offset > 0n && e.pid === -1).toBe(true);
			const progs = live.filter((d) => d.kind === 'prog').map((d) => d.name);
			expect(progs.sort()).toEqual(['on_entry', 'on_return']);
			const maps = live.filter((d) => d.kind === 'map').map((d) => d.name);
			expect(maps).toEqual(expect.arrayContaining(['counts', 'returns', 'counter_.bss', 'counter_.rodata']));
			expect(live.filter((d) => d.kind === 'link')).toHaveLength(2);
			const rodata = live.find((d) => d.kind === 'map' && d.name === 'counter_.rodata');
			expect(rodata?.kind === 'map' && rodata.frozen).toBe(true);

			proc.child.stdin?.end('go\n');
			const r = await proc.done();
			expect(r.code, r.stderr.join('\n')).toBe(0);
			expect(reg.list()).toEqual([]);
		} finally {
			reg.close();
		}
	});

	it('runs twice at once on one registry, each copy with its own descriptors and maps', async () => {
		const segment = support.uniqueSegmentName('sysserver');
		const first = await startCounter(segment, 'entry');
		const second = await startCounter(segment, 'entry');
		const v = await runVictim(segment, first.victim);
		expect(v.code).toBe(0);
		for (const { proc } of [first, second]) proc.child.stdin?.end('go\n');
		for (const { proc } of [first, second]) {
			const r = await proc.done();
			expect(r.code, r.stderr.join('\n')).toBe(0);
			expect(r.stdout.filter((l) => l.startsWith('bucket'))).toEqual([
				'bucket 0: 25',
				'bucket 1: 25',
				'bucket 2: 25',
				'bucket 3: 25',
			]);
			expect(r.stdout).toContain('calls: 100');
		}
		const reg = openRegistry(segment);
		try {
			expect(reg.list()).toEqual([]);
		} finally {
			reg.close();
		}
	});

	it.skipIf(noKernel)(
		'pins a map by name, finds it again on the next run, and unpins it (bpf_map__unpin) as the kernel does',
		async () => {
			const { mkdirSync, rmdirSync } = await import('node:fs');
			const tool = await build.pinned();
			const root = `/sys/fs/bpf/bpftime_test_pins_${process.pid}`;
			mkdirSync(root, { recursive: true });
			onTestFinished(() => rmdirSync(root));
			const runs = async (env?: { segment: string }) => {
				const out: string[] = [];
				for (const args of [[root], [root], [root, 'unpin'], [root], [root, 'unpin']]) {
					const child = env
						? await spawnWithSyscallServer(tool, args, { ...env, stdio: ['ignore', 'pipe', 'pipe'] })
						: support.startProcess(tool, args);
					const r = await new support.Proc(child).done();
					expect(r.code, r.stderr.join('\n')).toBe(0);
					out.push(...r.stdout);
				}
				return out;
			};
			const kernel = await runs();
			const ours = await runs({ segment: support.uniqueSegmentName('sysserver') });
			expect(kernel).toEqual(['runs: 1', 'runs: 2', 'runs: 3', 'runs: 1', 'runs: 2']);
			expect(ours).toEqual(kernel);
		},
	);

	it('killed with SIGKILL, leaves its objects until the next tool opens the registry, which releases them', async () => {
		const segment = support.uniqueSegmentName('sysserver');
		const { proc } = await startCounter(segment, 'both');
		proc.child.kill('SIGKILL');
		expect((await proc.done()).signal).toBe('SIGKILL');
		const reg = openRegistry(segment);
		try {
			expect(new Set(kinds(reg.list()))).toEqual(new Set(['map', 'prog', 'perf_event', 'link', 'btf']));
			const next = spawnSync('bpftool', ['map', 'show'], { env: syscallServerEnv({ segment }), encoding: 'utf8' });
			expect(next.status, next.stderr).toBe(0);
			expect(next.stderr).toMatch(/released 11 objects of tools that exited without closing them \(pid \d+/);
			expect(reg.list()).toEqual([]);
		} finally {
			reg.close();
		}
	});

	it('leaves its objects in the registry when started with keepObjects', async () => {
		const segment = support.uniqueSegmentName('sysserver');
		const { proc } = await startCounter(segment, 'entry', { keepObjects: true });
		proc.child.stdin?.end('go\n');
		const r = await proc.done();
		expect(r.code, r.stderr.join('\n')).toBe(0);
		const reg = openRegistry(segment);
		try {
			expect(new Set(kinds(reg.list()))).toEqual(new Set(['map', 'prog', 'perf_event', 'link', 'btf']));
		} finally {
			reg.close();
		}
	});

	it('is read by bpftool under the syscall-server while it runs (prog show, prog dump xlated, map show, map dump, btf dump, link show, --json)', async () => {
		const segment = support.uniqueSegmentName('sysserver');
		const { proc, victim } = await startCounter(segment, 'entry');
		const v = await runVictim(segment, victim);
		expect(v.code).toBe(0);
		const env = syscallServerEnv({ segment });
		const bpftool = (...args: string[]) => {
			const r = spawnSync('bpftool', ['--json', ...args], { env, encoding: 'utf8' });
			expect(r.status, r.stderr).toBe(0);
			return JSON.parse(r.stdout);
		};
		const progs = bpftool('prog', 'show') as { name: string; type: string; map_ids: number[] }[];
		expect(progs.map((p) => p.name).sort()).toEqual(['on_entry', 'on_return']);
		expect(progs.every((p) => p.type === 'kprobe')).toBe(true);
		const maps = bpftool('map', 'show') as { id: number; name: string; type: string; frozen: number }[];
		// frozen comes from /proc/self/fdinfo/<fd>, which the server answers.
		expect(maps.find((m) => m.name === 'counter_.rodata')?.frozen).toBe(1);
		expect(maps.find((m) => m.name === 'counter_.bss')?.frozen).toBe(0);
		const counts = maps.find((m) => m.name === 'counts');
		expect(counts).toMatchObject({ type: 'hash', bytes_key: 4, bytes_value: 8, max_entries: 64 });
		const entry = progs.find((p) => p.name === 'on_entry');
		expect(entry?.map_ids).toContain(counts?.id);
		const xlated = bpftool('prog', 'dump', 'xlated', 'id', String((entry as unknown as { id: number }).id)) as {
			disasm: string;
		}[];
		expect(xlated.some((i) => i.disasm.includes(`map[id:${counts?.id}]`))).toBe(true);
		const btfId = (maps.find((m) => m.name === 'counts') as unknown as { btf_id: number }).btf_id;
		const btf = bpftool('btf', 'dump', 'id', String(btfId)) as { types: { kind: string; name: string }[] };
		expect(btf.types.filter((t) => t.kind === 'VAR').map((t) => t.name)).toEqual(
			expect.arrayContaining(['counts', 'returns', 'buckets', 'calls']),
		);
		const links = bpftool('link', 'show') as { type: string; prog_id: number }[];
		expect(links).toEqual([
			expect.objectContaining({ type: 'perf_event', prog_id: (entry as unknown as { id: number }).id }),
		]);
		// With the BTF the tool loaded, bpftool adds typed keys and values.
		const dump = bpftool('map', 'dump', 'id', String(counts?.id)) as { formatted: { key: number; value: number } }[];
		expect(dump.map((e) => [e.formatted.key, e.formatted.value]).sort()).toEqual([
			[0, 25],
			[1, 25],
			[2, 25],
			[3, 25],
		]);
		proc.child.stdin?.end('go\n');
		const r = await proc.done();
		expect(r.code, r.stderr.join('\n')).toBe(0);
		expect(r.stdout).toContain('calls: 100');
	});
});

describe.skipIf(noTools)('bpftool prog loadall', () => {
	it('loads an object, pins its programs, and they outlive bpftool for the next bpftool to show', async () => {
		await build.counter();
		const { rmSync } = await import('node:fs');
		const segment = support.uniqueSegmentName('sysserver');
		const env = syscallServerEnv({ segment });
		// bpftool makes the pin folder itself (mkdir on the real bpffs,
		// or wherever the path is); the pins are in the registry.
		const pins = `/sys/fs/bpf/bpftime_test_loadall_${process.pid}`;
		onTestFinished(() => rmSync(pins, { recursive: true, force: true }));
		const load = spawnSync('bpftool', ['prog', 'loadall', join(dir, 'counter.bpf.o'), pins], { env, encoding: 'utf8' });
		expect(load.status, load.stderr).toBe(0);
		const show = spawnSync('bpftool', ['--json', 'prog', 'show'], { env, encoding: 'utf8' });
		expect(show.status, show.stderr).toBe(0);
		const progs = JSON.parse(show.stdout) as { name: string }[];
		expect(progs.map((p) => p.name).sort()).toEqual(['on_entry', 'on_return']);
		const pinned = spawnSync('bpftool', ['--json', 'prog', 'show', 'pinned', `${pins}/on_entry`], {
			env,
			encoding: 'utf8',
		});
		expect(pinned.status, pinned.stderr).toBe(0);
		expect(JSON.parse(pinned.stdout)).toMatchObject({ name: 'on_entry', type: 'kprobe' });
	});
});

describe.skipIf(noTools)('a libbpf tool on system call tracepoints', () => {
	it.skipIf(noKernel)(
		"counts a victim's getppid() calls on tracepoint/syscalls/sys_enter_getppid and sees raw_tp/sys_exit, as under the kernel",
		async () => {
			const tool = await build.tracepoints();
			const victim = join(dir, 'tp_victim');
			// The kernel: every process's calls; at least the victim's.
			const kernel = new support.Proc(support.startProcess(tool, [], { stdio: ['pipe', 'pipe', 'pipe'] }));
			await kernel.waitFor('stdout', /^ready$/);
			await new support.Proc(support.startProcess(victim, ['100'])).done();
			kernel.child.stdin?.end('go\n');
			const k = await kernel.done();
			expect(k.code, k.stderr.join('\n')).toBe(0);
			expect(Number(/^getppid: (\d+)$/.exec(k.stdout[1] ?? '')?.[1])).toBeGreaterThanOrEqual(100);
			expect(k.stdout[2]).toBe('sys_exit: some');

			// bpftime: only the victim runs with the agent.
			const segment = support.uniqueSegmentName('sysserver');
			const proc = new support.Proc(
				await spawnWithSyscallServer(tool, [], { segment, stdio: ['pipe', 'pipe', 'pipe'] }),
			);
			await proc.waitFor('stdout', /^ready$/);
			const reg = openRegistry(segment);
			try {
				const events = reg
					.list()
					.flatMap((d) => (d.kind === 'perf_event' ? [[d.type, d.syscallId, d.syscallExit]] : []));
				expect(events.sort()).toEqual([
					['syscall_tracepoint', -1, true],
					['syscall_tracepoint', 110, false],
				]);
				const r = spawnSync('bpftool', ['--json', 'link', 'show'], {
					env: syscallServerEnv({ segment }),
					encoding: 'utf8',
				});
				expect(r.status, r.stderr).toBe(0);
				const links = JSON.parse(r.stdout) as { type: string; tp_name?: string }[];
				expect(links.map((l) => [l.type, l.tp_name]).sort()).toEqual([
					['perf_event', undefined],
					['raw_tracepoint', 'sys_exit'],
				]);
				const v = await new support.Proc(
					await spawnWithAgent(victim, ['100'], { segment, logLevel: 'warn', stdio: ['ignore', 'pipe', 'pipe'] }),
				).done();
				expect(v.stdout).toEqual(['tp victim: 100 calls of getppid']);
				proc.child.stdin?.end('go\n');
				const ours = await proc.done();
				expect(ours.code, ours.stderr.join('\n')).toBe(0);
				expect(ours.stdout).toEqual(['ready', 'getppid: 100', 'sys_exit: some']);
				expect(reg.list()).toEqual([]);
			} finally {
				reg.close();
			}
		},
	);
});

describe('bad bpf() calls', () => {
	it.skipIf(noKernel)(
		'get the errno the kernel gives, the tool survives, and the rest of the registry is untouched',
		async () => {
			const client = await build.badInput();
			const kernel = await new support.Proc(support.startProcess(client, [])).done();
			expect(kernel.code, kernel.stderr.join('\n')).toBe(0);

			const segment = support.uniqueSegmentName('sysserver');
			const seg = Segment.create({ name: segment, sizeMb: 16 });
			const reg = Registry.create(seg);
			try {
				const kept = reg.createMap({ type: 1, name: 'kept', keySize: 4, valueSize: 8, maxEntries: 4 });
				kept.update(support.u32le(7), support.u64le(700n));
				const before = reg.list();
				const ours = await new support.Proc(
					await spawnWithSyscallServer(client, [], { segment, stdio: ['ignore', 'pipe', 'pipe'] }),
				).done();
				expect(ours.code, ours.stderr.join('\n')).toBe(0);
				expect(ours.stdout).toEqual(kernel.stdout);
				expect(ours.stdout.slice(-2)).toEqual(['value: 42', 'done']);
				expect(reg.list()).toEqual(before);
				expect(kept.lookup(support.u32le(7))).toEqual(Buffer.from(support.u64le(700n)));
			} finally {
				reg.close();
				seg.close();
			}
		},
	);
});

describe('the other bpf() commands', () => {
	it.skipIf(noKernel)(
		'batches, lookup-and-delete, info, test runs, pins, ids and the perf event ioctls answer as the kernel answers them',
		async () => {
			const client = await build.commands();
			const pin = `/sys/fs/bpf/bpftime_test_${process.pid}`;
			const kernel = await new support.Proc(support.startProcess(client, [pin])).done();
			expect(kernel.code, kernel.stderr.join('\n')).toBe(0);
			const segment = support.uniqueSegmentName('sysserver');
			const ours = await new support.Proc(
				await spawnWithSyscallServer(client, [pin], { segment, stdio: ['ignore', 'pipe', 'pipe'] }),
			).done();
			expect(ours.code, ours.stderr.join('\n')).toBe(0);
			expect(ours.stdout).toEqual(kernel.stdout);
			expect(ours.stdout).toContain('value through the pinned fd: 40');
			expect(ours.stdout.at(-1)).toBe('done');
		},
	);
});

describe('fd-valued maps', () => {
	it.skipIf(noKernel)(
		'prog arrays and arrays and hashes of maps take, refuse and give back objects as the kernel does',
		async () => {
			const client = await build.fdMaps();
			const kernel = await new support.Proc(support.startProcess(client, [])).done();
			expect(kernel.code, kernel.stderr.join('\n')).toBe(0);
			const segment = support.uniqueSegmentName('sysserver');
			const ours = await new support.Proc(
				await spawnWithSyscallServer(client, [], { segment, stdio: ['ignore', 'pipe', 'pipe'] }),
			).done();
			expect(ours.code, ours.stderr.join('\n')).toBe(0);
			expect(ours.stdout).toEqual(kernel.stdout);
			expect(ours.stdout).toContain('prog array: lookup slot 0: the id of the object stored');
			expect(ours.stdout).toContain('prog array: store a map: EINVAL');
			expect(ours.stdout).toContain('array of maps: store a map of another type: EINVAL');
		},
	);
});

describe('the legacy tracefs uprobe path', () => {
	/** legacy_uprobe's lines around one run of the victim (against the kernel, or bpftime). */
	async function legacy(segment?: string) {
		const tool = await build.legacy();
		const victim = await build.victim();
		const nm = await support.run('nm', [victim]);
		const sym = /^([0-9a-f]+) T target_fn$/m.exec(nm.stdout);
		expect(sym).not.toBeNull();
		// The victim's text is mapped at its file offset (gcc's PIE layout), so
		// the symbol's address is the probe's offset in the file.
		const args = [join(dir, 'counter.bpf.o'), victim, `0x${sym?.[1]}`];
		const proc = new support.Proc(
			segment
				? await spawnWithSyscallServer(tool, args, { segment, stdio: ['pipe', 'pipe', 'pipe'] })
				: support.startProcess(tool, args, { stdio: ['pipe', 'pipe', 'pipe'] }),
		);
		await proc.waitFor('stdout', /^ready$/);
		const v = segment
			? await runVictim(segment, victim)
			: await new support.Proc(support.startProcess(victim, ['100'])).done();
		expect(v.code).toBe(0);
		proc.child.stdin?.end('go\n');
		const r = await proc.done();
		expect(r.code, r.stderr.join('\n')).toBe(0);
		return r.stdout;
	}

	it.skipIf(noKernel)(
		'makes a uprobe from a uprobe_events line, attaches to its tracepoint id and deletes it, as the kernel does',
		async () => {
			const kernel = await legacy();
			expect(kernel).toContain('calls counted: 100');
			expect(await legacy(support.uniqueSegmentName('sysserver'))).toEqual(kernel);
		},
	);
});

describe('uprobe_multi links', () => {
	async function multi(segment?: string) {
		const tool = await build.uprobeMulti();
		const victim = await build.victim();
		const nm = (await support.run('nm', [victim])).stdout;
		// gcc's PIE layout maps the text at its file offset: a symbol's
		// address is its offset in the file.
		const at = (name: string) => `0x${new RegExp(`^([0-9a-f]+) T ${name}$`, 'm').exec(nm)?.[1]}`;
		const args = [join(dir, 'multi.bpf.o'), victim, at('target_fn'), at('main')];
		const proc = new support.Proc(
			segment
				? await spawnWithSyscallServer(tool, args, { segment, stdio: ['pipe', 'pipe', 'pipe'] })
				: support.startProcess(tool, args, { stdio: ['pipe', 'pipe', 'pipe'] }),
		);
		await proc.waitFor('stdout', /^ready$/);
		const v = segment
			? await runVictim(segment, victim)
			: await new support.Proc(support.startProcess(victim, ['100'])).done();
		expect(v.code).toBe(0);
		proc.child.stdin?.end('go\n');
		const r = await proc.done();
		expect(r.code, r.stderr.join('\n')).toBe(0);
		return r.stdout;
	}

	it.skipIf(noKernel)(
		'attach one program at two offsets with a cookie each, and refuse what the kernel refuses',
		async () => {
			const kernel = await multi();
			expect(kernel).toContain('cookie 1: 100 hits');
			expect(kernel).toContain('cookie 2: 1 hits');
			expect(await multi(support.uniqueSegmentName('sysserver'))).toEqual(kernel);
		},
	);
});

describe('BPF_ENABLE_STATS', () => {
	/** The stats tool's lines, with the victim run before each phase ends (against the kernel, or bpftime). */
	async function phases(segment?: string) {
		const tool = await build.stats();
		const victim = await build.victim();
		const args = [join(dir, 'counter.bpf.o'), victim];
		const proc = new support.Proc(
			segment
				? await spawnWithSyscallServer(tool, args, { segment, stdio: ['pipe', 'pipe', 'pipe'] })
				: support.startProcess(tool, args, { stdio: ['pipe', 'pipe', 'pipe'] }),
		);
		await proc.waitFor('stdout', /^ready$/);
		for (const next of [/^stats on$/, /^stats closed$/, /^stats off again/]) {
			const v = segment
				? await runVictim(segment, victim)
				: await new support.Proc(support.startProcess(victim, ['100'])).done();
			expect(v.code).toBe(0);
			proc.child.stdin?.write('go\n');
			await proc.waitFor('stdout', next);
		}
		const r = await proc.done();
		expect(r.code, r.stderr.join('\n')).toBe(0);
		return r.stdout;
	}

	it.skipIf(noKernel)('counts runs and run time while a stats descriptor is open, as the kernel does', async () => {
		const kernel = await phases();
		expect(kernel).toContain('stats on: run_cnt 100, run_time_ns grew');
		expect(await phases(support.uniqueSegmentName('sysserver'))).toEqual(kernel);
	});
});

describe('an object two tools share', () => {
	/** create, open by id, creator exits, probe, opener exits, probe: each line, against the kernel or bpftime. */
	async function sequence(segment?: string) {
		const tool = await build.share();
		const start = async (args: string[]) =>
			new support.Proc(
				segment
					? await spawnWithSyscallServer(tool, args, { segment, stdio: ['pipe', 'pipe', 'pipe'] })
					: support.startProcess(tool, args, { stdio: ['pipe', 'pipe', 'pipe'] }),
			);
		const lines: string[] = [];
		const creator = await start(['create']);
		const id = (await creator.waitFor('stdout', /^id \d+$/)).slice(3);
		const opener = await start(['open', id]);
		lines.push(await opener.waitFor('stdout', /^opened$/));
		creator.child.stdin?.end('go\n');
		expect((await creator.done()).code).toBe(0);
		lines.push(...(await (await start(['probe', id])).done()).stdout);
		opener.child.stdin?.end('go\n');
		const o = await opener.done();
		expect(o.code, o.stderr.join('\n')).toBe(0);
		lines.push(...o.stdout.slice(1));
		lines.push(...(await (await start(['probe', id])).done()).stdout);
		return lines;
	}

	it.skipIf(noKernel)('lives while either tool holds it and goes with the last, as in the kernel', async () => {
		const kernel = await sequence();
		expect(kernel).toEqual(['opened', 'probe: opens', 'value 42', 'probe: ENOENT']);
		expect(await sequence(support.uniqueSegmentName('sysserver'))).toEqual(kernel);
	});

	it('is released by the next tool when the tool that opened it is killed after its creator exited', async () => {
		const segment = support.uniqueSegmentName('sysserver');
		const tool = await build.share();
		const creator = new support.Proc(
			await spawnWithSyscallServer(tool, ['create'], { segment, stdio: ['pipe', 'pipe', 'pipe'] }),
		);
		const id = (await creator.waitFor('stdout', /^id \d+$/)).slice(3);
		const opener = new support.Proc(
			await spawnWithSyscallServer(tool, ['open', id], { segment, stdio: ['pipe', 'pipe', 'pipe'] }),
		);
		await opener.waitFor('stdout', /^opened$/);
		creator.child.stdin?.end('go\n');
		await creator.done();
		const reg = openRegistry(segment);
		try {
			expect(reg.list().filter((d) => d.kind === 'map')).toHaveLength(1);
			opener.child.kill('SIGKILL');
			await opener.done();
			const probe = await new support.Proc(
				await spawnWithSyscallServer(tool, ['probe', id], { segment, stdio: ['ignore', 'pipe', 'pipe'] }),
			).done();
			expect(probe.stdout).toEqual(['probe: ENOENT']);
			expect(reg.list()).toEqual([]);
		} finally {
			reg.close();
		}
	});
});

describe('the map commands a tool repeats', () => {
	it('allocate nothing: updates, lookups, lookups of missing keys and key walks to the end', async () => {
		const client = await build.hotPathAllocs();
		const segment = support.uniqueSegmentName('sysserver');
		const r = await new support.Proc(
			await spawnWithSyscallServer(client, [], { segment, stdio: ['ignore', 'pipe', 'pipe'] }),
		).done();
		expect(r.code, r.stderr.join('\n')).toBe(0);
		expect(r.stdout).toEqual(['allocations: 0 in 80000 calls']);
	});
});

describe('a descriptor closed while other threads use it', () => {
	it('never crashes the tool: the last close waits for the calls in flight', async () => {
		const client = await build.closeRace();
		const segment = support.uniqueSegmentName('sysserver');
		const r = await new support.Proc(
			await spawnWithSyscallServer(client, ['300'], { segment, stdio: ['ignore', 'pipe', 'pipe'] }),
		).done();
		expect(r.signal).toBeNull();
		expect(r.code, r.stderr.join('\n')).toBe(0);
		expect(r.stdout).toEqual(['rounds: many', 'done']);
	});
});

describe('a segment that is not a registry', () => {
	it('fails every bpf() call with EBADMSG, says so once, and leaves the file and the tool intact', async () => {
		const { randomBytes } = await import('node:crypto');
		const { readFileSync, writeFileSync } = await import('node:fs');
		const client = await build.badInput();
		const segment = support.uniqueSegmentName('sysserver');
		const garbage = randomBytes(65536);
		writeFileSync(`/dev/shm/${segment}`, garbage);
		const r = await new support.Proc(
			await spawnWithSyscallServer(client, [], { segment, stdio: ['ignore', 'pipe', 'pipe'] }),
		).done();
		expect(r.code).toBe(0);
		expect(r.stdout[0]).toBe('map create: EBADMSG');
		expect(r.stdout.at(-1)).toBe('done');
		const said = r.stderr.filter((l) => l.includes(`registry '${segment}'`));
		expect(said).toHaveLength(1);
		expect(said[0]).toMatch(/not a bpftime segment.*every bpf\(\) call fails with EBADMSG/);
		expect(readFileSync(`/dev/shm/${segment}`).equals(garbage)).toBe(true);
	});
});

describe('spawnWithSyscallServer', () => {
	it('passes the exit status and output of the command through', async () => {
		const r = await new support.Proc(
			await spawnWithSyscallServer('sh', ['-c', 'echo out; echo err >&2; exit 3'], {
				segment: support.uniqueSegmentName('sysserver'),
				stdio: ['ignore', 'pipe', 'pipe'],
			}),
		).done();
		expect(r).toMatchObject({ code: 3, stdout: ['out'], stderr: ['err'] });
	});

	it('rejects with ENOENT naming a command that does not exist', async () => {
		await expect(spawnWithSyscallServer('/nonexistent/tool')).rejects.toMatchObject({
			code: 'ENOENT',
			message: expect.stringContaining("'/nonexistent/tool'"),
		});
	});

	it('puts the library first in LD_PRELOAD and refuses a keepObjects that is not a boolean', () => {
		const env = syscallServerEnv({ env: { LD_PRELOAD: '/x.so' }, keepObjects: true });
		expect(env.LD_PRELOAD).toBe(`${syscallServerPath()}:/x.so`);
		expect(env.BPFTIME_KEEP_OBJECTS).toBe('1');
		expect(() => syscallServerEnv({ keepObjects: 'yes' as unknown as boolean })).toThrow(
			/Expected a boolean for keepObjects but received yes \(string\)/,
		);
	});
});
