// bpftime attach / detach as the agent's API: inject() and detachAgent() on
// real running processes (test/fixtures/inject-target.c), with the registry's
// uprobe link on target_fn counting calls per process.
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { u32, u64 } from '@bpftime/handlers';
import { BpfObject } from '@bpftime/loader';
import * as support from '@bpftime/test-support';
import { beforeAll, describe, expect, it } from 'vitest';
import { BpftimeError, detachAgent, inject, injectorPath, spawnWithAgent } from '../src/index.js';
import { newRegistry, Proc, useFixtures } from './helpers.js';

const run = promisify(execFile);
const fx = useFixtures();
const fixtureDir = new URL('./fixtures/', import.meta.url).pathname;
let target = '';
let probes = '';
// SIGRTMIN + 6 in glibc (SIGRTMIN is 34): the signal inject-target counts.
const SIGNAL = 40;

beforeAll(async () => {
	const { dir } = support.useBuildDir('agent-inject');
	target = join(dir, 'inject-target');
	[, probes] = await Promise.all([
		support.run('cc', ['-O2', '-pthread', join(fixtureDir, 'inject-target.c'), '-o', target]),
		fx.bpf('probes'),
	]);
});

/** The registry with count_calls on target_fn of inject-target; `calls(pid)` reads its count. */
async function registryWithCounter() {
	const { name, registry } = newRegistry();
	const obj = BpfObject.open(probes);
	const loaded = await obj.load(registry);
	await obj.attach('count_calls', { kind: 'uprobe', binary: target, func: 'target_fn' });
	const calls = registry.map(loaded.maps.get('calls')?.id as number, u32, u64);
	return { name, calls: (pid: number) => calls.get(pid) ?? 0n };
}

function start(threads: number) {
	return new Proc(support.startProcess(target, [String(threads)], { stdio: ['pipe', 'pipe', 'pipe'] }));
}

async function plainRun(threads: number, signals = 0) {
	const p = start(threads);
	await p.waitFor('stdout', /^ready$/);
	for (let i = 0; i < signals; i++) process.kill(p.child.pid as number, SIGNAL);
	p.child.stdin?.end(`stop ${signals}\n`);
	return p.done();
}

describe('inject / detachAgent', { timeout: 60_000 }, () => {
	it('attaches to a process calling the probed function from 8 threads, counts, detaches, and the process ends as without bpftime', async () => {
		const { name, calls } = await registryWithCounter();
		const plain = await plainRun(8);
		const p = start(8);
		const pid = p.child.pid as number;
		await p.waitFor('stdout', /^ready$/);
		expect(await inject(pid, { segment: name })).toBe(1);
		await p.waitFor('stderr', /link \d+: uprobe attached at /);
		const first = calls(pid);
		await expect.poll(() => calls(pid), { timeout: 10_000 }).toBeGreaterThan(first);
		expect(await detachAgent(pid)).toBe(1);
		const atDetach = calls(pid);
		expect(atDetach).toBeGreaterThan(0n);
		p.child.stdin?.end('stop 0\n');
		const traced = await p.done();
		expect(traced.code).toBe(plain.code);
		expect(traced.code).toBe(7);
		expect(traced.stdout).toEqual(plain.stdout);
		expect(traced.stdout).toEqual(['ready', 'wrong 0', 'signals 0']);
		// Calls after the detach run unhooked (the last 1000 included); only
		// a call that entered the hook just before it may still count, at
		// most one per thread.
		expect(calls(pid) - atDetach).toBeLessThanOrEqual(8n);
	});

	it('attaches to a process blocked in read() on a pipe, whose read then completes', async () => {
		const { name, calls } = await registryWithCounter();
		const p = start(0);
		const pid = p.child.pid as number;
		await p.waitFor('stdout', /^ready$/);
		expect(await inject(pid, { segment: name })).toBe(1);
		p.child.stdin?.end('stop 0\n');
		const traced = await p.done();
		expect(traced.code).toBe(7);
		expect(traced.stdout).toEqual(['ready', 'wrong 0', 'signals 0']);
		expect(calls(pid)).toBe(1000n);
	});

	it('attaches while the process receives signals, and every signal reaches its handler', async () => {
		const { name, calls } = await registryWithCounter();
		const sent = 300;
		const plain = await plainRun(4, sent);
		const p = start(4);
		const pid = p.child.pid as number;
		await p.waitFor('stdout', /^ready$/);
		let n = 0;
		const sender = (async () => {
			for (; n < sent; n++) {
				process.kill(pid, SIGNAL);
				await new Promise((r) => setImmediate(r));
			}
		})();
		const attached = await inject(pid, { segment: name });
		const sentDuringAttach = n;
		await sender;
		expect(attached).toBe(1);
		await expect.poll(() => calls(pid), { timeout: 10_000 }).toBeGreaterThan(0n);
		p.child.stdin?.end(`stop ${sent}\n`);
		const traced = await p.done();
		expect(sentDuringAttach).toBeGreaterThan(0);
		expect(traced.code).toBe(7);
		expect(traced.stdout).toEqual(plain.stdout);
		expect(traced.stdout).toEqual(['ready', 'wrong 0', `signals ${sent}`]);
	});

	it('refuses a second attach to the same process with EEXIST, and attaches again after a detach', async () => {
		const { name, calls } = await registryWithCounter();
		const p = start(2);
		const pid = p.child.pid as number;
		await p.waitFor('stdout', /^ready$/);
		await inject(pid, { segment: name });
		const err = await inject(pid, { segment: name }).catch((e: unknown) => e);
		expect(err).toBeInstanceOf(BpftimeError);
		expect(err).toMatchObject({ code: 'EEXIST', message: expect.stringMatching(/already attached.*bpftime detach/) });
		expect(await detachAgent(pid)).toBe(1);
		await expect(detachAgent(pid)).rejects.toMatchObject({ code: 'ENOENT', message: /not attached/ });
		const atDetach = calls(pid);
		expect(await inject(pid, { segment: name })).toBe(1);
		await expect.poll(() => calls(pid), { timeout: 10_000 }).toBeGreaterThan(atDetach);
		p.child.stdin?.end('stop 0\n');
		expect((await p.done()).stdout).toEqual(['ready', 'wrong 0', 'signals 0']);
	});

	it('refuses to attach to a process started with the agent, detaches it, and attaches again', async () => {
		const { name, calls } = await registryWithCounter();
		const p = new Proc(await spawnWithAgent(target, ['2'], { segment: name, stdio: ['pipe', 'pipe', 'pipe'] }));
		const pid = p.child.pid as number;
		await p.waitFor('stdout', /^ready$/);
		await p.waitFor('stderr', /link \d+: uprobe attached at /);
		await expect(inject(pid, { segment: name })).rejects.toMatchObject({ code: 'EEXIST' });
		expect(await detachAgent(pid)).toBe(1);
		const atDetach = calls(pid);
		expect(await inject(pid, { segment: name })).toBe(1);
		await expect.poll(() => calls(pid), { timeout: 10_000 }).toBeGreaterThan(atDetach + 8n);
		p.child.stdin?.end('stop 0\n');
		const traced = await p.done();
		expect(traced.code).toBe(7);
		expect(traced.stdout).toEqual(['ready', 'wrong 0', 'signals 0']);
	});

	it('attaches to and detaches from a process whose only thread runs the probed function without a system call', async () => {
		const { name, calls } = await registryWithCounter();
		// The injector has to stop that thread in the code it hooks; it
		// takes the hooks off again and retries when the thread stopped
		// inside the bytes a hook replaced. Several rounds make that likely.
		for (let round = 0; round < 3; round++) {
			const p = new Proc(support.startProcess(target, ['busy'], { stdio: ['ignore', 'pipe', 'pipe'] }));
			const pid = p.child.pid as number;
			await p.waitFor('stdout', /^ready$/);
			expect(await inject(pid, { segment: name })).toBe(1);
			await expect.poll(() => calls(pid), { timeout: 10_000 }).toBeGreaterThan(0n);
			expect(await detachAgent(pid)).toBe(1);
			p.child.kill('SIGUSR1');
			const traced = await p.done();
			expect(traced.code).toBe(7);
			expect(traced.stdout).toEqual(['ready', 'wrong 0']);
		}
	});

	it('reports ENOENT naming the segment when it does not exist, and the process runs on', async () => {
		const p = start(1);
		const pid = p.child.pid as number;
		await p.waitFor('stdout', /^ready$/);
		await expect(inject(pid, { segment: 'bpftime_inject_test_no_such_segment' })).rejects.toMatchObject({
			code: 'ENOENT',
			message: /segment 'bpftime_inject_test_no_such_segment'/,
		});
		p.child.stdin?.end('stop 0\n');
		expect((await p.done()).stdout).toEqual(['ready', 'wrong 0', 'signals 0']);
	});

	it('rejects with ESRCH for a process that does not exist, and ENOENT detaching a process without the agent', async () => {
		await expect(inject(0x3ffffff0)).rejects.toMatchObject({ code: 'ESRCH' });
		const p = start(1);
		await p.waitFor('stdout', /^ready$/);
		await expect(detachAgent(p.child.pid as number)).rejects.toMatchObject({
			code: 'ENOENT',
			message: /agent is not loaded/,
		});
		await expect(inject(-1)).rejects.toMatchObject({ code: 'EINVAL' });
		p.child.stdin?.end('stop 0\n');
		await p.done();
	});

	it("says which user owns the process and what to do when ptrace is refused for another user's process", async (ctx) => {
		if (process.getuid?.() !== 0) ctx.skip(); // needs root to start the process as root and the injector as nobody
		const p = start(1);
		await p.waitFor('stdout', /^ready$/);
		const err = await run('setpriv', [
			'--reuid=65534',
			'--regid=65534',
			'--clear-groups',
			'--inh-caps=-all',
			'--bounding-set=-all',
			injectorPath(),
			'detach',
			String(p.child.pid),
		]).catch((e: { code: number; stderr: string }) => e);
		expect(err).toMatchObject({ code: 1 });
		expect((err as { stderr: string }).stderr).toMatch(
			/^EPERM: ptrace\(PTRACE_SEIZE, \d+\): not permitted: the process belongs to uid 0 and we run as uid 65534 without CAP_SYS_PTRACE; run bpftime attach as that user or as root/,
		);
		p.child.stdin?.end('stop 0\n');
		await p.done();
	});
});
