// The bpftime command as users run it: node dist/cli.js in its own process.
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Registry } from '@bpftime/handlers';
import '@bpftime/maps-userspace';
import { Segment } from '@bpftime/shm';
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from 'vitest';
import { buildExample } from '../../../examples/build.mjs';

const cli = new URL('../dist/cli.js', import.meta.url).pathname;
const example = new URL('../../../examples/malloc/', import.meta.url).pathname;

interface Result {
	code: number | null;
	stdout: string;
	stderr: string;
}

async function bpftime(args: string[], env: NodeJS.ProcessEnv = process.env): Promise<Result> {
	const child = spawn(process.execPath, [cli, ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
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
	const name = `bpftime_cli_test_${process.pid}_${serial++}`;
	onTestFinished(() => {
		if (Segment.exists({ name })) Segment.remove({ name });
	});
	return name;
}

describe('bpftime arguments', () => {
	it('prints the help on --help and exits 0', async () => {
		const r = await bpftime(['--help']);
		expect(r.code).toBe(0);
		expect(r.stdout).toMatch(/^Usage: bpftime /);
		expect(r.stdout).toMatch(/load <prog\.bpf\.o>/);
		expect(r.stdout).toMatch(/start <command>/);
		expect(r.stdout).toMatch(/map dump <name\|id>/);
	});

	it.each([
		['help load', ['help', 'load'], /^Usage: bpftime load /],
		['load --help', ['load', '--help'], /^Usage: bpftime load /],
		['map -h', ['map', '-h'], /^Usage: bpftime map list/],
	])('prints the help of a command (%s)', async (_, args, re) => {
		const r = await bpftime(args);
		expect(r.code).toBe(0);
		expect(r.stdout).toMatch(re);
	});

	it.each([
		['no command', [], /missing the command/],
		['an unknown command', ['frobnicate'], /unknown command 'frobnicate'/],
		['an unknown global option', ['--bogus', 'load'], /unknown option '--bogus'/],
		['--segment without a value', ['--segment'], /option '--segment' needs a value/],
		['load without a file', ['load'], /load: missing the object file/],
		['load with two files', ['load', 'a.o', 'b.o'], /load: one object file at a time/],
		['load with a bad pid', ['load', '--pid', 'x', 'a.o'], /--pid: expected a process id but received 'x'/],
		['load with an unknown option', ['load', '--frob', 'a.o'], /unknown option '--frob'/],
		['start without a command', ['start'], /start: missing the command to run/],
		['map without a subcommand', ['map'], /map: missing the subcommand/],
		['map with an unknown subcommand', ['map', 'frob'], /map: unknown subcommand 'frob'/],
		['map dump without a map', ['map', 'dump'], /map dump: missing the map name or id/],
		['help of an unknown command', ['help', 'frob'], /help: unknown command 'frob'/],
	])('exits 2 with the usage for %s', async (_, args, re) => {
		const r = await bpftime(args);
		expect(r.code).toBe(2);
		expect(r.stdout).toBe('');
		expect(r.stderr).toMatch(re);
		expect(r.stderr).toMatch(/Usage: bpftime/);
	});

	it('exits 1 naming the segment when map dump finds no registry', async () => {
		const seg = segmentName();
		const r = await bpftime(['--segment', seg, 'map', 'dump', 'counts']);
		expect(r.code).toBe(1);
		expect(r.stderr).toBe(
			`bpftime: segment '${seg}': does not exist; \`bpftime load <prog.bpf.o>\` creates it (ENOENT)\n`,
		);
	});

	it('exits 1 naming the file when load cannot read it, and creates nothing', async () => {
		const seg = segmentName();
		const r = await bpftime(['--segment', seg, 'load', '/nonexistent/prog.bpf.o']);
		expect(r.code).toBe(1);
		expect(r.stderr).toMatch(/^bpftime: .*\/nonexistent\/prog\.bpf\.o/);
		expect(Segment.exists({ name: seg })).toBe(false);
	});

	it('passes the exit status of the started command through', async () => {
		const seg = segmentName();
		expect((await bpftime(['--segment', seg, 'start', 'sh', '-c', 'exit 5'])).code).toBe(5);
		expect((await bpftime(['--segment', seg, 'start', 'sh', '-c', 'kill -TERM $$'])).code).toBe(128 + 15);
	});

	it('gives the same reason for a bad --segment name from every command', async () => {
		const reasons = new Set<string>();
		for (const args of [
			['map', 'list'],
			['map', 'dump', '1'],
			['load', '--no-attach', '/nonexistent/prog.bpf.o'],
		]) {
			const r = await bpftime(['--segment', 'a/b', ...args]);
			expect(r.code).toBe(1);
			reasons.add(r.stderr);
		}
		expect([...reasons]).toEqual([`bpftime: segment name 'a/b' contains '/' or NUL (EINVAL)\n`]);
	});

	it('exits 1 with ENOENT when the command to start does not exist', async () => {
		const r = await bpftime(['start', '/nonexistent/victim']);
		expect(r.code).toBe(1);
		expect(r.stderr).toMatch(/^bpftime: spawn '\/nonexistent\/victim': /);
	});
});

describe('bpftime load <command>', () => {
	it('runs the command with the syscall-server preloaded and exits with its status', async () => {
		const r = await bpftime(['--segment', segmentName(), 'load', 'sh', '-c', 'echo "$LD_PRELOAD"; exit 5']);
		expect(r.code).toBe(5);
		expect(r.stdout).toMatch(/libbpftime-syscall-server\.so/);
	});

	it('leaves what bpftool pins in the registry, where map dump reads it', async () => {
		const seg = segmentName();
		const create = await bpftime([
			'--segment',
			seg,
			'load',
			'bpftool',
			'map',
			'create',
			'/sys/fs/bpf/bpftime_cli_test',
			'type',
			'array',
			'key',
			'4',
			'value',
			'4',
			'entries',
			'2',
			'name',
			'via_bpftool',
		]);
		expect(create.stderr).toBe('');
		expect(create.code).toBe(0);
		const dump = await bpftime(['--segment', seg, 'map', 'dump', 'via_bpftool']);
		expect(dump.code, dump.stderr).toBe(0);
	});

	it('refuses --keep with an object file and --no-attach with a command', async () => {
		const seg = segmentName();
		expect((await bpftime(['--segment', seg, 'load', '--keep', 'a.o'])).stderr).toMatch(/--keep is for commands/);
		expect((await bpftime(['--segment', seg, 'load', '--no-attach', 'sh'])).stderr).toMatch(
			/--no-attach is for object files, not commands/,
		);
	});
});

describe('bpftime load, start and map dump', { timeout: 60_000 }, () => {
	let dir = '';
	let object = '';
	let victim = '';
	beforeAll(async () => {
		dir = mkdtempSync(join(tmpdir(), 'bpftime-cli-'));
		({ object, victim } = await buildExample(example, 'malloc.bpf.c', dir));
	});
	afterAll(() => rmSync(dir, { recursive: true, force: true }));

	it('counts the malloc calls of the victim (examples/malloc)', async () => {
		const seg = segmentName();
		const load = await bpftime(['--segment', seg, 'load', object]);
		expect(load.stderr).toBe('');
		expect(load.code).toBe(0);
		expect(load.stdout).toMatch(/map 'malloc_calls' id \d+/);
		expect(load.stdout).toMatch(/link \d+: prog 'count_malloc' -> uprobe .*libc\.so\.6/);

		const start = await bpftime(['--segment', seg, 'start', victim, '0.5'], { ...process.env, SPDLOG_LEVEL: 'warn' });
		expect(start.code).toBe(0);
		const m = /^victim (\d+): (\d+) mallocs$/m.exec(start.stdout);
		expect(m, start.stdout + start.stderr).not.toBeNull();
		const [, pid, mallocs] = m as RegExpExecArray;

		const dump = await bpftime(['--segment', seg, 'map', 'dump', 'malloc_calls']);
		expect(dump.code).toBe(0);
		const row = new RegExp(`^key ${pid} value (\\d+)$`, 'm').exec(dump.stdout);
		expect(row, dump.stdout).not.toBeNull();
		// The victim's own loop, plus the few allocations of stdio and the agent's thread.
		const counted = Number((row as RegExpExecArray)[1]);
		expect(counted).toBeGreaterThanOrEqual(Number(mallocs));
		expect(counted).toBeLessThan(Number(mallocs) + 1000);
		expect(dump.stdout).toMatch(/map 'malloc_calls' \(id \d+\): 1 entry\n$/);

		const json = JSON.parse((await bpftime(['--segment', seg, 'map', 'dump', '--json', 'malloc_calls'])).stdout);
		expect(json).toMatchObject({
			name: 'malloc_calls',
			type: 'hash',
			keySize: 4,
			valueSize: 8,
			entries: [{ key: pid, value: String(counted) }],
		});

		const list = await bpftime(['--segment', seg, 'map', 'list']);
		expect(list.stdout).toMatch(/^\d+: hash name 'malloc_calls' key 4B value 8B max_entries 1024$/m);
	});

	it('exits 1 listing the maps there are when map dump names none of them', async () => {
		const seg = segmentName();
		expect((await bpftime(['--segment', seg, 'load', '--no-attach', object])).code).toBe(0);
		const r = await bpftime(['--segment', seg, 'map', 'dump', 'nosuch']);
		expect(r.code).toBe(1);
		expect(r.stderr).toBe(`bpftime: map 'nosuch': no such map in the registry (maps: 'malloc_calls') (ENOENT)\n`);
	});

	it('exits 1 saying there is no such map for an id past the table or past u32', async () => {
		const seg = segmentName();
		expect((await bpftime(['--segment', seg, 'load', '--no-attach', object])).code).toBe(0);
		for (const id of ['4294967297', '6144', '99999999999999999999']) {
			const r = await bpftime(['--segment', seg, 'map', 'dump', id]);
			expect([r.code, r.stderr]).toEqual([1, `bpftime: map id ${id}: no such map in the registry (ENOENT)\n`]);
		}
	});

	it('removes the segment it created when the load fails, and says nothing was loaded', async () => {
		const seg = segmentName();
		// A table of one id: the BTF takes it, the map finds none (EMFILE) and the load rolls back. The
		// registry's "map '…': create" is said once, not again by the loader.
		const r = await bpftime(['--segment', seg, 'load', object], { ...process.env, BPFTIME_MAX_FD_COUNT: '1' });
		expect(r.code).toBe(1);
		expect(r.stdout).toBe('');
		expect(r.stderr).toBe(
			"bpftime: map 'malloc_calls': create: all 1 ids are in use (BPFTIME_MAX_FD_COUNT) (EMFILE)\n",
		);
		expect(Segment.exists({ name: seg })).toBe(false);
	});

	it('keeps a segment that existed when a load into it fails, and what it held', async () => {
		const seg = segmentName();
		const s = Segment.create({ name: seg, sizeMb: 8 });
		const reg = Registry.create(s, { capacity: 1 });
		reg.close();
		s.close();
		const r = await bpftime(['--segment', seg, 'load', object]);
		expect(r.code).toBe(1);
		expect(r.stdout).toBe('');
		expect(Segment.exists({ name: seg })).toBe(true);
		expect((await bpftime(['--segment', seg, 'map', 'list'])).code).toBe(0);
	});

	it('exits 1 naming the ids when two maps share the name map dump is given', async () => {
		const seg = segmentName();
		expect((await bpftime(['--segment', seg, 'load', '--no-attach', object])).code).toBe(0);
		expect((await bpftime(['--segment', seg, 'load', '--no-attach', object])).code).toBe(0);
		const list = await bpftime(['--segment', seg, 'map', 'list']);
		const ids = [...list.stdout.matchAll(/^(\d+): hash name 'malloc_calls'/gm)].map((m) => m[1]);
		expect(ids).toHaveLength(2);
		const r = await bpftime(['--segment', seg, 'map', 'dump', 'malloc_calls']);
		expect([r.code, r.stderr]).toEqual([
			1,
			`bpftime: map 'malloc_calls': 2 maps have this name (ids ${ids.join(', ')}); name one by id (EINVAL)\n`,
		]);
	});
});
