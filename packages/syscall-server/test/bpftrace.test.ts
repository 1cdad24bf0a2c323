// Debian's bpftrace under libbpftime-syscall-server.so: one-liners people
// type, against a victim started with the agent, each compared with the same
// one-liner against the kernel (skipped, saying why, where bpftrace is
// missing or bpf() is refused here). BEGIN prints "ready" once every probe is
// attached (bpftrace runs BEGIN after attaching; under bpftime through
// BPF_PROG_TEST_RUN), so the victim starts only then.
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { spawnWithAgent } from '@bpftime/agent';
import * as support from '@bpftime/test-support';
import { describe, expect, it } from 'vitest';
import { spawnWithSyscallServer } from '../src/index.js';

const fixtureDir = new URL('./fixtures/', import.meta.url).pathname;

function refusal(): string | undefined {
	const v = spawnSync('bpftrace', ['--version'], { encoding: 'utf8' });
	if (v.error) return `bpftrace is not installed: ${v.error.message}`;
	const r = spawnSync('bpftool', ['prog', 'show'], { encoding: 'utf8' });
	if (r.error) return `bpftool: ${r.error.message}`;
	return r.status === 0 ? undefined : `bpf() is refused here: ${r.stderr.trim()}`;
}
const noBpftrace = refusal();

const { dir, once } = support.useBuildDir('syscall-server-bpftrace');
const build = {
	victim: () =>
		once('victim', async () => {
			await support.run('cc', ['-O2', join(fixtureDir, 'victim.c'), '-o', join(dir, 'victim')]);
			return join(dir, 'victim');
		}),
	tpVictim: () =>
		once('tp_victim', async () => {
			await support.run('cc', ['-O2', join(fixtureDir, 'tp_victim.c'), '-o', join(dir, 'tp_victim')]);
			return join(dir, 'tp_victim');
		}),
};

/** bpftrace's output for `script` while `victim args` runs, against the kernel or (segment) bpftime. */
async function oneLiner(
	script: string,
	victim: string,
	args: string[],
	segment?: string,
	printed?: { line: string; count: number },
) {
	const full = `BEGIN { printf("ready\\n"); } ${script}`;
	const child = segment
		? await spawnWithSyscallServer('bpftrace', ['-e', full], { segment, stdio: ['ignore', 'pipe', 'pipe'] })
		: support.startProcess('bpftrace', ['-e', full], { stdio: ['ignore', 'pipe', 'pipe'] });
	const proc = new support.Proc(child);
	await proc.waitFor('stdout', /^ready$/);
	const v = segment
		? await new support.Proc(
				await spawnWithAgent(victim, args, { segment, logLevel: 'warn', stdio: ['ignore', 'pipe', 'pipe'] }),
			).done()
		: await new support.Proc(support.startProcess(victim, args)).done();
	expect(v.code, v.stderr.join('\n')).toBe(0);
	// printf's records reach bpftrace through its perf buffers, after the
	// victim is done: an interrupt before it read them all would lose them
	// (with the kernel too), so wait for them first.
	if (printed)
		await new Promise<void>((resolve, reject) => {
			const deadline = Date.now() + 10_000;
			const look = () => {
				if (proc.stdout.filter((l) => l === printed.line).length >= printed.count) resolve();
				else if (Date.now() > deadline)
					reject(new Error(`bpftrace printed ${printed.line} fewer than ${printed.count} times`));
				else setTimeout(look, 20);
			};
			look();
		});
	child.kill('SIGINT');
	const r = await proc.done();
	expect(r.code, r.stderr.join('\n')).toBe(0);
	return r.stdout.filter((l) => l.trim() !== '');
}

describe.skipIf(noBpftrace)('bpftrace one-liners', () => {
	it('counts uprobe hits (count()) as under the kernel', async () => {
		const victim = await build.victim();
		const script = `uprobe:${victim}:target_fn { @calls = count(); }`;
		const kernel = await oneLiner(script, victim, ['100']);
		const ours = await oneLiner(script, victim, ['100'], support.uniqueSegmentName('sysbt'));
		expect(kernel).toContain('@calls: 100');
		expect(ours).toEqual(kernel);
	});

	it('draws a uretprobe histogram (hist(retval)) as under the kernel', async () => {
		const victim = await build.victim();
		const script = `uretprobe:${victim}:target_fn { @ret = hist(retval); }`;
		const kernel = await oneLiner(script, victim, ['100']);
		const ours = await oneLiner(script, victim, ['100'], support.uniqueSegmentName('sysbt'));
		expect(kernel.join('\n')).toMatch(/\[128, 256\)\s+42 /);
		expect(ours).toEqual(kernel);
	});

	it('runs interval probes (a timer thread of the tool) and exit() as under the kernel', async () => {
		const script = 'interval:ms:50 { @n++; if (@n == 3) { printf("three ticks\\n"); exit(); } }';
		const run = async (segment?: string) => {
			const child = segment
				? await spawnWithSyscallServer('bpftrace', ['-e', script], { segment, stdio: ['ignore', 'pipe', 'pipe'] })
				: support.startProcess('bpftrace', ['-e', script], { stdio: ['ignore', 'pipe', 'pipe'] });
			const r = await new support.Proc(child).done();
			expect(r.code, r.stderr.join('\n')).toBe(0);
			return r.stdout.filter((l) => l.trim() !== '');
		};
		const kernel = await run();
		expect(kernel).toContain('three ticks');
		expect(await run(support.uniqueSegmentName('sysbt'))).toEqual(kernel);
	});

	it('prints from a syscall tracepoint (printf through the perf buffer) as under the kernel', async () => {
		const victim = await build.tpVictim();
		const script =
			'tracepoint:syscalls:sys_enter_getppid /comm == "tp_victim"/ { @n = count(); printf("getppid nr %d\\n", args->__syscall_nr); }';
		const printed = { line: 'getppid nr 110', count: 5 };
		const kernel = await oneLiner(script, victim, ['5'], undefined, printed);
		const ours = await oneLiner(script, victim, ['5'], support.uniqueSegmentName('sysbt'), printed);
		expect(kernel.filter((l) => l === 'getppid nr 110')).toHaveLength(5);
		expect(ours).toEqual(kernel);
	});
});
