// System call tracepoints in the target: the same C object, written for the
// kernel, counts the system calls of one victim in bpftime and, at the same
// time, in the kernel (raw tracepoints through libbpf where bpf() is
// allowed); the counts equal each other and the numbers the victim makes.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { u32, u64 } from '@bpftime/handlers';
import { BpfObject } from '@bpftime/loader';
import * as support from '@bpftime/test-support';
import { beforeAll, describe, expect, it } from 'vitest';
import { spawnWithAgent } from '../src/index.js';
import { newRegistry, Proc, runPlain } from './helpers.js';

const fixtureDir = new URL('./fixtures/', import.meta.url).pathname;
const { dir, once } = support.useBuildDir('agent-syscalls');
let victim = '';
let bpf = '';

// x86-64 numbers (asm/unistd_64.h).
const NR = { read: 0, write: 1, close: 3, getpid: 39, openat: 257, clone3: 435 } as const;

beforeAll(async () => {
	[victim, bpf] = await Promise.all([
		once('victim', async () => {
			await support.run('cc', ['-O2', '-pthread', join(fixtureDir, 'syscall-victim.c'), '-o', join(dir, 'victim')]);
			return join(dir, 'victim');
		}),
		once('bpf', () =>
			support.compileBpf('clang', join(fixtureDir, 'syscalls.bpf.c'), join(dir, 'syscalls.bpf.o'), [
				'-D__TARGET_ARCH_x86',
			]),
		),
	]);
});

/** The kernel side: kernel-count.c (libbpf) on the same object, or why it cannot run here. */
async function kernelCounter(): Promise<string | { why: string }> {
	try {
		await support.run('cc', ['-O2', join(fixtureDir, 'kernel-count.c'), '-o', join(dir, 'kernel-count'), '-lbpf']);
		return join(dir, 'kernel-count');
	} catch (e) {
		return { why: `libbpf is not installed (${(e as Error).message.split('\n')[0]})` };
	}
}

/** Waits until the main thread of pid sleeps in read(2) (/proc/<pid>/syscall starts with "0 "). */
async function blockedInRead(pid: number): Promise<void> {
	for (let i = 0; i < 500; i++) {
		const s = readFileSync(`/proc/${pid}/syscall`, 'utf8');
		if (s.startsWith('0 ')) return;
		await new Promise((r) => setTimeout(r, 10));
	}
	throw new Error(`pid ${pid} never blocked in read`);
}

async function loadCounters(reg: ReturnType<typeof newRegistry>['registry']) {
	const obj = BpfObject.open(bpf);
	const loaded = await obj.load(reg);
	const links = await obj.attachAll();
	const map = (name: string) => {
		const m = loaded.maps.get(name);
		if (!m) throw new Error(`no map ${name}`);
		return reg.map(m.id, u32, u64);
	};
	return { links, map };
}

describe('system call tracepoints', { timeout: 120_000 }, () => {
	it('count every system call of 4 threads as the kernel counts them, and as many as the victim makes', async ({
		skip,
	}) => {
		const threads = 4;
		const iters = 500;
		const n = BigInt(threads * iters);
		const { name, registry } = newRegistry();
		const { links, map } = await loadCounters(registry);
		expect(links.length).toBe(6);
		const p = new Proc(
			await spawnWithAgent(victim, ['work', String(threads), String(iters)], {
				segment: name,
				// Quiet: a log line is a write (and a getpid for its prefix).
				logLevel: 'warn',
				stdio: ['pipe', 'pipe', 'pipe'],
			}),
		);
		const pid = p.child.pid as number;
		// The agent attaches before main() runs.
		await p.waitFor('stdout', /^ready$/);
		await blockedInRead(pid);

		const kernel = await kernelCounter();
		let k: Proc | undefined;
		let kernelWhy = typeof kernel === 'string' ? '' : kernel.why;
		if (typeof kernel === 'string') {
			k = new Proc(
				support.startProcess(kernel, [bpf, String(pid), 'enters', 'exits', 'typed'], {
					stdio: ['pipe', 'pipe', 'pipe'],
				}),
			);
			const first = await k.waitFor('stdout', /^(ready|skip|error)/);
			const refused = k.stdout.filter((l) => /^unattached count_/.test(l));
			if (first !== 'ready' || refused.length) {
				kernelWhy = `the kernel refused: ${[first, ...refused].join('; ')}`;
				k = undefined;
			}
		}
		// Counting starts now, in both, while the victim sleeps in read().
		map('cfg').set(0, BigInt(pid));
		p.child.stdin?.end('go\n');
		const r = await p.done();
		expect(r.code).toBe(3);
		expect(r.stdout).toEqual(['ready', `done ${3 * threads * iters}`]);

		const enters = new Map(map('enters').readAll());
		const exits = new Map(map('exits').readAll());
		const typed = new Map(map('typed').readAll());
		// The numbers the victim makes (after the read it sleeps in: its
		// exit only, and the write of "done").
		const known: [string, number, bigint, bigint][] = [
			['getpid', NR.getpid, n, n],
			['openat', NR.openat, n, n],
			['read', NR.read, n, n + 1n],
			['write', NR.write, n + 1n, n + 1n],
			['close', NR.close, n, n],
			['clone3', NR.clone3, BigInt(threads), BigInt(2 * threads)],
		];
		for (const [what, nr, e, x] of known) {
			expect([what, enters.get(nr), exits.get(nr)]).toEqual([what, e, x]);
		}
		expect(typed.get(0)).toBe(n); // sys_enter_getpid
		expect(typed.get(1)).toBe(n); // sys_exit_getpid
		expect(typed.get(2)).toBe(n); // sys_enter_openat of /dev/null
		expect(typed.get(3)).toBe(n); // sys_exit_openat, fd >= 0
		expect(typed.get(4)).toBe(0n); // getpid returned the tgid

		if (!k) {
			skip(`kernel comparison: ${kernelWhy}`);
			return;
		}
		k.child.stdin?.end('dump\n');
		const kr = await k.done();
		const kmap = (m: string) =>
			new Map(
				kr.stdout
					.filter((l) => l.startsWith(`${m} `))
					.map((l) => {
						const [, key, v] = l.split(' ');
						return [Number(key), BigInt(v as string)] as const;
					}),
			);
		const kEnters = kmap('enters');
		const kExits = kmap('exits');
		// exit: the threads' own exit calls, glibc's exit loop of
		// start_thread (run with every signal blocked), and the agent's
		// watcher thread; exit_group: the victim's.
		for (const [what, nr] of [...known, ['exit', 60], ['exit_group', 231]] as [string, number][]) {
			expect([what, enters.get(nr) ?? 0n, exits.get(nr) ?? 0n]).toEqual([
				what,
				kEnters.get(nr) ?? 0n,
				kExits.get(nr) ?? 0n,
			]);
		}
		expect(enters.get(60)).toBeGreaterThanOrEqual(BigInt(threads));
		// The per-syscall tracepoints, where the kernel attached them all.
		if (!kr.stdout.some((l) => l.startsWith('unattached '))) {
			const kTyped = kmap('typed');
			expect([0, 1, 2, 3].map((i) => typed.get(i))).toEqual([0, 1, 2, 3].map((i) => kTyped.get(i)));
		}
	});

	it('reports the calls of a syscall site that cannot be rewritten through syscall user dispatch, in threads started later and with every signal blocked', async () => {
		const threads = 2;
		const iters = 300;
		const { name, registry } = newRegistry();
		const { map } = await loadCounters(registry);
		const p = new Proc(
			await spawnWithAgent(victim, ['left', String(threads), String(iters)], {
				segment: name,
				logLevel: 'warn',
				stdio: ['pipe', 'pipe', 'pipe'],
			}),
		);
		const pid = p.child.pid as number;
		await p.waitFor('stdout', /^ready$/);
		map('cfg').set(0, BigInt(pid));
		p.child.stdin?.end('go\n');
		const r = await p.done();
		expect(r.code).toBe(6);
		// The forked child's calls at the left site returned its pid too.
		expect(r.stdout).toEqual(['ready', `done ${(threads + 2) * iters}`]);
		expect(p.stderr.join('\n')).toMatch(
			/sites left as they were: their calls are reported through syscall user dispatch/,
		);
		// left_getpid in each thread and then in the main thread, and one
		// getpid() through libc's rewritten site in each of them.
		const n = BigInt((threads + 1) * (iters + 1));
		expect([map('enters').get(NR.getpid), map('exits').get(NR.getpid)]).toEqual([n, n]);
		expect([map('typed').get(0), map('typed').get(1), map('typed').get(4)]).toEqual([n, n, 0n]);
		expect(map('enters').get(NR.clone3)).toBe(BigInt(threads));
	});

	it('attaches links added while 4 threads make system calls, rewriting the sites under them', async () => {
		const { name, registry } = newRegistry();
		const p = new Proc(
			await spawnWithAgent(victim, ['spin', '4'], {
				segment: name,
				logLevel: 'info',
				pollMs: 20,
				stdio: ['pipe', 'pipe', 'pipe'],
			}),
		);
		const pid = p.child.pid as number;
		await p.waitFor('stdout', /^ready$/);
		const { links, map } = await loadCounters(registry);
		// Counting starts once the agent attached all six links, so that
		// enters and exits are counted over the same span.
		for (const l of links) await p.waitFor('stderr', new RegExp(`link ${l.id}: .* attached`));
		map('cfg').set(0, BigInt(pid));
		const counted = async (min: bigint) => {
			for (let i = 0; i < 1000; i++) {
				if ((map('enters').get(NR.getpid) ?? 0n) >= min && (map('typed').get(3) ?? 0n) >= min) return;
				await new Promise((r) => setTimeout(r, 10));
			}
			throw new Error(`fewer than ${min} getpid/openat counted; agent: ${p.stderr.join('\n')}`);
		};
		await counted(10_000n);
		p.child.stdin?.end('stop\n');
		const r = await p.done();
		expect(r.code).toBe(4);
		expect(r.stdout).toEqual(['ready', 'done 4']);
		const enters = map('enters').get(NR.getpid) ?? 0n;
		const exits = map('exits').get(NR.getpid) ?? 0n;
		// A call in flight when counting started reports its exit only; one
		// in flight at the end, its enter only.
		expect(enters - exits).toBeLessThanOrEqual(4n);
		expect(exits - enters).toBeLessThanOrEqual(4n);
		expect(map('typed').get(4)).toBe(0n);
	});

	it('leaves the output and status of the victim unchanged under a SIGALRM storm during blocking reads', async () => {
		const { name, registry } = newRegistry();
		await loadCounters(registry);
		const plain = await runPlain(victim, ['signals', '400']);
		const traced = await new Proc(
			await spawnWithAgent(victim, ['signals', '400'], { segment: name, stdio: ['ignore', 'pipe', 'pipe'] }),
		).done();
		expect(plain.code).toBe(0);
		expect(traced.code).toBe(0);
		expect(traced.stdout).toEqual(plain.stdout);
	});

	it('leaves fork, vfork, posix_spawn and exec unchanged', async () => {
		const { name, registry } = newRegistry();
		const { map } = await loadCounters(registry);
		const plain = await runPlain(victim, ['forkexec']);
		const p = new Proc(
			await spawnWithAgent(victim, ['forkexec'], { segment: name, stdio: ['ignore', 'pipe', 'pipe'] }),
		);
		const traced = await p.done();
		expect(plain.code).toBe(0);
		expect(traced.code).toBe(0);
		expect(traced.stdout).toEqual(plain.stdout);
		expect(traced.stdout).toContain('fork status 5');
		// cfg is 0 (no process counts): only the programs' own checks ran.
		expect(map('typed').get(4)).toBe(0n);
	});
});
