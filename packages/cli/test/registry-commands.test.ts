// The registry commands as users run them (node dist/cli.js in its own
// process): list, prog, link, map lookup/update/delete/dump with BTF
// formatting and histograms, export/import and clean, on objects clang builds
// from sources in the repository.
import { spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { MapType, Registry } from '@bpftime/handlers';
import '@bpftime/maps-userspace';
import { Segment } from '@bpftime/shm';
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from 'vitest';
import { buildExample } from '../../../examples/build.mjs';
import { main } from '../src/main.js';

const cli = new URL('../dist/cli.js', import.meta.url).pathname;
const fixtures = new URL('./fixtures/', import.meta.url).pathname;
const mallocExample = new URL('../../../examples/malloc/', import.meta.url).pathname;

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

/** `main()` of the command in this process, its output collected. */
async function inProcess(args: string[]): Promise<Result> {
	let stdout = '';
	let stderr = '';
	const code = await main(args, {
		out: (t) => {
			stdout += t;
		},
		err: (t) => {
			stderr += t;
		},
	});
	return { code, stdout, stderr };
}

/** The command under a pseudo-terminal (util-linux script): what a user at a terminal sees. */
async function onTty(args: string[], env: NodeJS.ProcessEnv = process.env, rows?: number): Promise<Result> {
	const command = [process.execPath, cli, ...args].map((a) => `'${a.replace(/'/g, `'\\''`)}'`).join(' ');
	const line = rows === undefined ? command : `stty rows ${rows} cols 100; ${command}`;
	const child = spawn('script', ['-qec', line, '/dev/null'], { env, stdio: ['ignore', 'pipe', 'pipe'] });
	let stdout = '';
	child.stdout.on('data', (d) => {
		stdout += d;
	});
	const [code] = await once(child, 'close');
	return { code, stdout: stdout.replace(/\r\n/g, '\n'), stderr: '' };
}

let serial = 0;
function segmentName(): string {
	const name = `bpftime_cli_reg_${process.pid}_${serial++}`;
	onTestFinished(() => {
		if (Segment.exists({ name })) Segment.remove({ name });
	});
	return name;
}

async function clang(source: string, out: string): Promise<void> {
	const child = spawn(
		'clang',
		['-target', 'bpf', '-O2', '-g', '-I/usr/include/x86_64-linux-gnu', '-c', source, '-o', out],
		{ stdio: ['ignore', 'inherit', 'inherit'] },
	);
	const [code] = await once(child, 'exit');
	if (code !== 0) throw new Error(`clang ${source}: exited ${code}`);
}

let dir = '';
let formats = '';
let malloc = '';
let victim = '';

beforeAll(async () => {
	dir = mkdtempSync(join(tmpdir(), 'bpftime-cli-reg-'));
	formats = join(dir, 'formats.bpf.o');
	await clang(join(fixtures, 'formats.bpf.c'), formats);
	({ object: malloc, victim } = await buildExample(mallocExample, 'malloc.bpf.c', dir));
}, 120_000);
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** A segment with formats.bpf.o loaded; `reg` writes into its maps as a program would. */
async function loaded(): Promise<{ seg: string; ids: Record<string, number> }> {
	const seg = segmentName();
	const r = await bpftime(['--segment', seg, 'load', formats]);
	expect(r.stderr).toBe('');
	expect(r.code).toBe(0);
	const ids = Object.fromEntries(
		[...r.stdout.matchAll(/(?:map|prog) '(\w+)' id (\d+)/g)].map((m) => [m[1], Number(m[2])]),
	);
	return { seg, ids };
}

function withRegistry<T>(seg: string, body: (reg: Registry) => T): T {
	const s = Segment.open({ name: seg });
	const reg = Registry.open(s);
	try {
		return body(reg);
	} finally {
		reg.close();
		s.close();
	}
}

const u32 = (n: number) => {
	const b = Buffer.alloc(4);
	b.writeUInt32LE(n);
	return b;
};
const u64 = (n: bigint) => {
	const b = Buffer.alloc(8);
	b.writeBigUInt64LE(n);
	return b;
};

/** struct event of formats.bpf.c, laid out by hand from its C declaration. */
function event(pid: number, comm: string, st: number, ret: number, low: number, high: number, ports: [number, number]) {
	const b = Buffer.alloc(36);
	b.writeUInt32LE(pid, 0);
	b.write(comm, 4, 'latin1');
	b.writeUInt32LE(st, 20);
	b.writeInt32LE(ret, 24);
	b.writeUInt8(low | (high << 4), 28);
	b.writeUInt16LE(ports[0], 30);
	b.writeUInt16LE(ports[1], 32);
	return b;
}

describe('bpftime map with BTF', { timeout: 60_000 }, () => {
	it('formats struct values from BTF: char arrays as strings, enums by name, signed ints, bitfields, arrays', async () => {
		const { seg, ids } = await loaded();
		withRegistry(seg, (reg) => reg.mapByName('events').update(u32(7), event(42, 'bash', 1, -2, 10, 5, [80, 22])));
		const r = await bpftime(['--segment', seg, 'map', 'dump', 'events']);
		expect(r.stderr).toBe('');
		expect(r.stdout).toBe(
			'key 7 value {pid: 42, comm: "bash", st: "RUNNING", ret: -2, low: 0xa, high: 0x5, ports: [80, 22]}\n' +
				`map 'events' (id ${ids.events}): 1 entry\n`,
		);
		const json = JSON.parse((await bpftime(['--segment', seg, 'map', 'dump', '--json', 'events'])).stdout);
		expect(json.entries).toEqual([
			{
				key: '7',
				value: `0x${event(42, 'bash', 1, -2, 10, 5, [80, 22]).toString('hex')}`,
				formatted: {
					key: 7,
					value: { pid: 42, comm: 'bash', st: 'RUNNING', ret: -2, low: '0xa', high: '0x5', ports: [80, 22] },
				},
			},
		]);
	});

	it('prints a per-CPU value per CPU, and update writes the value on every CPU', async () => {
		const { seg } = await loaded();
		const cpus = withRegistry(seg, (reg) => {
			const m = reg.mapByName('per_cpu');
			const n = m.userValueSize / 8;
			m.update(u32(0), Buffer.concat(Array.from({ length: n }, (_, i) => u64(BigInt(100 + i)))));
			return n;
		});
		const dump = await bpftime(['--segment', seg, 'map', 'lookup', 'per_cpu', '0']);
		expect(dump.stdout).toBe(
			`key 0\n${Array.from({ length: cpus }, (_, i) => `    value (CPU ${i}): ${100 + i}\n`).join('')}`,
		);
		expect((await bpftime(['--segment', seg, 'map', 'update', 'per_cpu', '1', '9'])).code).toBe(0);
		const json = JSON.parse((await bpftime(['--segment', seg, 'map', 'lookup', '--json', 'per_cpu', '1'])).stdout);
		expect(json.values).toEqual(Array.from({ length: cpus }, (_, cpu) => ({ cpu, value: '9' })));
		expect(json.formatted.values).toEqual(Array.from({ length: cpus }, (_, cpu) => ({ cpu, value: 9 })));
	});

	it('looks up, updates and deletes one entry, keys and values as integers, enum names or hex bytes', async () => {
		const { seg } = await loaded();
		const run = (...args: string[]) => bpftime(['--segment', seg, 'map', ...args]);
		expect(
			(await run('update', 'events', '3', `hex:${event(1, 'sh', 7, 0, 0, 0, [0, 0]).toString('hex')}`)).stdout,
		).toMatch(/^map 'events' \(id \d+\): key 3 updated\n$/);
		expect((await run('lookup', 'events', '0x3')).stdout).toBe(
			'key 3 value {pid: 1, comm: "sh", st: "DONE", ret: 0, low: 0x0, high: 0x0, ports: [0, 0]}\n',
		);
		const dup = await run('update', 'events', '3', `hex:${'00'.repeat(36)}`, '--flags', 'noexist');
		expect([dup.code, dup.stderr]).toEqual([
			1,
			expect.stringMatching(/: update key 3: EEXIST: the key exists and --flags noexist was given\n$/),
		]);
		// JSON as dump --json shows values: members by name, enum names, strings for char arrays.
		const json = '{"pid": 9, "comm": "zsh", "st": "DONE", "ret": -5, "high": 3, "ports": [1, 2]}';
		expect((await run('update', 'events', '4', json)).code).toBe(0);
		expect((await run('lookup', 'events', '4')).stdout).toBe(
			'key 4 value {pid: 9, comm: "zsh", st: "DONE", ret: -5, low: 0x0, high: 0x3, ports: [1, 2]}\n',
		);
		expect((await run('update', 'lat_slots', '2', '-1')).code).toBe(0);
		expect((await run('lookup', 'lat_slots', '2')).stdout).toBe('key 2 value 18446744073709551615\n');
		expect(JSON.parse((await run('update', 'lat_slots', '4', '8', '--json')).stdout)).toEqual({
			id: expect.any(Number),
			name: 'lat_slots',
			key: '4',
			formatted: { key: 4 },
			updated: true,
		});
		expect((await run('delete', 'events', '3')).stdout).toMatch(/key 3 deleted\n$/);
		const gone = await run('lookup', 'events', '3');
		expect([gone.code, gone.stderr]).toEqual([
			1,
			expect.stringMatching(/^bpftime: map 'events' \(id \d+\): lookup key 3: no such entry \(ENOENT\)/),
		]);
		const again = await run('delete', 'events', '3');
		expect([again.code, again.stderr]).toEqual([1, expect.stringMatching(/delete key 3: no such entry \(ENOENT\)\n$/)]);
	});

	it.each([
		['a key that is no integer', ['lookup', 'events', 'seven'], /key 'seven': expected an integer .* \(EINVAL\)\n$/],
		[
			'a key too large for 4 bytes',
			['lookup', 'events', '4294967296'],
			/key '4294967296': does not fit in 4 bytes \(ERANGE\)\n$/,
		],
		[
			'a value of the wrong size',
			['update', 'events', '1', 'hex:00'],
			/value 'hex:00': expected 36 bytes \(72 hex digits\) but received 1 \(EINVAL\)\n$/,
		],
		[
			'an integer for a struct value',
			['update', 'events', '1', '5'],
			/the value is 36 bytes, not an integer; give its bytes as hex:00000000… \(EINVAL\)\n$/,
		],
		[
			'a JSON member the struct lacks',
			['update', 'events', '1', '{"cmd": "x"}'],
			/update: value: event has no member 'cmd' \(EINVAL\)\n$/,
		],
		[
			'a string too long for its char array',
			['update', 'events', '1', '{"comm": "abcdefghijklmnopq"}'],
			/value\.comm: "abcdefghijklmnopq" is 17 bytes; the array holds 16 \(EINVAL\)\n$/,
		],
		[
			'a bitfield value too wide',
			['update', 'events', '1', '{"high": 16}'],
			/value\.high: 16 does not fit in 4 bits \(EINVAL\)\n$/,
		],
		[
			'an unknown enum name',
			['update', 'events', '1', '{"st": "GONE"}'],
			/value\.st: 'GONE' is not a value of enum state \(IDLE, RUNNING, DONE\) \(EINVAL\)\n$/,
		],
		[
			'a delete in an array',
			['delete', 'lat_slots', '1'],
			/delete: EINVAL: the entries of a map of type array cannot be deleted/,
		],
		[
			'an unknown map',
			['lookup', 'nosuch', '1'],
			/^bpftime: map 'nosuch': no such map in the registry \(maps: 'events', 'per_cpu', 'hists', 'lat_slots'\) \(ENOENT\)\n$/,
		],
	])('exits 1 naming what is wrong for %s, and changes nothing', async (_, args, re) => {
		const { seg } = await loaded();
		withRegistry(seg, (reg) => reg.mapByName('lat_slots').update(u32(1), u64(5n)));
		const before = (await bpftime(['--segment', seg, 'map', 'dump', '--json', 'lat_slots'])).stdout;
		const r = await bpftime(['--segment', seg, 'map', ...args]);
		expect(r.stdout).toBe('');
		expect(r.stderr).toMatch(re);
		expect(r.code).toBe(1);
		expect((await bpftime(['--segment', seg, 'map', 'dump', '--json', 'lat_slots'])).stdout).toBe(before);
	});

	it('reads the head of a queue with an empty key, and says a queue has no keys to dump or delete', async () => {
		const { seg } = await loaded();
		const id = withRegistry(seg, (reg) => {
			const q = reg.createMap({ type: MapType.Queue, name: 'q', keySize: 0, valueSize: 8, maxEntries: 4 });
			q.update(Buffer.alloc(0), u64(5n));
			q.update(Buffer.alloc(0), u64(6n));
			return q.id;
		});
		expect((await bpftime(['--segment', seg, 'map', 'lookup', 'q', 'hex:'])).stdout).toBe('key 0x value 5\n');
		const dump = await bpftime(['--segment', seg, 'map', 'dump', 'q']);
		expect([dump.code, dump.stderr]).toEqual([
			1,
			`bpftime: map 'q' (id ${id}): dump: a queue map has no keys to walk (EINVAL); \`bpftime map lookup ${id} hex:\` shows the value a pop would take\n`,
		]);
		const del = await bpftime(['--segment', seg, 'map', 'delete', 'q', 'hex:']);
		expect([del.code, del.stderr]).toEqual([1, expect.stringMatching(/: a queue map has no keys to delete;/)]);
		expect((await bpftime(['--segment', seg, 'map', 'lookup', 'q', 'hex:'])).stdout).toBe('key 0x value 5\n');
	});

	it.each([
		['lookup without a key', ['map', 'lookup', 'events'], /map lookup: missing the key/],
		['update without a value', ['map', 'update', 'events', '1'], /map update: missing the value/],
		['delete with an extra operand', ['map', 'delete', 'events', '1', '2'], /map delete: unexpected argument '2'/],
		[
			'update with bad flags',
			['map', 'update', 'events', '1', '2', '--flags', 'often'],
			/--flags takes any, noexist or exist/,
		],
		['dump with a bad --hist', ['map', 'dump', 'lat_slots', '--hist', 'cubic'], /--hist takes log2, linear or off/],
		['dump with --step alone', ['map', 'dump', 'lat_slots', '--step', '4'], /--min and --step go with --hist linear/],
		['dump with a bad --watch', ['map', 'dump', 'lat_slots', '--watch', 'soon'], /--watch takes a positive number/],
		['dump with --count alone', ['map', 'dump', 'lat_slots', '--count', '2'], /--count goes with --watch/],
		['prog without a subcommand', ['prog'], /prog: missing the subcommand/],
		['prog dump without a program', ['prog', 'dump'], /prog dump: missing the program name or id/],
		['link detach of a name', ['link', 'detach', 'foo'], /link detach: 'foo' is not a link id/],
		['list with an operand', ['list', 'maps'], /list: unexpected argument 'maps'/],
		['list with an unknown flag', ['list', '--all'], /unknown option '--all'/],
		['export without a file', ['export'], /export: missing the file to write/],
		['import with two files', ['import', 'a', 'b'], /import: unexpected argument 'b'/],
		['clean with an unknown flag', ['clean', '--yes'], /unknown option '--yes'/],
	])('exits 2 with one line and the usage for %s', async (_, args, re) => {
		// In this process: argument errors are found before anything is opened or spawned.
		const r = await inProcess(['--segment', 'bpftime_cli_reg_unused', ...args]);
		expect(r.code).toBe(2);
		expect(r.stdout).toBe('');
		const [first, blank, usage] = r.stderr.split('\n');
		expect(first).toMatch(re);
		expect(blank).toBe('');
		expect(usage).toMatch(/^Usage: bpftime /);
	});

	it.each(['list', 'prog', 'link', 'map', 'export', 'import', 'clean'])(
		'prints the help of %s with an example',
		async (command) => {
			const r = await inProcess([command, '--help']);
			expect(r.code).toBe(0);
			expect(r.stdout).toMatch(new RegExp(`^Usage: bpftime ${command}`));
			expect(r.stdout).toMatch(/\nExamples?:\n {2}bpftime /);
		},
	);
});

describe('bpftime map dump histograms', { timeout: 60_000 }, () => {
	// Fibonacci numbers as latencies, counted into log2 slots as libbpf-tools'
	// log2() does: slot = floor(log2(v)), 0 and 1 in slot 0.
	const samples = [0, 1, 1, 2, 3, 5, 8, 13, 21, 34, 55, 89, 144, 233, 377, 610, 987, 1597];

	it('draws a map of counts by log2 slot as bpftrace draws hist()', async () => {
		const { seg } = await loaded();
		withRegistry(seg, (reg) => {
			const m = reg.mapByName('lat_slots');
			const slots = new Array<number>(16).fill(0);
			for (const v of samples) {
				const slot = v < 2 ? 0 : Math.floor(Math.log2(v));
				slots[slot] = (slots[slot] ?? 0) + 1;
			}
			slots.forEach((c, i) => {
				m.update(u32(i), u64(BigInt(c)));
			});
		});
		const r = await bpftime(['--segment', seg, 'map', 'dump', 'lat_slots']);
		expect(r.stderr).toBe('');
		// Written from bpftrace's output: range in 16 columns, count in 8, a
		// 52-column bar, int(count / max * 52) '@'s; empty ends trimmed.
		expect(r.stdout).toBe(
			[
				'@lat_slots:',
				'[0, 2)                 3 |@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@|',
				'[2, 4)                 2 |@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@                  |',
				'[4, 8)                 1 |@@@@@@@@@@@@@@@@@                                   |',
				'[8, 16)                2 |@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@                  |',
				'[16, 32)               1 |@@@@@@@@@@@@@@@@@                                   |',
				'[32, 64)               2 |@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@                  |',
				'[64, 128)              1 |@@@@@@@@@@@@@@@@@                                   |',
				'[128, 256)             2 |@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@                  |',
				'[256, 512)             1 |@@@@@@@@@@@@@@@@@                                   |',
				'[512, 1K)              2 |@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@                  |',
				'[1K, 2K)               1 |@@@@@@@@@@@@@@@@@                                   |',
				'',
				'',
			].join('\n'),
		);
		const json = JSON.parse((await bpftime(['--segment', seg, 'map', 'dump', '--json', 'lat_slots'])).stdout);
		expect(json.histograms[0].kind).toBe('log2');
		expect(json.histograms[0].buckets.slice(-2)).toEqual([
			{ min: 512, max: 1024, count: 2 },
			{ min: 1024, max: 2048, count: 1 },
		]);
	});

	it('draws linear buckets with --hist linear --min --step, as lhist()', async () => {
		const { seg } = await loaded();
		withRegistry(seg, (reg) => {
			const m = reg.mapByName('lat_slots');
			m.update(u32(1), u64(4n));
			m.update(u32(3), u64(1n));
		});
		const r = await bpftime([
			'--segment',
			seg,
			'map',
			'dump',
			'lat_slots',
			'--hist',
			'linear',
			'--min',
			'1000',
			'--step',
			'1024',
		]);
		expect(r.stdout).toBe(
			[
				'@lat_slots:',
				'[2024, 3048)           4 |@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@|',
				'[3048, 4072)           0 |                                                    |',
				'[4072, 5096)           1 |@@@@@@@@@@@@@                                       |',
				'',
				'',
			].join('\n'),
		);
		const off = await bpftime(['--segment', seg, 'map', 'dump', 'lat_slots', '--hist', 'off']);
		expect(off.stdout).toMatch(/^key 0 value 0\nkey 1 value 4\n/);
	});

	it("draws one histogram per key of values holding libbpf-tools' slots array", async () => {
		const { seg } = await loaded();
		withRegistry(seg, (reg) => {
			const v = Buffer.alloc(40);
			[0, 4, 2, 0, 0, 1, 0, 0].forEach((c, i) => {
				v.writeUInt32LE(c, i * 4);
			});
			v.write('sh', 32, 'latin1');
			reg.mapByName('hists').update(u32(3), v);
		});
		const r = await bpftime(['--segment', seg, 'map', 'dump', 'hists']);
		expect(r.stdout).toBe(
			[
				'@hists[3] comm: "sh":',
				'[2, 4)                 4 |@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@|',
				'[4, 8)                 2 |@@@@@@@@@@@@@@@@@@@@@@@@@@                          |',
				'[8, 16)                0 |                                                    |',
				'[16, 32)               0 |                                                    |',
				'[32, 64)               1 |@@@@@@@@@@@@@                                       |',
				'',
				'',
			].join('\n'),
		);
	});

	it('refuses --hist for a map whose values are not counts (EINVAL)', async () => {
		const { seg } = await loaded();
		withRegistry(seg, (reg) => reg.mapByName('events').update(u32(1), Buffer.alloc(36)));
		const r = await bpftime(['--segment', seg, 'map', 'dump', 'events', '--hist', 'log2']);
		expect(r.code).toBe(1);
		expect(r.stderr).toMatch(/^bpftime: map 'events' \(id \d+\): not a histogram: .* \(EINVAL\)\n$/);
	});

	it('redraws every interval with --watch: frames one after another when piped, in place on a terminal', async () => {
		const { seg } = await loaded();
		const piped = await bpftime(['--segment', seg, 'map', 'dump', 'per_cpu', '--watch', '0.05', '--count', '3']);
		expect(piped.code).toBe(0);
		const frames = piped.stdout.split(/^\d\d:\d\d:\d\d\n/m);
		expect(frames).toHaveLength(4);
		expect(piped.stdout).not.toContain('\x1b');
		const tty = await onTty(['--segment', seg, 'map', 'dump', 'per_cpu', '--watch', '0.05', '--count', '2']);
		expect(tty.code).toBe(0);
		const lines = piped.stdout.split('\n\n')[0]?.split('\n').length ?? 0;
		// Back to the first line of the frame (CSI n F), clear to the end (CSI J).
		expect(tty.stdout).toContain(`\x1b[${lines}F\x1b[J`);
		const stream = await bpftime([
			'--segment',
			seg,
			'map',
			'dump',
			'per_cpu',
			'--json',
			'--watch',
			'0.05',
			'--count',
			'2',
		]);
		const records = stream.stdout
			.trimEnd()
			.split('\n')
			.map((l) => JSON.parse(l));
		expect(records).toHaveLength(2);
		expect(records[1]).toMatchObject({ name: 'per_cpu', time: expect.stringMatching(/^\d{4}-\d\d-\d\dT/) });
		// A frame taller than the screen: home and clear instead, as watch(1) does.
		const short = await onTty(
			['--segment', seg, 'map', 'dump', 'per_cpu', '--watch', '0.05', '--count', '2'],
			process.env,
			4,
		);
		expect(short.stdout).toContain('\x1b[H\x1b[2J');
		expect(short.stdout).not.toContain(`\x1b[${lines}F`);
	});
});

describe('bpftime list, prog, link, clean with a running target', { timeout: 60_000 }, () => {
	it('lists programs, maps, links, events as tables and --json; colour only on a terminal without NO_COLOR', async () => {
		const { seg, ids } = await loaded();
		const r = await bpftime(['--segment', seg, 'list']);
		expect(r.code).toBe(0);
		expect(r.stdout).toMatch(
			/^Programs \(1\)\n\s*ID\s+NAME\s+TYPE\s+INSNS\s+MAPS\n\s*\d+\s+touch\s+kprobe\s+\d+\s+[\d,]+\n/,
		);
		expect(r.stdout).toMatch(/\n\s*\d+\s+per_cpu\s+percpu_array\s+4B\s+8B\s+2\s+0x0\s+\d+\n/);
		expect(r.stdout).toMatch(/\nLinks \(0\)\n {2}none\n/);
		expect(r.stdout).not.toContain('\x1b');
		const json = JSON.parse((await bpftime(['--segment', seg, 'list', '--json'])).stdout);
		expect(json.segment).toBe(seg);
		expect(json.programs).toEqual([
			expect.objectContaining({ id: ids.touch, name: 'touch', type: 'kprobe', license: 'GPL' }),
		]);
		expect(json.maps.map((m: { name: string }) => m.name)).toEqual(['events', 'per_cpu', 'hists', 'lat_slots']);
		expect(json.processes).toEqual([]);

		const tty = await onTty(['--segment', seg, 'list']);
		expect(tty.stdout).toContain('\x1b[1mID');
		const plain = await onTty(['--segment', seg, 'list'], { ...process.env, NO_COLOR: '1' });
		expect(plain.stdout).toMatch(/ID\s+NAME/);
		expect(plain.stdout).not.toContain('\x1b');
	});

	it('shows and disassembles a program by name or id', async () => {
		const { seg, ids } = await loaded();
		const show = await bpftime(['--segment', seg, 'prog', 'show', 'touch']);
		expect(show.stdout).toMatch(new RegExp(`^${ids.touch}: kprobe name 'touch'  license 'GPL'  \\d+ insns\n`));
		expect(show.stdout).toMatch(/maps: .*'events'.*'per_cpu'/);
		expect(show.stdout).toMatch(/links: none \(not attached\)/);
		const dump = await bpftime(['--segment', seg, 'prog', 'dump', String(ids.touch)]);
		expect(dump.code).toBe(0);
		expect(dump.stdout).toMatch(/^ +0: \*\(u32 \*\)\(r10 - 4\) = |^ +0: r\d = /m);
		expect(dump.stdout).toMatch(/: r1 = map_by_fd\(\d+\) ll\n/);
		expect(dump.stdout).toMatch(/: exit\n$/);
		// Source lines from the object's BTF line info, each before its first instruction.
		expect(dump.stdout).toMatch(/\n<touch>:\n; int touch\(void \*ctx\) {2}\(formats\.bpf\.c:\d+\)\n +0: /);
		expect(dump.stdout).toMatch(/\n; \*c \+= e->pid \+ h->slots\[0\] \+ \*s; {2}\(formats\.bpf\.c:\d+\)\n +\d+: /);
		const json = JSON.parse((await bpftime(['--segment', seg, 'prog', 'dump', '--json', 'touch'])).stdout);
		expect(json.insns.at(-1).text).toBe('exit');
		expect(json.insns[0]).toMatchObject({ pc: 0, func: 'touch', source: { text: 'int touch(void *ctx)' } });
		const none = await bpftime(['--segment', seg, 'prog', 'show', 'nosuch']);
		expect([none.code, none.stderr]).toEqual([
			1,
			"bpftime: prog 'nosuch': no such prog in the registry (progs: 'touch') (ENOENT)\n",
		]);
		const map = await bpftime(['--segment', seg, 'prog', 'dump', String(ids.events)]);
		expect([map.code, map.stderr]).toEqual([1, `bpftime: id ${ids.events}: is a map, not a prog (EINVAL)\n`]);
	});

	it('lists the target with the agent, detaches a link there, and refuses clean until --force detaches it', async () => {
		const seg = segmentName();
		const load = await bpftime(['--segment', seg, 'load', malloc]);
		expect(load.code).toBe(0);
		const linkId = Number(/link (\d+): prog 'count_malloc'/.exec(load.stdout)?.[1]);
		const child = spawn(process.execPath, [cli, '--segment', seg, 'start', victim, '60'], {
			stdio: ['ignore', 'pipe', 'pipe'],
			env: { ...process.env, SPDLOG_LEVEL: 'warn' },
		});
		onTestFinished(() => {
			if (child.exitCode === null) child.kill('SIGKILL');
		});
		const exited = once(child, 'exit');
		const lines: string[] = [];
		const rl = createInterface({ input: child.stdout });
		const started = new Promise<number>((resolve) =>
			rl.on('line', (l) => {
				lines.push(l);
				const m = /^victim (\d+): started$/.exec(l);
				if (m) resolve(Number(m[1]));
			}),
		);
		const pid = await started;
		const count = async () => {
			const r = await bpftime(['--segment', seg, 'map', 'lookup', 'malloc_calls', String(pid)]);
			return r.code === 0 ? BigInt(/value (\d+)/.exec(r.stdout)?.[1] ?? '0') : 0n;
		};
		await expect.poll(count, { timeout: 10_000, interval: 50 }).toBeGreaterThan(0n);

		const list = JSON.parse((await bpftime(['--segment', seg, 'list', '--json'])).stdout);
		expect(list.processes).toContainEqual({ pid, command: 'victim', role: 'agent' });
		expect(list.links).toEqual([expect.objectContaining({ id: linkId, progName: 'count_malloc' })]);
		const table = await bpftime(['--segment', seg, 'link', 'list']);
		expect(table.stdout).toMatch(
			new RegExp(`\\n\\s*${linkId}\\s+\\d+ count_malloc\\s+0x0\\s+0\\s+uprobe .*libc\\.so\\.6\\+0x[0-9a-f]+\\n`),
		);

		const det = await bpftime(['--segment', seg, 'link', 'detach', String(linkId)]);
		expect(det.stdout).toMatch(new RegExp(`^link ${linkId} detached: prog \\d+ 'count_malloc' from uprobe `));
		expect(det.code).toBe(0);
		// The agent takes the hook off: the count stops growing while the victim keeps calling malloc.
		let last = -1n;
		await expect
			.poll(
				async () => {
					const now = await count();
					const same = now === last;
					last = now;
					return same;
				},
				{ timeout: 10_000, interval: 200 },
			)
			.toBe(true);
		expect((await bpftime(['--segment', seg, 'link', 'list'])).stdout).toBe('no links\n');
		const gone = await bpftime(['--segment', seg, 'link', 'detach', String(linkId)]);
		expect([gone.code, gone.stderr]).toEqual([
			1,
			`bpftime: link id ${linkId}: no such link in the registry (ENOENT)\n`,
		]);

		const refused = await bpftime(['--segment', seg, 'clean']);
		expect(refused.code).toBe(1);
		expect(refused.stderr).toBe(
			`bpftime: clean: segment '${seg}': the agent runs its programs in process ${pid} (victim); \`bpftime detach <pid>\` them, or \`bpftime clean --force\` (EBUSY)\n`,
		);
		expect(Segment.exists({ name: seg })).toBe(true);
		const forced = await bpftime(['--segment', seg, 'clean', '--force']);
		expect(forced.stderr).toBe('');
		expect(forced.stdout).toBe(`detached from process ${pid}: 0 hooks removed\nremoved segment '${seg}'\n`);
		expect(forced.code).toBe(0);
		expect(Segment.exists({ name: seg })).toBe(false);
		// The target runs on, undisturbed, until it is asked to end.
		expect(() => process.kill(pid, 0)).not.toThrow();
		process.kill(pid, 'SIGINT');
		const [code] = await exited;
		expect(code).toBe(128 + 2);
	});
});

describe('bpftime export / import', { timeout: 60_000 }, () => {
	it('exports the registry and imports it into a new segment with the same ids and contents', async () => {
		const { seg } = await loaded();
		withRegistry(seg, (reg) => reg.mapByName('events').update(u32(9), event(5, 'init', 0, 1, 1, 2, [3, 4])));
		const file = join(dir, 'state.json');
		const ex = await bpftime(['--segment', seg, 'export', file]);
		expect(ex.stdout).toMatch(new RegExp(`^exported segment '${seg}' to ${file}`));
		expect(ex.code).toBe(0);
		const copy = segmentName();
		const im = await bpftime(['--segment', copy, 'import', file]);
		expect(im.stderr).toBe('');
		expect(im.stdout).toMatch(new RegExp(`^imported ${file} into segment '${copy}': \\d+ objects\n$`));
		const a = JSON.parse((await bpftime(['--segment', seg, 'list', '--json'])).stdout);
		const b = JSON.parse((await bpftime(['--segment', copy, 'list', '--json'])).stdout);
		expect({ ...b, segment: seg }).toEqual(a);
		expect((await bpftime(['--segment', copy, 'map', 'lookup', 'events', '9'])).stdout).toBe(
			'key 9 value {pid: 5, comm: "init", st: "IDLE", ret: 1, low: 0x1, high: 0x2, ports: [3, 4]}\n',
		);
		// A registry that holds anything is refused, and keeps what it holds.
		const again = await bpftime(['--segment', copy, 'import', file]);
		expect(again.code).toBe(1);
		expect(again.stderr).toMatch(/: the registry holds \d+ objects; import needs an empty one .*\(ENOTEMPTY\)\n$/);
		expect(JSON.parse((await bpftime(['--segment', copy, 'list', '--json'])).stdout).maps).toEqual(a.maps);
	});

	it('refuses a malformed document or one of another version, leaving no segment behind', async () => {
		const { seg } = await loaded();
		const file = join(dir, 'state2.json');
		expect((await bpftime(['--segment', seg, 'export', file])).code).toBe(0);
		const doc = JSON.parse(readFileSync(file, 'utf8'));
		const bad = join(dir, 'bad.json');
		for (const [text, code] of [
			['{"not": "an export"', 'EINVAL'],
			[JSON.stringify({ ...doc, version: 999 }), 'EPROTONOSUPPORT'],
		] as const) {
			writeFileSync(bad, text);
			const target = segmentName();
			const r = await bpftime(['--segment', target, 'import', bad]);
			expect(r.code).toBe(1);
			expect(r.stderr).toMatch(new RegExp(`^bpftime: import: ${bad}: .*${code}`));
			expect(Segment.exists({ name: target })).toBe(false);
		}
		const nowhere = await bpftime(['--segment', seg, 'export', '/nonexistent/state.json']);
		expect([nowhere.code, nowhere.stderr]).toEqual([
			1,
			'bpftime: export: cannot write /nonexistent/state.json: its folder does not exist (ENOENT)\n',
		]);
		const missing = await bpftime(['--segment', seg, 'import', join(dir, 'nonexistent.json')]);
		expect([missing.code, missing.stderr]).toEqual([
			1,
			expect.stringMatching(/^bpftime: import: .*nonexistent\.json: ENOENT: no such file/),
		]);
	});
});

describe('bpftime map of maps a libbpf tool made', { timeout: 60_000 }, () => {
	const bpftool = spawnSync('bpftool', ['version']).status === 0;

	it.skipIf(!bpftool)(
		`formats the values from the BTF the tool loaded through the syscall-server${bpftool ? '' : ' (skipped: bpftool is not installed)'}`,
		async () => {
			const seg = segmentName();
			const pin = `/sys/fs/bpf/bpftime_cli_reg_${process.pid}`;
			onTestFinished(() => rmSync(pin, { recursive: true, force: true }));
			const load = await bpftime(['--segment', seg, 'load', '--keep', 'bpftool', 'prog', 'loadall', formats, pin]);
			expect(load.code, load.stderr).toBe(0);
			const update = await bpftime(['--segment', seg, 'map', 'update', 'events', '7', '{"pid": 3, "st": "DONE"}']);
			expect(update.stderr).toBe('');
			expect((await bpftime(['--segment', seg, 'map', 'dump', 'events'])).stdout).toMatch(
				/^key 7 value \{pid: 3, comm: "", st: "DONE", ret: 0, low: 0x0, high: 0x0, ports: \[0, 0\]\}\n/,
			);
		},
	);
});

describe('bpftime map dump --json against bpftool on the kernel', { timeout: 60_000 }, () => {
	/** Why the kernel's side cannot run here, or undefined when it can. */
	function kernelRefusal(): string | undefined {
		if (process.getuid?.() !== 0) return 'not root: bpf() and bpffs need CAP_BPF and CAP_SYS_ADMIN';
		const r = spawnSync('bpftool', ['version'], { encoding: 'utf8' });
		if (r.error || r.status !== 0) return 'bpftool is not installed';
		return undefined;
	}
	const refusal = kernelRefusal();

	it.skipIf(refusal !== undefined)(
		`formats every entry as bpftool formats the same bytes in the same maps of the kernel${refusal ? ` (skipped: ${refusal})` : ''}`,
		async () => {
			const pin = `/sys/fs/bpf/bpftime_cli_diff_${process.pid}`;
			onTestFinished(() => rmSync(pin, { recursive: true, force: true }));
			const loadall = spawnSync('bpftool', ['prog', 'loadall', formats, pin, 'pinmaps', `${pin}/maps`], {
				encoding: 'utf8',
			});
			expect(loadall.status, loadall.stderr).toBe(0);
			const { seg } = await loaded();
			const hist = Buffer.alloc(40);
			[0, 4, 2, 0, 0, 1, 0, 0xffffffff].forEach((c, i) => {
				hist.writeUInt32LE(c, i * 4);
			});
			hist.write('sh', 32, 'latin1');
			const writes: [string, Buffer, Buffer][] = [
				['events', u32(7), event(42, 'bash', 1, -2, 10, 5, [80, 22])],
				['events', u32(0xffffffff), event(0xffffffff, 'abcdefghijklmno', 7, -2147483648, 15, 15, [65535, 0])],
				['events', u32(1), event(1, '', 3, 0, 0, 1, [0, 1])],
				['hists', u32(3), hist],
				['per_cpu', u32(1), u64(0xffffffffffffffffn)],
				['lat_slots', u32(5), u64(12345678901234n)],
			];
			for (const [map, k, v] of writes) {
				const hex = (b: Buffer) => [...b].map((x) => x.toString(16).padStart(2, '0'));
				const kernel = spawnSync(
					'bpftool',
					['map', 'update', 'pinned', `${pin}/maps/${map}`, 'key', 'hex', ...hex(k), 'value', 'hex', ...hex(v)],
					{ encoding: 'utf8' },
				);
				expect(kernel.status, kernel.stderr).toBe(0);
				const ours = await bpftime([
					'--segment',
					seg,
					'map',
					'update',
					map,
					`hex:${k.toString('hex')}`,
					`hex:${v.toString('hex')}`,
				]);
				expect(ours.stderr).toBe('');
			}
			for (const map of ['events', 'hists', 'per_cpu', 'lat_slots']) {
				const kernel = spawnSync('bpftool', ['-j', 'map', 'dump', 'pinned', `${pin}/maps/${map}`], {
					encoding: 'utf8',
				});
				expect(kernel.status, kernel.stderr).toBe(0);
				const byKey = (a: { formatted: { key: number } }, b: { formatted: { key: number } }) =>
					a.formatted.key - b.formatted.key;
				const theirs = (JSON.parse(kernel.stdout) as { formatted: { key: number } }[]).sort(byKey);
				const dump = await bpftime(['--segment', seg, 'map', 'dump', '--json', '--hist', 'off', map]);
				const mine = (JSON.parse(dump.stdout).entries as { formatted: { key: number } }[]).sort(byKey);
				expect(mine.map((e) => e.formatted)).toEqual(theirs.map((e) => e.formatted));
			}
		},
	);
});
