// bpftime attach / detach: injection into a running process, as users run it
// (node dist/cli.js in its own process), on the malloc example's victim.
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { Registry } from '@bpftime/handlers';
import { Segment } from '@bpftime/shm';
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from 'vitest';
import { buildExample } from '../../../examples/build.mjs';

const cli = new URL('../dist/cli.js', import.meta.url).pathname;
const example = new URL('../../../examples/malloc/', import.meta.url).pathname;

async function bpftime(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
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

let serial = 0;
function segmentName(): string {
	const name = `bpftime_cli_attach_${process.pid}_${serial++}`;
	onTestFinished(() => {
		if (Segment.exists({ name })) Segment.remove({ name });
	});
	return name;
}

/** The victim started without bpftime; resolves once it printed its first line. */
async function startVictim(victim: string, seconds: string) {
	const child = spawn(victim, [seconds], { stdio: ['ignore', 'pipe', 'pipe'] });
	onTestFinished(() => {
		if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
	});
	const lines: string[] = [];
	const closed = once(child, 'close');
	const rl = createInterface({ input: child.stdout });
	const first = new Promise<void>((resolve) => rl.once('line', () => resolve()));
	rl.on('line', (l) => lines.push(l));
	await first;
	return {
		pid: child.pid as number,
		async done() {
			const [code] = await closed;
			return { code, lines };
		},
	};
}

describe('bpftime attach / detach', { timeout: 60_000 }, () => {
	let dir = '';
	let object = '';
	let victim = '';
	beforeAll(async () => {
		dir = mkdtempSync(join(tmpdir(), 'bpftime-cli-attach-'));
		({ object, victim } = await buildExample(example, 'malloc.bpf.c', dir));
	});
	afterAll(() => rmSync(dir, { recursive: true, force: true }));

	it('counts the mallocs of a running victim after attach, refuses a second attach, and detaches', async () => {
		const seg = segmentName();
		const load = await bpftime(['--segment', seg, 'load', object]);
		expect(load.code).toBe(0);
		const v = await startVictim(victim, '3');
		const att = await bpftime(['--segment', seg, 'attach', String(v.pid)]);
		expect(att.stderr).toBe('');
		expect(att.stdout).toBe(`attached to process ${v.pid}: 1 of 1 links attached\n`);
		expect(att.code).toBe(0);
		const again = await bpftime(['--segment', seg, 'attach', String(v.pid)]);
		expect(again.code).toBe(1);
		expect(again.stderr).toMatch(
			new RegExp(
				`^bpftime: process ${v.pid}: the agent is already attached .*; \`bpftime detach ${v.pid}\` first \\(EEXIST\\)\\n$`,
			),
		);
		const counted = async () => {
			const r = await bpftime(['--segment', seg, 'map', 'dump', '--json', 'malloc_calls']);
			const entries = JSON.parse(r.stdout).entries as { key: string; value: string }[];
			return entries.length;
		};
		await expect.poll(counted, { timeout: 10_000, interval: 50 }).toBe(1);
		const det = await bpftime(['detach', String(v.pid)]);
		expect(det.stderr).toBe('');
		expect(det.stdout).toBe(`detached from process ${v.pid}: 1 hooks removed\n`);
		expect(det.code).toBe(0);
		const end = await v.done();
		expect(end.code).toBe(0);
		expect(end.lines).toHaveLength(2);
		expect(end.lines[1]).toMatch(new RegExp(`^victim ${v.pid}: \\d+ mallocs$`));
	});

	it('says so, and leaves the process alone, when the registry holds no link', async () => {
		const name = segmentName();
		const s = Segment.create({ name, sizeMb: 8 });
		Registry.create(s).close();
		s.close();
		const v = await startVictim(victim, '0.3');
		const r = await bpftime(['--segment', name, 'attach', String(v.pid)]);
		expect(r.code).toBe(1);
		expect(r.stderr).toBe(
			`bpftime: attach ${v.pid}: the registry holds no link, nothing to attach; load a program with its links first (\`bpftime load <prog.bpf.o>\`) (ENOENT)\n`,
		);
		expect((await v.done()).code).toBe(0);
	});

	it.each([
		['attach', ['attach'], /^bpftime: attach: missing the pid\n/],
		['attach abc', ['attach', 'abc'], /^bpftime: attach: 'abc' is not a pid\n/],
		['detach 1 2', ['detach', '1', '2'], /^bpftime: detach: unexpected argument '2'\n/],
	])('exits 2 with the usage on wrong arguments (%s)', async (_, args, re) => {
		const r = await bpftime(args);
		expect(r.code).toBe(2);
		expect(r.stderr).toMatch(re);
	});

	it('exits 1 naming the process when it does not exist', async () => {
		const r = await bpftime(['detach', '1073741800']);
		expect(r.code).toBe(1);
		expect(r.stderr).toBe('bpftime: process 1073741800: no such process (ESRCH)\n');
	});
});
