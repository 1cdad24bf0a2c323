// Event printers under libbpftime-syscall-server.so: libbpf's
// ring_buffer__poll and perf_buffer__poll (epoll over the map's or the perf
// events' descriptors, the rings mmap()ed), each compared with the same run
// against the kernel (skipped, saying why, where bpf() is refused here).
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { spawnWithAgent } from '@bpftime/agent';
import * as support from '@bpftime/test-support';
import { describe, expect, it } from 'vitest';
import { spawnWithSyscallServer } from '../src/index.js';

const fixtureDir = new URL('./fixtures/', import.meta.url).pathname;

function kernelBpfRefusal(): string | undefined {
	const r = spawnSync('bpftool', ['prog', 'show'], { encoding: 'utf8' });
	if (r.error) return `bpftool: ${r.error.message}`;
	return r.status === 0 ? undefined : `bpf() is refused here: ${r.stderr.trim()}`;
}
const clang = support.findClang();
const noKernel = kernelBpfRefusal();
const noTools = clang ? undefined : 'clang is not installed';

const { dir, once } = support.useBuildDir('syscall-server-events');
const build = {
	victim: () =>
		once('victim', async () => {
			await support.run('cc', ['-O2', join(fixtureDir, 'victim.c'), '-o', join(dir, 'victim')]);
			return join(dir, 'victim');
		}),
	printer: () =>
		once('event_printer', async () => {
			const obj = await support.compileBpf(
				clang ?? 'clang',
				join(fixtureDir, 'events.bpf.c'),
				join(dir, 'events.bpf.o'),
				['-D__TARGET_ARCH_x86'],
			);
			const skel = await support.run('bpftool', ['gen', 'skeleton', obj, 'name', 'events_bpf']);
			writeFileSync(join(dir, 'events.skel.h'), skel.stdout);
			await support.run('cc', [
				'-O2',
				`-I${dir}`,
				join(fixtureDir, 'event_printer.c'),
				'-lbpf',
				'-o',
				join(dir, 'event_printer'),
			]);
			return join(dir, 'event_printer');
		}),
	forkThreads: () =>
		once('fork_threads', async () => {
			await support.run('cc', ['-O2', join(fixtureDir, 'fork_threads.c'), '-o', join(dir, 'fork_threads')]);
			return join(dir, 'fork_threads');
		}),
	bufferMmap: () =>
		once('buffer_mmap', async () => {
			await support.run('cc', ['-O2', join(fixtureDir, 'buffer_mmap.c'), '-o', join(dir, 'buffer_mmap')]);
			return join(dir, 'buffer_mmap');
		}),
};

const CALLS = 200;

/** The printer's lines and its poll count (stderr), after `CALLS` events of a victim. */
async function runPrinter(mode: 'ring' | 'perf', segment?: string) {
	const tool = await build.printer();
	const victim = await build.victim();
	const args = [victim, String(CALLS), mode];
	const child = segment
		? await spawnWithSyscallServer(tool, args, { segment, stdio: ['ignore', 'pipe', 'pipe'] })
		: support.startProcess(tool, args, { stdio: ['ignore', 'pipe', 'pipe'] });
	const proc = new support.Proc(child);
	await proc.waitFor('stdout', /^ready$/);
	const v = segment
		? await new support.Proc(
				await spawnWithAgent(victim, [String(CALLS)], {
					segment,
					logLevel: 'warn',
					stdio: ['ignore', 'pipe', 'pipe'],
				}),
			).done()
		: await new support.Proc(support.startProcess(victim, [String(CALLS)])).done();
	expect(v.code, v.stderr.join('\n')).toBe(0);
	const r = await proc.done();
	expect(r.code, r.stderr.join('\n')).toBe(0);
	const polls = Number(/polls (\d+)/.exec(r.stderr.join('\n'))?.[1] ?? Number.NaN);
	return { stdout: r.stdout, polls };
}

describe.skipIf(noTools)('an event printer tool', () => {
	it.skipIf(noKernel).each(['ring', 'perf'] as const)(
		'prints every event of a victim through %s buffer polling as it does under the kernel',
		async (mode) => {
			const kernel = await runPrinter(mode);
			const ours = await runPrinter(mode, support.uniqueSegmentName('sysevents'));
			expect(kernel.stdout).toContain('event seq=0 x=0 x^2=0 tag=target');
			expect(kernel.stdout).toHaveLength(CALLS + 2);
			// A perf buffer is one ring per CPU, read ring by ring: when the
			// victim moves between CPUs the order across them is not defined
			// (under the kernel either), so perf lines compare as a set.
			const order = (lines: string[]) => (mode === 'perf' ? [...lines].sort() : lines);
			expect(order(ours.stdout)).toEqual(order(kernel.stdout));
			// 100 ms poll timeouts over at most 10 s: a descriptor that
			// stayed readable with nothing to read would spin thousands
			// of times.
			expect(ours.polls).toBeLessThan(150);
		},
	);

	it.skipIf(noKernel)(
		'forks with a ring buffer watched and a timer running; the child exits through exit() and the parent goes on',
		async () => {
			const tool = await build.forkThreads();
			const kernel = await new support.Proc(support.startProcess(tool, [])).done();
			expect(kernel.code, kernel.stderr.join('\n')).toBe(0);
			const ours = await new support.Proc(
				await spawnWithSyscallServer(tool, [], {
					segment: support.uniqueSegmentName('sysevents'),
					stdio: ['ignore', 'pipe', 'pipe'],
				}),
			).done();
			expect(ours.code, ours.stderr.join('\n')).toBe(0);
			expect(ours.stdout).toEqual(kernel.stdout);
			expect(ours.stdout).toContain('child: exited 7');
		},
	);

	it.skipIf(noKernel)(
		'maps ring buffer and perf event descriptors, and opens timer events, with the kernel’s permissions and errnos',
		async () => {
			const tool = await build.bufferMmap();
			const kernel = await new support.Proc(support.startProcess(tool, [])).done();
			expect(kernel.code, kernel.stderr.join('\n')).toBe(0);
			const segment = support.uniqueSegmentName('sysevents');
			const ours = await new support.Proc(
				await spawnWithSyscallServer(tool, [], { segment, stdio: ['ignore', 'pipe', 'pipe'] }),
			).done();
			expect(ours.code, ours.stderr.join('\n')).toBe(0);
			expect(ours.stdout).toEqual(kernel.stdout);
			expect(ours.stdout).toContain('producer page rw: EPERM');
			expect(ours.stdout).toContain('data twice: same');
		},
	);
});
