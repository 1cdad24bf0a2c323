// Fault containment (bpftime/agent/fault_guard.hpp): a program that faults
// ends its run, is counted and disabled, and the target runs on; the
// target's own SIGSEGV handling is unchanged by the agent. Real targets,
// real faults: the programs of fixtures/faults.bpf.c dereference NULL or
// hand a helper a bad pointer, loaded with the verifier off.
import { u32, u64 } from '@bpftime/handlers';
import { BpfObject } from '@bpftime/loader';
import * as support from '@bpftime/test-support';
import { beforeAll, describe, expect, it } from 'vitest';
import { spawnWithAgent } from '../src/index.js';
import { newRegistry, Proc, runPlain, useFixtures } from './helpers.js';

const fx = useFixtures();
let target = '';
let segvTarget = '';
let faults = '';

// The kernel's verifier (and bpftime's strict one) refuse these programs.
const VERIFIER_OFF = { BPFTIME_VERIFIER: 'off' };

beforeAll(async () => {
	[target, segvTarget, faults] = await Promise.all([fx.target(), fx.segvTarget(), fx.bpf('faults')]);
});

/** Loads faults.bpf.o with the verifier off and attaches `program` to target_fn of `binary`. */
async function attachFaulting(
	reg: ReturnType<typeof newRegistry>['registry'],
	program: string,
	binary: string,
	retprobe = false,
) {
	const saved = process.env.BPFTIME_VERIFIER;
	process.env.BPFTIME_VERIFIER = 'off';
	try {
		const obj = BpfObject.open(faults);
		const loaded = await obj.load(reg, { programs: [program] });
		const link = await obj.attach(program, { kind: 'uprobe', binary, func: 'target_fn', retprobe });
		const runs = loaded.maps.get('runs');
		if (!runs) throw new Error('no map runs');
		return {
			runs: () => reg.map(runs.id, u32, u64).get(0) ?? 0n,
			/** The link's fault count in the registry, which the agent adds to. */
			faults: () => {
				const d = reg.get(link.id);
				if (d?.kind !== 'link') throw new Error(`${link.id} is not a link`);
				return d.faults;
			},
		};
	} finally {
		if (saved === undefined) delete process.env.BPFTIME_VERIFIER;
		else process.env.BPFTIME_VERIFIER = saved;
	}
}

async function traced(
	binary: string,
	args: string[],
	segment: string,
	vm: string,
	maxFaults?: number,
	env: NodeJS.ProcessEnv = {},
): Promise<Awaited<ReturnType<Proc['done']>>> {
	const child = await spawnWithAgent(binary, args, {
		segment,
		logLevel: 'info',
		maxFaults,
		env: { ...process.env, ...VERIFIER_OFF, BPFTIME_VM_NAME: vm, ...env },
		stdio: ['ignore', 'pipe', 'pipe'],
	});
	return new Proc(child).done();
}

/** The one line the agent writes when it disables a link, and the count it gives at exit. */
function faultLines(stderr: string[]) {
	const disabled = stderr.filter((l) => /disabled in this process after/.test(l));
	const atExit = stderr.map((l) => /link \d+: (\d+) runs ended by a fault(; disabled in this process)?$/.exec(l));
	const counted = atExit.find((m) => m !== null);
	return { disabled, faults: BigInt(counted?.[1] ?? 0), disabledAtExit: counted?.[2] !== undefined };
}

const THREADS = 8;
const CALLS = 2000;

describe('fault containment', { timeout: 60_000 }, () => {
	it.each(['jit', 'interpreter'])(
		'ends the runs of a program that dereferences NULL, on the %s, and disables its link after the limit: 8 threads, output and exit status unchanged',
		async (vm) => {
			const { name, registry } = newRegistry();
			const m = await attachFaulting(registry, 'deref_null', target);
			const plain = await runPlain(target, [String(THREADS), String(CALLS)]);
			const r = await traced(target, [String(THREADS), String(CALLS)], name, vm, 5);
			expect(r.signal).toBeNull();
			expect(r.code).toBe(plain.code);
			expect(r.stdout).toEqual(plain.stdout);
			const f = faultLines(r.stderr);
			expect(f.disabled).toHaveLength(1);
			expect(f.disabled[0]).toMatch(
				/link \d+: disabled in this process after 5 faults \(BPFTIME_AGENT_MAX_FAULTS=5\); the last: SIGSEGV at 0x0, pc 0x[0-9a-f]+ in /,
			);
			expect(f.disabled[0]).toMatch(vm === 'jit' ? / in generated code$/ : / in the agent \(interpreter, helper\)$/);
			// Runs already under way on other threads when the link was
			// disabled fault too; every run that started faulted.
			expect(f.faults).toBeGreaterThanOrEqual(5n);
			expect(f.faults).toBeLessThanOrEqual(BigInt(5 + THREADS - 1));
			expect(f.disabledAtExit).toBe(true);
			expect(m.runs()).toBe(f.faults);
			// The agent added its count to the link in the registry.
			expect(m.faults()).toBe(f.faults);
		},
	);

	it.each(['jit', 'interpreter'])(
		'ends the run of a program whose helper faults on the pointer it was given, on the %s',
		async (vm) => {
			const { name, registry } = newRegistry();
			const m = await attachFaulting(registry, 'bad_helper_key', target);
			const plain = await runPlain(target, ['2', '300']);
			const r = await traced(target, ['2', '300'], name, vm, 600);
			expect(r.signal).toBeNull();
			expect(r.code).toBe(plain.code);
			expect(r.stdout).toEqual(plain.stdout);
			// The limit is the number of calls: every run faulted, the
			// last one disabled the link.
			const f = faultLines(r.stderr);
			expect(f.disabled).toHaveLength(1);
			expect(f.disabled[0]).toMatch(/ in (the agent \(interpreter, helper\)|a routine a helper called)$/);
			expect(f.faults).toBe(600n);
			expect(f.disabledAtExit).toBe(true);
			expect(m.runs()).toBe(600n);
			expect(m.faults()).toBe(600n);
		},
	);

	it('ends the runs of a uretprobe program that faults, and the function returns what it returned', async () => {
		const { name, registry } = newRegistry();
		const m = await attachFaulting(registry, 'deref_null', target, true);
		const plain = await runPlain(target, ['4', '500']);
		const r = await traced(target, ['4', '500'], name, 'jit', 0);
		expect(r.signal).toBeNull();
		expect(r.code).toBe(plain.code);
		expect(r.stdout).toEqual(plain.stdout);
		expect(faultLines(r.stderr).faults).toBe(2000n);
		expect(m.runs()).toBe(2000n);
		expect(m.faults()).toBe(2000n);
		expect(r.stderr.join('\n')).toMatch(/link \d+: uretprobe attached/);
	});

	it.each(['jit', 'interpreter'])(
		'ends the run of a program that reads a truncated file mapping through its argument (SIGBUS), on the %s',
		async (vm) => {
			const sigbusTarget = await fx.sigbusTarget();
			const { name, registry } = newRegistry();
			const m = await attachFaulting(registry, 'deref_arg', sigbusTarget);
			const plain = await runPlain(sigbusTarget, ['300']);
			const r = await traced(sigbusTarget, ['300'], name, vm, 300);
			expect(plain.code).toBe(5);
			expect(r.signal).toBeNull();
			expect(r.code).toBe(5);
			expect(r.stdout).toEqual(plain.stdout);
			const f = faultLines(r.stderr);
			expect(f.disabled).toEqual([expect.stringMatching(/after 300 faults .*; the last: SIGBUS at 0x[0-9a-f]+, pc /)]);
			expect(m.runs()).toBe(300n);
			expect(m.faults()).toBe(300n);
		},
	);

	it('ends the runs of a system call tracepoint program that faults, on 8 threads making system calls', async () => {
		const victim = await fx.syscallVictim();
		const { name, registry } = newRegistry();
		const saved = process.env.BPFTIME_VERIFIER;
		process.env.BPFTIME_VERIFIER = 'off';
		const obj = BpfObject.open(faults);
		let loaded: Awaited<ReturnType<BpfObject['load']>>;
		let link: Awaited<ReturnType<BpfObject['attach']>>;
		try {
			loaded = await obj.load(registry, { programs: ['getpid_deref_null'] });
			link = await obj.attach('getpid_deref_null');
		} finally {
			if (saved === undefined) delete process.env.BPFTIME_VERIFIER;
			else process.env.BPFTIME_VERIFIER = saved;
		}
		const plain = new Proc(support.startProcess(victim, ['work', '8', '100'], { stdio: ['pipe', 'pipe', 'pipe'] }));
		await plain.waitFor('stdout', /^ready$/);
		plain.child.stdin?.end('go\n');
		const expected = await plain.done();
		const p = new Proc(
			await spawnWithAgent(victim, ['work', '8', '100'], {
				segment: name,
				logLevel: 'warn',
				maxFaults: 0,
				env: { ...process.env, ...VERIFIER_OFF },
				stdio: ['pipe', 'pipe', 'pipe'],
			}),
		);
		await p.waitFor('stdout', /^ready$/);
		p.child.stdin?.end('go\n');
		const r = await p.done();
		expect(r.signal).toBeNull();
		expect(r.code).toBe(expected.code);
		expect(r.stdout).toEqual(expected.stdout);
		// Every getpid of the 8 threads ran the program, which faulted each
		// time (the agent's own getpid calls may add a few).
		const runs = registry.map(loaded.maps.get('runs')?.id as number, u32, u64).get(0) ?? 0n;
		expect(runs).toBeGreaterThanOrEqual(800n);
		const d = registry.get(link.id);
		expect(d?.kind === 'link' && d.faults).toBe(runs);
	});

	it('takes the default limit, with a warning, when BPFTIME_AGENT_MAX_FAULTS is not a number', async () => {
		const { name, registry } = newRegistry();
		await attachFaulting(registry, 'deref_null', target);
		const r = await traced(target, ['1', '50'], name, 'jit', undefined, { BPFTIME_AGENT_MAX_FAULTS: '-3' });
		expect(r.code).toBe(7);
		expect(r.stderr.join('\n')).toMatch(
			/BPFTIME_AGENT_MAX_FAULTS='-3': expected a number of faults in \[0, 4294967295\]; using 10/,
		);
		expect(faultLines(r.stderr).disabled).toEqual([
			expect.stringMatching(/after 10 faults \(BPFTIME_AGENT_MAX_FAULTS=10\)/),
		]);
		expect(faultLines(r.stderr).faults).toBe(10n);
	});

	it.each(['jit', 'interpreter'])(
		'ends the whole run when the fault is in a callback that bpf_loop runs, on the %s',
		async (vm) => {
			const { name, registry } = newRegistry();
			const m = await attachFaulting(registry, 'fault_in_callback', target);
			const plain = await runPlain(target, ['4', '250']);
			const r = await traced(target, ['4', '250'], name, vm, 0);
			expect(r.signal).toBeNull();
			expect(r.code).toBe(plain.code);
			expect(r.stdout).toEqual(plain.stdout);
			const f = faultLines(r.stderr);
			expect(f.faults).toBe(1000n);
			// Each run counted once, before bpf_loop: none went on after it.
			expect(m.runs()).toBe(1000n);
			expect(m.faults()).toBe(1000n);
		},
	);

	it.each(['jit', 'interpreter'])(
		'does not override the return value when an override program faults after asking to, on the %s',
		async (vm) => {
			const { name, registry } = newRegistry();
			const m = await attachFaulting(registry, 'override_then_fault', target);
			const plain = await runPlain(target, [String(THREADS), '200']);
			const r = await traced(target, [String(THREADS), '200'], name, vm, 0);
			expect(r.code).toBe(plain.code);
			// An override would have made target_fn return 42.
			expect(r.stdout).toEqual(plain.stdout);
			expect(faultLines(r.stderr).faults).toBe(BigInt(THREADS * 200));
			expect(m.runs()).toBe(BigInt(THREADS * 200));
			expect(m.faults()).toBe(BigInt(THREADS * 200));
			expect(r.stderr.join('\n')).toMatch(/link \d+: override attached/);
		},
	);

	it.each([
		['an SA_SIGINFO handler installed with sigaction()', 'sigaction'],
		['a handler on an alternate stack (SA_ONSTACK)', 'onstack'],
		['a handler installed with signal()', 'signal'],
		['an SA_RESETHAND handler, whose second fault kills the program', 'resethand'],
		['no handler: the first fault kills the program', 'default'],
		['a handler installed by the rt_sigaction system call, not through libc', 'raw'],
	])('leaves the program its own SIGSEGV handling with %s, while a faulting program runs in it', async (_, mode) => {
		const { name, registry } = newRegistry();
		const m = await attachFaulting(registry, 'deref_null', segvTarget);
		const plain = await runPlain(segvTarget, [mode, '4']);
		const r = await traced(segvTarget, [mode, '4'], name, 'jit', 0);
		expect(r.code).toBe(plain.code);
		expect(r.signal).toBe(plain.signal);
		expect(r.stdout).toEqual(plain.stdout);
		// The program ran (and faulted) on the 100 calls before each of the
		// target's own faults, up to the one that killed it.
		const expected = mode === 'default' ? 100n : mode === 'resethand' ? 200n : 400n;
		expect(m.runs()).toBe(expected);
		if (plain.code === 3) {
			expect(faultLines(r.stderr).faults).toBe(expected);
			expect(m.faults()).toBe(expected);
		}
		// The watcher found the handler that bypassed sigaction() and put
		// the agent's in front of it, once.
		expect(r.stderr.filter((l) => /replaced the agent's handler without sigaction/.test(l))).toHaveLength(
			mode === 'raw' ? 1 : 0,
		);
	});
});
