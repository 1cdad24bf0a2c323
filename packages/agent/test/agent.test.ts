import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, truncateSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { ProgType, u32, u64 } from '@bpftime/handlers';
import { BpfObject, findFuncOffset } from '@bpftime/loader';
import { Segment } from '@bpftime/shm';
import { backendUnavailable } from '@bpftime/vm';
import { beforeAll, describe, expect, it, onTestFinished } from 'vitest';
import { agentEnv, agentPath, BpftimeError, type SpawnWithAgentOptions, spawnWithAgent } from '../src/index.js';
import { newRegistry, Proc, runPlain, segmentName, useFixtures } from './helpers.js';

// The LLVM backend where @bpftime/vm built its plugin (llvm-19-dev).
const llvmMissing = backendUnavailable('llvm');
if (llvmMissing) console.log(`skipped: the llvm backend: ${llvmMissing}`);

const run = promisify(execFile);
const fx = useFixtures();
let target = '';
let probes = '';

beforeAll(async () => {
	[target, probes] = await Promise.all([fx.target(), fx.bpf('probes')]);
});

/** Loads probes.bpf.o and attaches `programs` to target_fn of the target. */
async function attach(reg: ReturnType<typeof newRegistry>['registry'], programs: string[], pid?: number) {
	const obj = BpfObject.open(probes);
	const loaded = await obj.load(reg);
	for (const p of programs) {
		await obj.attach(p, { kind: 'uprobe', binary: target, func: 'target_fn', retprobe: p === 'sum_returns' }, { pid });
	}
	const mapId = (name: string) => {
		const m = loaded.maps.get(name);
		if (!m) throw new Error(`no map ${name}`);
		return m.id;
	};
	return {
		calls: () => new Map(reg.map(mapId('calls'), u32, u64).readAll()),
		returns: () => reg.map(mapId('returns'), u32, u64).readAll(),
	};
}

/** The target run with the agent on `segment` (and `options`: log level, log output, env), its output piped. */
async function withAgent(
	args: string[],
	segment: string,
	{
		stdin = 'ignore',
		...options
	}: { stdin?: 'ignore' | 'pipe' } & Omit<SpawnWithAgentOptions, 'segment' | 'stdio'> = {},
) {
	const child = await spawnWithAgent(target, args, { ...options, segment, stdio: [stdin, 'pipe', 'pipe'] });
	return new Proc(child);
}

describe('libbpftime-agent.so', { timeout: 60_000 }, () => {
	it('exports no symbol into the target but the entry points of bpftime attach and detach and the signal-disposition functions it interposes', async () => {
		const { stdout } = await run('nm', ['-D', '--defined-only', agentPath()]);
		const names = stdout
			.trim()
			.split('\n')
			.map((l) => l.split(' ').at(-1));
		expect(names.sort()).toEqual([
			'bpftime_agent_detach',
			'bpftime_agent_inject',
			'bsd_signal',
			'sigaction',
			'signal',
			'sysv_signal',
		]);
	});

	it('leaves the output and exit status of the target unchanged when the registry is missing', async () => {
		const segment = segmentName();
		const plain = await runPlain(target, ['2', '1000']);
		const traced = await (await withAgent(['2', '1000'], segment)).done();
		expect(plain.code).toBe(7);
		expect(traced.code).toBe(7);
		expect(traced.stdout).toEqual(plain.stdout);
		expect(traced.stderr.join('\n')).toMatch(/no registry: ENOENT: segment '.*' does not exist/);
	});

	it('leaves the target unchanged when the registry holds a program that fails to load or a probe that cannot be placed', async () => {
		const { name, registry } = newRegistry();
		const offset = findFuncOffset(target, 'target_fn', 'test');
		// r0 = bpf_get_current_task(): a helper bpftime does not provide, refused at instantiation.
		const bad = registry.loadProg({
			type: ProgType.Kprobe,
			name: 'needs_task',
			license: 'GPL',
			insns: Buffer.from('85000000' + '23000000' + 'b700000000000000' + '9500000000000000', 'hex'),
		});
		const pe1 = registry.createPerfEvent({ type: 'uprobe', path: target, offset });
		registry.createLink({ progId: bad.id, targetId: pe1.id });
		// A good program on an offset far outside the file: the hook cannot be placed.
		const good = registry.loadProg({
			type: ProgType.Kprobe,
			name: 'ret0',
			license: 'GPL',
			insns: Buffer.from('b7000000000000009500000000000000', 'hex'),
		});
		const pe2 = registry.createPerfEvent({ type: 'uprobe', path: target, offset: 0x7fff_0000n });
		registry.createLink({ progId: good.id, targetId: pe2.id });

		const plain = await runPlain(target, ['2', '1000']);
		const traced = await (await withAgent(['2', '1000'], name)).done();
		expect(traced.code).toBe(plain.code);
		expect(traced.stdout).toEqual(plain.stdout);
		const log = traced.stderr.join('\n');
		expect(log).toMatch(/link \d+: uprobe .*target\+0x[0-9a-f]+: .*current_task/);
		expect(log).toMatch(/link \d+: uprobe .*target\+0x7fff0000: /);
	});

	it.each(['jit', 'interpreter'])('counts every call of 8 threads exactly on the %s', async (vm) => {
		const { name, registry } = newRegistry();
		const maps = await attach(registry, ['count_calls']);
		const plain = await runPlain(target, ['8', '20000']);
		const p = await withAgent(['8', '20000'], name, { env: { ...process.env, BPFTIME_VM_NAME: vm } });
		const traced = await p.done();
		expect(traced.code).toBe(7);
		expect(traced.stdout).toEqual(plain.stdout);
		expect(maps.calls().get(p.child.pid as number)).toBe(160_000n);
		expect(traced.stderr.join('\n')).toMatch(new RegExp(`link \\d+: uprobe attached at .*\\(\\w+, ${vm}\\)`));
	});

	it.skipIf(llvmMissing !== undefined)('counts every call of 8 threads exactly on the llvm backend', async () => {
		const { name, registry } = newRegistry();
		const maps = await attach(registry, ['count_calls']);
		const plain = await runPlain(target, ['8', '20000']);
		const p = await withAgent(['8', '20000'], name, { env: { ...process.env, BPFTIME_VM_NAME: 'llvm' } });
		const traced = await p.done();
		expect(traced.code).toBe(7);
		expect(traced.stdout).toEqual(plain.stdout);
		expect(maps.calls().get(p.child.pid as number)).toBe(160_000n);
		expect(traced.stderr.join('\n')).toMatch(/link \d+: uprobe attached at .*\(\w+, llvm\)/);
	});

	it('falls back to the JIT, saying so once, where the LLVM backend cannot be loaded', async () => {
		const { name, registry } = newRegistry();
		const maps = await attach(registry, ['count_calls']);
		const env = { ...process.env, BPFTIME_VM_NAME: 'llvm', BPFTIME_VM_LLVM_LIB: '/nonexistent/libbpftime_vm_llvm.so' };
		const p = await withAgent(['2', '1000'], name, { env });
		const traced = await p.done();
		expect(traced.code).toBe(7);
		expect(maps.calls().get(p.child.pid as number)).toBe(2000n);
		const log = traced.stderr.join('\n');
		expect(log).toMatch(/link \d+: uprobe attached at .*\(\w+, jit\)/);
		const said = log.match(
			/BPFTIME_VM_NAME=llvm: .*the LLVM backend is not available.*programs run on the jit instead/g,
		);
		expect(said).toHaveLength(1);
		expect(log).toContain('/nonexistent/libbpftime_vm_llvm.so');
	});

	it('writes its log to BPFTIME_LOG_OUTPUT, filtered by SPDLOG_LEVEL', async () => {
		const segment = segmentName();
		const dir = mkdtempSync(join(tmpdir(), 'bpftime-agent-log-'));
		onTestFinished(() => rmSync(dir, { recursive: true, force: true }));
		const file = join(dir, 'agent.log');
		const toFile = await (await withAgent(['1', '10'], segment, { logOutput: file, logLevel: 'info' })).done();
		expect(toFile.code).toBe(7);
		expect(toFile.stderr.filter((l) => l.includes('[bpftime-agent'))).toEqual([]);
		expect(readFileSync(file, 'utf8')).toMatch(/^\[bpftime-agent \d+\] \[info\] no registry: ENOENT: /m);
		const quiet = await (await withAgent(['1', '10'], segment, { logLevel: 'off' })).done();
		expect(quiet.code).toBe(7);
		expect(quiet.stderr).toEqual([]);
	});

	it('attaches a link added after the target started', async () => {
		const { name, registry } = newRegistry();
		const p = await withAgent(['1', '1000', 'wait'], name, { stdin: 'pipe' });
		await p.waitFor('stdout', /^ready$/);
		await p.waitFor('stderr', /registry '.*' opened/);
		const maps = await attach(registry, ['count_calls']);
		await p.waitFor('stderr', /link \d+: uprobe attached at /);
		p.child.stdin?.end('go\n');
		const traced = await p.done();
		expect(traced.code).toBe(7);
		expect(maps.calls().get(p.child.pid as number)).toBe(1000n);
	});

	it('detaches a link released while the target runs, and the function runs as before', async () => {
		const { name, registry } = newRegistry();
		const obj = BpfObject.open(probes);
		const loaded = await obj.load(registry);
		const link = await obj.attach('count_calls', { kind: 'uprobe', binary: target, func: 'target_fn' });
		const calls = registry.map(loaded.maps.get('calls')?.id as number, u32, u64);
		const plain = await runPlain(target, ['2', '1000']);
		const p = await withAgent(['2', '1000', 'twice'], name, { stdin: 'pipe' });
		await p.waitFor('stdout', /^half /);
		link.close();
		await p.waitFor('stderr', new RegExp(`link ${link.id}: detached from `));
		p.child.stdin?.end('again\n');
		const traced = await p.done();
		expect(traced.code).toBe(7);
		expect(traced.stdout.at(-1)).toBe(`sum ${2 * Number(/^sum (\d+)$/.exec(plain.stdout[0] as string)?.[1])}`);
		expect(calls.get(p.child.pid as number)).toBe(2000n);
	});

	it('attaches a probe on a library that the target loads later with dlopen', async () => {
		const { name, registry } = newRegistry();
		const lib = await fx.lib();
		const obj = BpfObject.open(probes);
		const loaded = await obj.load(registry);
		await obj.attach('count_calls', { kind: 'uprobe', binary: lib, func: 'lib_fn' });
		const p = await withAgent(['1', '500', 'wait', `dlopen=${lib}`], name, { stdin: 'pipe' });
		await p.waitFor('stdout', /^ready$/);
		await p.waitFor('stderr', /link \d+: .*: module not loaded; pending until it is/);
		p.child.stdin?.end('go\n');
		const traced = await p.done();
		expect(traced.code).toBe(7);
		// 3i + 2 for i < 500.
		expect(traced.stdout).toEqual(['ready', `sum ${3 * ((499 * 500) / 2) + 2 * 500}`]);
		expect(registry.map(loaded.maps.get('calls')?.id as number, u32, u64).get(p.child.pid as number)).toBe(500n);
		// Placed as a jump: the agent's watcher thread answers the signal
		// bpftime::attach stops threads with (else it falls back to int3).
		expect(traced.stderr.join('\n')).toMatch(/lib_fn\+0x0 .*inline_jump/);
	});

	it('does not run a program again from a probed function its own helper calls', async () => {
		const { name, registry } = newRegistry();
		const obj = BpfObject.open(probes);
		await obj.load(registry);
		await obj.attach('printk_write', { kind: 'uprobe', binary: 'libc.so.6', func: 'write' });
		const plain = await runPlain(target, ['1', '10']);
		const traced = await (await withAgent(['1', '10'], name, { logLevel: 'off' })).done();
		expect(traced.code).toBe(7);
		expect(traced.stdout).toEqual(plain.stdout);
		// The target's one write to stdout ran the program; the write of
		// bpf_trace_printk to stderr, nested in it, did not.
		expect(traced.stderr.filter((l) => /write to fd 1$/.test(l))).toHaveLength(1);
		expect(traced.stderr.filter((l) => /write to fd 2$/.test(l))).toEqual([]);
	});

	it('runs a program on malloc without allocating: no hit is skipped as nested', async () => {
		const { name, registry } = newRegistry();
		const obj = BpfObject.open(probes);
		const loaded = await obj.load(registry);
		await obj.attach('count_calls', { kind: 'uprobe', binary: 'libc.so.6', func: 'malloc' });
		const p = await withAgent(['8', '1000'], name);
		const traced = await p.done();
		expect(traced.code).toBe(7);
		// pthread_create and stdio allocate: the program ran on those mallocs...
		const calls = registry.map(loaded.maps.get('calls')?.id as number, u32, u64);
		expect(calls.get(p.child.pid as number)).toBeGreaterThan(0n);
		// ...and nothing the program, its helpers, the map or the VM do
		// called malloc again under it, or the agent would report skipped hits at exit.
		expect(traced.stderr.filter((l) => /hits skipped/.test(l))).toEqual([]);
	});

	it('hands the return value to a uretprobe program', async () => {
		const { name, registry } = newRegistry();
		const maps = await attach(registry, ['sum_returns']);
		const traced = await (await withAgent(['4', '5000'], name)).done();
		expect(traced.code).toBe(7);
		// Each thread returns 2i+1 for i < 5000: 5000^2 per thread.
		expect(traced.stdout).toEqual([`sum ${4 * 5000 * 5000}`]);
		expect(maps.returns()).toEqual([
			[0, BigInt(4 * 5000 * 5000)],
			[1, 20_000n],
		]);
	});

	it('skips the function and returns what an override program chose', async () => {
		const { name, registry } = newRegistry();
		await attach(registry, ['zero_odd']);
		const traced = await (await withAgent(['1', '1000'], name)).done();
		expect(traced.code).toBe(7);
		// Even i run target_fn (2i+1), odd i return 0.
		let expected = 0;
		for (let i = 0; i < 1000; i += 2) expected += 2 * i + 1;
		expect(traced.stdout).toEqual([`sum ${expected}`]);
	});

	it('runs a program that writes its registers on a copy, leaving the target its own', async () => {
		const { name, registry } = newRegistry();
		const maps = await attach(registry, ['clobber_regs', 'read_into_regs', 'count_calls']);
		const p = await withAgent(['2', '1000'], name, { logLevel: 'info' });
		const traced = await p.done();
		expect(traced.code).toBe(7);
		// Each thread returns 2i+1 for i < 1000: 1000^2 per thread.
		expect(traced.stdout).toEqual([`sum ${2 * 1000 * 1000}`]);
		expect(maps.returns()[1]).toEqual([1, 2000n]);
		expect(maps.calls().get(p.child.pid as number)).toBe(2000n);
		// Only the programs that write (by a store, through a helper) pay for the copy.
		const attached = traced.stderr.filter((l) => /link \d+: uprobe attached at/.test(l));
		expect(attached).toHaveLength(3);
		expect(
			attached.filter((l) => l.endsWith('on a copy of the registers: the program may write its context)')),
		).toHaveLength(2);
	});

	it('keeps the hooks in a forked child, which counts under its own pid', async () => {
		const { name, registry } = newRegistry();
		const maps = await attach(registry, ['count_calls']);
		const p = await withAgent(['1', '3000', 'fork'], name);
		const traced = await p.done();
		expect(traced.code).toBe(7);
		const counts = maps.calls();
		expect(counts.size).toBe(2);
		expect(counts.get(p.child.pid as number)).toBe(3000n);
		expect([...counts.values()]).toEqual([3000n, 3000n]);
	});

	it('attaches again in a program the target execs, unless LD_PRELOAD is dropped first', async () => {
		const { name, registry } = newRegistry();
		const maps = await attach(registry, ['count_calls']);
		// exec keeps the pid: the count of the shell's pid is the exec'ed target's.
		const kept = await spawnWithAgent('sh', ['-c', `exec ${target} 1 300`], {
			segment: name,
			stdio: ['ignore', 'pipe', 'pipe'],
		});
		const keptRun = await new Proc(kept).done();
		expect(keptRun.code).toBe(7);
		expect(maps.calls().get(kept.pid as number)).toBe(300n);
		const dropped = await spawnWithAgent('sh', ['-c', `exec env -u LD_PRELOAD ${target} 1 300`], {
			segment: name,
			stdio: ['ignore', 'pipe', 'pipe'],
		});
		const droppedRun = await new Proc(dropped).done();
		expect(droppedRun.code).toBe(7);
		expect(maps.calls().has(dropped.pid as number)).toBe(false);
	});

	it('attaches only the links whose pid filter names this process', async () => {
		const { name, registry } = newRegistry();
		const maps = await attach(registry, ['count_calls'], 1);
		const traced = await (await withAgent(['1', '100'], name)).done();
		expect(traced.code).toBe(7);
		expect(maps.calls().size).toBe(0);
	});
});

// Issue 17, item 5: the watcher checks the segment's file before each look at
// the registry; a file cut short would raise SIGBUS on its next read.
describe('a segment file truncated, removed or replaced under a running target', { timeout: 60_000 }, () => {
	it.each([
		['truncated', 'its file was truncated to 0 bytes \\(\\d+ mapped\\)'],
		['removed', 'its file was removed'],
		['replaced', 'its file was replaced by another'],
	])('stops the programs and says so once when the file is %s; the target runs to its end', async (how, message) => {
		const { name, registry } = newRegistry();
		await attach(registry, ['count_calls']);
		// Nothing of it is touched here any more: its pages may go.
		registry.close();
		const plain = await runPlain(target, ['2', '1000']);
		const p = await withAgent(['2', '1000', 'twice'], name, { stdin: 'pipe' });
		await p.waitFor('stdout', /^half /);
		const path = `/dev/shm/${name}`;
		if (how === 'truncated') truncateSync(path, 0);
		else {
			rmSync(path);
			if (how === 'replaced') Segment.create({ name, sizeMb: 1 }).close();
		}
		await p.waitFor('stderr', new RegExp(`segment '${name}': ${message}: 1 link\\(s\\) detached`));
		p.child.stdin?.end('again\n');
		const traced = await p.done();
		expect(traced.signal).toBeNull();
		expect(traced.code).toBe(7);
		expect(traced.stdout.at(-1)).toBe(`sum ${2 * Number(/^sum (\d+)$/.exec(plain.stdout[0] as string)?.[1])}`);
		expect(traced.stderr.filter((l) => new RegExp(message).test(l))).toHaveLength(1);
	});
});

describe('spawnWithAgent', () => {
	it('rejects with ENOENT naming a command that does not exist', async () => {
		const err = await spawnWithAgent('/nonexistent/victim', [], { stdio: 'ignore' }).catch((e) => e);
		expect(err).toBeInstanceOf(BpftimeError);
		expect(err.code).toBe('ENOENT');
		expect(err.message).toMatch(/spawn '\/nonexistent\/victim'/);
	});

	it('puts the agent first in LD_PRELOAD and keeps what was there', () => {
		const env = agentEnv({ env: { LD_PRELOAD: '/x/libother.so', PATH: '/bin' }, segment: 'seg', pollMs: 5 });
		expect(env.LD_PRELOAD).toBe(`${agentPath()}:/x/libother.so`);
		expect(env.BPFTIME_GLOBAL_SHM_NAME).toBe('seg');
		expect(env.BPFTIME_AGENT_POLL_MS).toBe('5');
		expect(env.PATH).toBe('/bin');
	});

	it('refuses a poll interval that is not a number of milliseconds', () => {
		expect(() => agentEnv({ pollMs: -1 })).toThrow(/Expected an integer in \[0, 60000\] for pollMs but received -1/);
	});

	it('refuses a fault limit that is not a count, and passes one that is as BPFTIME_AGENT_MAX_FAULTS', () => {
		expect(() => agentEnv({ maxFaults: 1.5 })).toThrow(
			/Expected an integer in \[0, 4294967295\] for maxFaults but received 1.5 \(number\)/,
		);
		expect(agentEnv({ maxFaults: 0 }).BPFTIME_AGENT_MAX_FAULTS).toBe('0');
	});
});

describe('the agent and the attach vocabulary', { timeout: 60_000 }, () => {
	it('writes the lines of @bpftime/attach to BPFTIME_LOG_OUTPUT too, at the level of SPDLOG_LEVEL', async () => {
		const { name, registry } = newRegistry();
		const maps = await attach(registry, ['count_calls']);
		const dir = mkdtempSync(join(tmpdir(), 'bpftime-agent-log-'));
		onTestFinished(() => rmSync(dir, { recursive: true, force: true }));
		const file = join(dir, 'agent.log');
		const p = await withAgent(['1', '10'], name, { logOutput: file, logLevel: 'info' });
		const traced = await p.done();
		expect(traced.code).toBe(7);
		expect(maps.calls().get(p.child.pid as number)).toBe(10n);
		expect(traced.stderr).toEqual([]);
		const log = readFileSync(file, 'utf8');
		expect(log).toMatch(/^\[bpftime attach\] \[info\] probe \d+: uprobe at .*target_fn/m);
		expect(log).toMatch(/^\[bpftime-agent \d+\] \[info\] link \d+: uprobe attached at /m);
	});

	it('skips a link whose kind has no hook family in this agent, saying so at debug level', async () => {
		const { name, registry } = newRegistry();
		const loaded = await BpfObject.open(probes).load(registry);
		const prog = loaded.programs.get('count_calls');
		if (!prog) throw new Error('no program count_calls');
		const event = registry.createPerfEvent({ type: 'custom', name: 'gpu_kernel' });
		const link = registry.createLink({ progId: prog.id, targetId: event.id });
		const plain = await runPlain(target, ['1', '10']);
		const traced = await (await withAgent(['1', '10'], name, { logLevel: 'debug' })).done();
		expect(traced.code).toBe(7);
		expect(traced.stdout).toEqual(plain.stdout);
		expect(traced.stderr.join('\n')).toContain(`link ${link.id}: custom event: no custom hook in this agent; skipped`);
	});
});
