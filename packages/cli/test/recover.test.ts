// A load is one transaction (issue 17, item 4): the handlers a loader creates
// between beginLoad() and endLoad() carry its pid and start time; a loader
// that dies before endLoad() has them all released by the next process that
// opens the registry, to the last byte; `bpftime recover` lists them first
// or removes them.
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import { Registry } from '@bpftime/handlers';
import '@bpftime/maps-userspace';
import { Segment } from '@bpftime/shm';
import { describe, expect, it, onTestFinished } from 'vitest';

const cli = new URL('../dist/cli.js', import.meta.url).pathname;
const loader = new URL('./fixtures/loader.mjs', import.meta.url).pathname;

function freshSegment(tag: string): { name: string; baseline: bigint } {
	const name = `bpftime_recover_${tag}_${process.pid}`;
	if (Segment.exists({ name })) Segment.remove({ name });
	const seg = Segment.create({ name, sizeMb: 4 });
	Registry.create(seg).close();
	const baseline = seg.stats().free;
	seg.close();
	onTestFinished(() => {
		if (Segment.exists({ name })) Segment.remove({ name });
	});
	return { name, baseline };
}

async function loaded(child: ChildProcess): Promise<void> {
	const lines = createInterface({ input: child.stdout as NodeJS.ReadableStream });
	for await (const line of lines) if (/^loaded \d+ \d+$/.test(line)) return;
	throw new Error('the loader ended before it loaded');
}

/** Runs a loader until it has created its handlers, then SIGKILLs it; returns its pid. */
async function loaderKilledMidLoad(name: string): Promise<number> {
	const child = spawn(process.execPath, [loader, name, 'die'], { stdio: ['ignore', 'pipe', 'inherit'] });
	onTestFinished(() => {
		child.kill('SIGKILL');
	});
	await loaded(child);
	child.kill('SIGKILL');
	await once(child, 'exit');
	return child.pid as number;
}

async function bpftime(...args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
	const child = spawn(process.execPath, [cli, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
	let stdout = '';
	let stderr = '';
	child.stdout.on('data', (d) => {
		stdout += d;
	});
	child.stderr.on('data', (d) => {
		stderr += d;
	});
	const [code] = await once(child, 'close');
	return { code, stdout, stderr };
}

describe('load transactions', { timeout: 30_000 }, () => {
	it('lists the handlers of a loader killed mid-load as left by a dead process, without releasing them', async () => {
		const { name } = freshSegment('list');
		const pid = await loaderKilledMidLoad(name);
		const seg = Segment.open({ name });
		const reg = Registry.open(seg, { rollBack: false });
		onTestFinished(() => {
			reg.close();
			seg.close();
		});
		expect(reg.owners().map((o) => [o.kind, o.name, o.pid, o.inLoad, o.alive])).toEqual([
			['map', 'half_loaded', pid, true, false],
			['prog', 'half_loaded', pid, true, false],
		]);
		expect(reg.list()).toHaveLength(2);
	});

	it('releases what a loader killed mid-load left when the registry is next opened, to the last byte', async () => {
		const { name, baseline } = freshSegment('open');
		await loaderKilledMidLoad(name);
		const seg = Segment.open({ name });
		const reg = Registry.open(seg);
		onTestFinished(() => {
			reg.close();
			seg.close();
		});
		expect(reg.list()).toEqual([]);
		expect(seg.stats().free).toBe(baseline);
	});

	it('keeps what a loader committed after it exits', async () => {
		const { name } = freshSegment('commit');
		const child = spawn(process.execPath, [loader, name, 'commit'], { stdio: ['ignore', 'pipe', 'inherit'] });
		await loaded(child);
		await once(child, 'exit');
		const seg = Segment.open({ name });
		const reg = Registry.open(seg);
		onTestFinished(() => {
			reg.close();
			seg.close();
		});
		expect(reg.list().map((d) => d.kind)).toEqual(['map', 'prog']);
		expect(reg.owners().map((o) => [o.inLoad, o.alive])).toEqual([
			[false, false],
			[false, false],
		]);
	});

	it('keeps the unfinished load of a process that still runs, and commits it at endLoad', () => {
		const { name } = freshSegment('alive');
		const seg = Segment.open({ name });
		const reg = Registry.open(seg);
		onTestFinished(() => {
			reg.close();
			seg.close();
		});
		reg.beginLoad();
		reg.loadProg({ type: 2, name: 'mine', insns: Buffer.from('b7000000000000009500000000000000', 'hex') });
		const other = Registry.open(seg);
		expect(other.rollBackDeadLoads()).toEqual([]);
		expect(other.owners()).toMatchObject([{ name: 'mine', pid: process.pid, inLoad: true, alive: true }]);
		other.close();
		reg.endLoad();
		expect(reg.owners()).toMatchObject([{ name: 'mine', inLoad: false }]);
		expect(() => reg.endLoad()).toThrow(/end_load without begin_load/);
	});

	it('bpftime recover --list names them and --remove releases them', async () => {
		const { name, baseline } = freshSegment('cli');
		const pid = await loaderKilledMidLoad(name);
		const list = await bpftime('--segment', name, 'recover', '--list');
		expect(list.stderr).toBe('');
		expect(list.code).toBe(0);
		expect(list.stdout).toBe(
			`0: map 'half_loaded' of process ${pid}: left by a dead loader\n` +
				`1: prog 'half_loaded' of process ${pid}: left by a dead loader\n` +
				'2 handler(s) in unfinished loads, 2 of dead loaders (`bpftime recover --remove` releases them)\n',
		);
		const remove = await bpftime('--segment', name, 'recover', '--remove');
		expect(remove.stderr).toBe('');
		expect(remove.stdout).toBe(
			`removed 1: prog 'half_loaded' of process ${pid}\n` +
				`removed 0: map 'half_loaded' of process ${pid}\n` +
				'2 handler(s) of dead loaders removed\n',
		);
		const seg = Segment.open({ name });
		onTestFinished(() => seg.close());
		expect(seg.stats().free).toBe(baseline);
		const again = await bpftime('--segment', name, 'recover');
		expect(again.stdout).toBe('0 handler(s) in unfinished loads, 0 of dead loaders\n');
	});

	it('bpftime recover refuses --list with --remove', async () => {
		const r = await bpftime('recover', '--list', '--remove');
		expect(r.code).toBe(2);
		expect(r.stderr).toMatch(/--list and --remove exclude each other/);
	});
});
