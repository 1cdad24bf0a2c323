// bpftime run, objdump, vm plugin, doctor and completion, as users run them
// (node dist/cli.js in its own process), on objects clang builds from
// test/fixtures and examples/malloc.
import { execFile, spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { Segment } from '@bpftime/shm';
import { backendUnavailable } from '@bpftime/vm';
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from 'vitest';
import { COMMANDS } from '../src/commands/index.js';

const cli = new URL('../dist/cli.js', import.meta.url).pathname;
const fixtures = new URL('./fixtures/', import.meta.url).pathname;
const execFileP = promisify(execFile);

interface Result {
	code: number | null;
	stdout: string;
	stderr: string;
}

async function bpftime(args: string[], options: { env?: NodeJS.ProcessEnv; input?: string } = {}): Promise<Result> {
	const child = spawn(process.execPath, [cli, ...args], {
		env: options.env ?? process.env,
		stdio: [options.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
	});
	if (options.input !== undefined) child.stdin?.end(options.input);
	let stdout = '';
	let stderr = '';
	child.stdout?.on('data', (d) => {
		stdout += d;
	});
	child.stderr?.on('data', (d) => {
		stderr += d;
	});
	const [code] = await once(child, 'close');
	return { code, stdout, stderr };
}

/** `text` as a regular expression that matches it literally. */
const literal = (text: string) => text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

let serial = 0;
function segmentName(): string {
	const name = `bpftime_cli_tools_${process.pid}_${serial++}`;
	onTestFinished(() => {
		if (Segment.exists({ name })) Segment.remove({ name });
	});
	return name;
}

/** Why this process cannot run --vm llvm, or undefined where it can. */
const noLlvm = backendUnavailable('llvm');
// Where the LLVM backend is built, pointing its variable at a library that is
// not there gives the same refusal as a machine without it.
const missingLlvm = '/nonexistent/libbpftime_vm_llvm.so';
const withoutLlvm = { ...process.env, BPFTIME_VM_LLVM_LIB: missingLlvm };

/** The private segments `bpftime run` makes for object files (bpftime_run_<pid>_…). */
function runSegments(): string[] {
	return readdirSync('/dev/shm').filter((f) => f.startsWith('bpftime_run_'));
}

let dir = '';
let object = '';
beforeAll(async () => {
	dir = mkdtempSync(join(tmpdir(), 'bpftime-cli-tools-'));
	object = join(dir, 'run-ctx.bpf.o');
	await execFileP('clang', [
		'-target',
		'bpf',
		'-O2',
		'-g',
		'-I/usr/include/x86_64-linux-gnu',
		'-c',
		join(fixtures, 'run-ctx.bpf.c'),
		'-o',
		object,
	]);
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('bpftime run', { timeout: 60_000 }, () => {
	it.each(noLlvm === undefined ? ['jit', 'interpreter', 'llvm'] : ['jit', 'interpreter'])(
		'prints r0, the map entry the runs changed and the time per run (%s)',
		async (backend) => {
			const before = runSegments();
			// ctx[0] = 5: each run adds 5 to totals[1] and returns 5 * 2 + 1.
			const r = await bpftime([
				'run',
				object,
				'--program',
				'add_ctx',
				'--ctx',
				'05 00 00 00 00 00 00 00',
				'--repeat',
				'3',
				'--vm',
				backend,
			]);
			expect(r.stderr).toBe('');
			expect(r.code).toBe(0);
			expect(r.stdout).toMatch(new RegExp(`^prog 'add_ctx' \\(id \\d+\\) on ${backend}: r0 = 11 \\(0xb\\)$`, 'm'));
			expect(r.stdout).toMatch(/^3 runs: [\d.]+ (ns|µs|ms) per run/m);
			expect(r.stdout).toMatch(/^map 'totals' \(id \d+\): 1 entry changed\n {2}~ key 1 value 0 -> 15$/m);
			// A struct value, printed from the object's BTF as map dump prints it.
			expect(r.stdout).toMatch(/^map 'last' \(id \d+\): 1 entry changed\n {2}\+ key 0 value \{arg: 5, calls: 3\}$/m);
			expect(runSegments()).toEqual(before);
		},
	);

	it('reads the context from a file and prints JSON with --json', async () => {
		const ctx = join(dir, 'ctx.bin');
		const bytes = Buffer.alloc(8);
		bytes.writeBigUInt64LE(0x8000000000000000n);
		writeFileSync(ctx, bytes);
		const r = await bpftime(['run', object, '--program', 'add_ctx', '--ctx', ctx, '--json']);
		expect(r.code, r.stderr).toBe(0);
		const doc = JSON.parse(r.stdout);
		// 2^63 * 2 + 1 wraps to 1 in 64 bits.
		expect(doc).toMatchObject({
			prog: { name: 'add_ctx', type: 'BPF_PROG_TYPE_KPROBE' },
			r0: '1',
			runs: 1,
			maps: [
				{ name: 'totals', changes: [{ key: '1', before: '0', after: String(0x8000000000000000n) }] },
				{ name: 'last', changes: [{ key: '0', before: null, after: `{arg: ${0x8000000000000000n}, calls: 1}` }] },
			],
		});
		expect(typeof doc.nsPerRun).toBe('number');
	});

	it('says no map changed for a program that writes none', async () => {
		const r = await bpftime(['run', object, '--program', 'seven']);
		expect(r.code, r.stderr).toBe(0);
		expect(r.stdout).toMatch(/r0 = 7 \(0x7\)/);
		expect(r.stdout).toMatch(/^maps: none changed$/m);
	});

	it("runs a registry's program by id and changes the registry's map", async () => {
		const seg = segmentName();
		const load = await bpftime(['--segment', seg, 'load', '--no-attach', object]);
		expect(load.code, load.stderr).toBe(0);
		const id = /prog 'add_ctx' id (\d+)/.exec(load.stdout)?.[1] as string;
		const r = await bpftime(['--segment', seg, 'run', id, '--ctx', '02 00 00 00 00 00 00 00', '--repeat', '2']);
		expect(r.code, r.stderr).toBe(0);
		expect(r.stdout).toMatch(/r0 = 5 \(0x5\)/);
		const dump = await bpftime(['--segment', seg, 'map', 'dump', 'totals']);
		expect(dump.stdout).toMatch(/^key 1 value 4$/m);
	});

	it.each([
		['no operand', ['run'], /run: missing the object file or program id/],
		['--repeat 0', ['run', 'x.o', '--repeat', '0'], /run: --repeat: expected a count from 1 to/],
		[
			'--ctx that is neither file nor hex',
			['run', 'x.o', '--ctx', 'zz'],
			/--ctx: 'zz' is neither a file nor hex bytes/,
		],
		[
			'an unknown backend',
			['run', 'x.o', '--vm', 'ebpf'],
			/--vm: expected interpreter, jit or llvm but received 'ebpf'/,
		],
		['--program with an id', ['run', '7', '--program', 'p'], /run: --program names a program of an object file/],
		['two operands', ['run', 'a.o', 'b.o'], /run: unexpected argument 'b\.o'/],
	])('exits 2 with the usage for %s', async (_, args, re) => {
		const r = await bpftime(args);
		expect(r.code).toBe(2);
		expect(r.stderr).toMatch(re);
		expect(r.stderr).toMatch(/Usage: bpftime run/);
	});

	it('exits 2 naming the programs when an object has several and none is chosen', async () => {
		const r = await bpftime(['run', object]);
		expect(r.code).toBe(2);
		expect(r.stderr).toMatch(/has 2 programs \(add_ctx, seven\); choose one with --program/);
	});

	it('exits 1 naming what is missing for --vm llvm, before loading anything', async () => {
		const before = runSegments();
		const r = await bpftime(['run', object, '--program', 'seven', '--vm', 'llvm'], { env: withoutLlvm });
		expect(r.code).toBe(1);
		expect(r.stderr).toMatch(
			new RegExp(
				`^${literal('bpftime: --vm llvm: ')}.*${literal(missingLlvm)}.*${literal('; the interpreter and the jit run here (--vm jit)')}`,
			),
		);
		expect(runSegments()).toEqual(before);
	});

	it('exits 1 for a program the object does not have, a missing file and an unknown id', async () => {
		const before = runSegments();
		const noProg = await bpftime(['run', object, '--program', 'nine']);
		expect(noProg.code).toBe(1);
		expect(noProg.stderr).toMatch(
			new RegExp(`^${literal(`bpftime: program 'nine': no such program in '${object}' (programs: add_ctx, seven)`)}`),
		);
		const noFile = await bpftime(['run', '/nonexistent/x.bpf.o']);
		expect(noFile.code).toBe(1);
		expect(noFile.stderr).toMatch(/^bpftime: object '\/nonexistent\/x\.bpf\.o': /);
		const seg = segmentName();
		expect((await bpftime(['--segment', seg, 'load', '--no-attach', object])).code).toBe(0);
		const noId = await bpftime(['--segment', seg, 'run', '4000']);
		expect([noId.code, noId.stderr]).toEqual([
			1,
			expect.stringMatching(/^bpftime: prog id 4000: no such program in the registry\b/),
		]);
		const mapId = await bpftime(['--segment', seg, 'run', '1']);
		expect([mapId.code, mapId.stderr]).toEqual([1, expect.stringMatching(/^bpftime: id 1: is a map, not a program\b/)]);
		expect(runSegments()).toEqual(before);
	});
});

describe('--vm, --shm-size and --verbose of load and start', { timeout: 60_000 }, () => {
	it('load verifies and compiles every program on --vm, says so with --verbose, and sizes a new segment', async () => {
		const seg = segmentName();
		const r = await bpftime([
			'--segment',
			seg,
			'load',
			'--vm',
			'jit',
			'--verbose',
			'--shm-size',
			'8',
			'--no-attach',
			object,
		]);
		expect(r.code, r.stderr).toBe(0);
		expect(r.stderr).toMatch(/^bpftime: prog 'add_ctx': verified and compiled on jit in \d+ µs$/m);
		expect(r.stderr).toMatch(/^bpftime: prog 'seven': verified and compiled on jit in \d+ µs$/m);
		expect(r.stderr).toMatch(new RegExp(`^bpftime: segment '${seg}' created \\(8 MiB\\): \\d+ KiB free$`, 'm'));
		const s = Segment.open({ name: seg });
		onTestFinished(() => s.close());
		// What the allocator manages: the 8 MiB less the segment's own header.
		expect(s.stats().size).toBeLessThanOrEqual(8n << 20n);
		expect(s.stats().size).toBeGreaterThan(7n << 20n);
	});

	it('load --vm llvm fails naming what is missing, and creates nothing', async () => {
		const seg = segmentName();
		const r = await bpftime(['--segment', seg, 'load', '--vm', 'llvm', object], { env: withoutLlvm });
		expect(r.code).toBe(1);
		expect(r.stderr).toContain('bpftime: --vm llvm: ');
		expect(r.stderr).toContain(missingLlvm);
		expect(Segment.exists({ name: seg })).toBe(false);
	});

	it('start gives the command BPFTIME_VM_NAME and SPDLOG_LEVEL, and --shm-size creates the segment first', async () => {
		const seg = segmentName();
		const r = await bpftime([
			'--segment',
			seg,
			'start',
			'--vm',
			'interpreter',
			'--verbose',
			'--shm-size',
			'4',
			'sh',
			'-c',
			'echo "$BPFTIME_VM_NAME $SPDLOG_LEVEL"',
		]);
		expect(r.code, r.stderr).toBe(0);
		expect(r.stdout).toBe('interpreter debug\n');
		expect(r.stderr).toContain(`bpftime: segment '${seg}' created: 4 MiB`);
		expect(Segment.exists({ name: seg })).toBe(true);
	});

	it('start passes options after the command on to it', async () => {
		const r = await bpftime(['--segment', segmentName(), 'start', 'sh', '-c', 'echo "$0 $1"', '--vm', '--help']);
		expect([r.code, r.stdout]).toEqual([0, '--vm --help\n']);
	});
});

describe('bpftime objdump', { timeout: 60_000 }, () => {
	it('prints the sections, maps, programs and the disassembly with source lines', async () => {
		const r = await bpftime(['objdump', object]);
		expect(r.stderr).toBe('');
		expect(r.code).toBe(0);
		expect(r.stdout).toMatch(/^Sections:$/m);
		expect(r.stdout).toMatch(/^ +\d+ uprobe +PROGBITS +\d+ +AX$/m);
		expect(r.stdout).toMatch(/^ +\d+ \.BTF\.ext +PROGBITS/m);
		expect(r.stdout).toMatch(/^ +\d+ \.maps +PROGBITS +\d+ +WA$/m);
		expect(r.stdout).toMatch(/#0 totals: BPF_MAP_TYPE_ARRAY key 4 value 8 max_entries 4/);
		expect(r.stdout).toMatch(/add_ctx: SEC\("uprobe"\) BPF_PROG_TYPE_KPROBE/);
		expect(r.stdout).toMatch(/#\d+ map: map 'totals'/);
		// Source lines from the BTF line info, with file and line of the fixture.
		const source = readFileSync(join(fixtures, 'run-ctx.bpf.c'), 'utf8').split('\n');
		const line = source.findIndex((l) => l.includes('__u64 a = ctx[0];')) + 1;
		expect(r.stdout).toContain(`; __u64 a = ctx[0];  (run-ctx.bpf.c:${line})`);
		expect(r.stdout).toMatch(/^ +\d+: [0-9a-f]{16} {2}exit$/m);
		expect(r.stdout).toMatch(/r0 = 7/);
	});

	it('leaves out sections and instructions when asked', async () => {
		const r = await bpftime(['objdump', '--no-sections', '--no-disassembly', object]);
		expect(r.code).toBe(0);
		expect(r.stdout).not.toMatch(/Sections:/);
		expect(r.stdout).not.toMatch(/exit/);
		expect(r.stdout).toMatch(/^run-ctx\.bpf\.o: license 'GPL'/);
	});

	it('exits 1 naming the file for one that is no eBPF object, 2 without a file', async () => {
		const notBpf = await bpftime(['objdump', process.execPath]);
		expect(notBpf.code).toBe(1);
		expect(notBpf.stderr).toContain(process.execPath);
		const none = await bpftime(['objdump']);
		expect(none.code).toBe(2);
		expect(none.stderr).toMatch(/objdump: missing the object file/);
	});
});

describe('bpftime vm plugin', { timeout: 60_000 }, () => {
	it.each(['--jit', '--interpret'])('runs hex from stdin and prints r0 (%s)', async (flag) => {
		// r0 = 42; exit
		const r = await bpftime(['vm', 'plugin', flag], { input: 'b7 00 00 00 2a 00 00 00 95 00 00 00 00 00 00 00' });
		expect([r.code, r.stdout, r.stderr]).toEqual([0, '0x2a\n', '']);
	});

	it('passes the memory argument: r1 points at it', async () => {
		// r0 = *(u64 *)(r1 + 0); exit
		const r = await bpftime(['vm', 'plugin', '01 02 03 04 05 06 07 08'], {
			input: '79 10 00 00 00 00 00 00 95 00 00 00 00 00 00 00',
		});
		expect([r.code, r.stdout]).toEqual([0, '0x807060504030201\n']);
	});

	it('exits 1 with the reason for a program that does not verify', async () => {
		// An unknown opcode 0xff.
		const r = await bpftime(['vm', 'plugin'], { input: 'ff 00 00 00 00 00 00 00 95 00 00 00 00 00 00 00' });
		expect(r.code).toBe(1);
		expect(r.stderr).not.toBe('');
	});

	it('exits 2 for a missing or unknown subcommand', async () => {
		expect((await bpftime(['vm'])).stderr).toMatch(/vm: missing the subcommand \(plugin\)/);
		const r = await bpftime(['vm', 'frob']);
		expect([r.code, /vm: unknown subcommand 'frob'/.test(r.stderr)]).toEqual([2, true]);
	});
});

describe('bpftime doctor', { timeout: 60_000 }, () => {
	it('reports what the kernel files say, and the runtime, as JSON', async () => {
		const r = await bpftime(['doctor', '--json'], { env: { ...process.env, BPFTIME_VM_NAME: 'interpreter' } });
		expect(r.code, r.stderr).toBe(0);
		const doc = JSON.parse(r.stdout) as {
			machine: { name: string; ok: boolean | null; detail: string; use: string }[];
			runtime: Record<string, unknown>;
		};
		const check = (name: string) => doc.machine.find((c) => c.name === name);
		expect(doc.machine.map((c) => c.name)).toEqual([
			'bpf()',
			'ptrace',
			'huge pages',
			'syscall user dispatch',
			'protection keys (PKU)',
			'tracefs',
			'kernel BTF',
			'/dev/shm',
		]);
		// bpftool asks the same kernel: it works exactly where bpf() is allowed.
		const bpftool = spawnSync('bpftool', ['prog', 'show'], { stdio: 'ignore' });
		if (bpftool.error === undefined) expect(check('bpf()')?.ok).toBe(bpftool.status === 0);
		const tracefs = readFileSync('/proc/mounts', 'utf8').includes(' tracefs ');
		expect(check('tracefs')?.ok).toBe(tracefs);
		expect(check('kernel BTF')?.ok).toBe(existsSync('/sys/kernel/btf/vmlinux'));
		const pku = / pku( |$)/m.test(readFileSync('/proc/cpuinfo', 'utf8'));
		if (!pku) expect(check('protection keys (PKU)')?.ok).toBe(false);
		const scope = existsSync('/proc/sys/kernel/yama/ptrace_scope')
			? readFileSync('/proc/sys/kernel/yama/ptrace_scope', 'utf8').trim()
			: undefined;
		expect(check('ptrace')?.detail).toContain(scope === undefined ? 'no Yama LSM' : `ptrace_scope=${scope}`);
		expect(doc.runtime).toMatchObject({
			backend: 'interpreter',
			backendFrom: 'BPFTIME_VM_NAME',
			llvm: noLlvm === undefined ? 'available' : `unavailable (${noLlvm})`,
			segment: 'bpftime_maps_shm',
			node: process.version,
		});
		expect(doc.runtime.agent).toMatch(/libbpftime-agent\.so$/);
	});

	it('prints one line per check starting with yes, no or info, then the runtime', async () => {
		const seg = segmentName();
		const r = await bpftime(['--segment', seg, 'doctor']);
		expect(r.code, r.stderr).toBe(0);
		expect(r.stdout).toMatch(/^Machine \(kernel .+\):$/m);
		expect(r.stdout.match(/^ {2}(yes|no|info) {2}/gm)).toHaveLength(8);
		expect(r.stdout).toMatch(
			new RegExp(`^ {2}segment +'${seg}', \\d+ MiB when created \\(does not exist yet\\)$`, 'm'),
		);
	});

	it('exits 2 for an argument it does not take', async () => {
		const r = await bpftime(['doctor', 'now']);
		expect([r.code, /doctor: unexpected argument 'now'/.test(r.stderr)]).toEqual([2, true]);
	});
});

describe('bpftime completion', { timeout: 60_000 }, () => {
	/** What bash completes for `words` (the last one the partial word), after loading the script. */
	/** PATH with a `bpftime` that runs this package's CLI first: the scripts run the command to list the registry. */
	function shellEnv(): NodeJS.ProcessEnv {
		const bin = join(dir, 'bin');
		if (!existsSync(join(bin, 'bpftime'))) {
			mkdirSync(bin, { recursive: true });
			writeFileSync(join(bin, 'bpftime'), `#!/bin/sh\nexec '${process.execPath}' '${cli}' "$@"\n`, { mode: 0o755 });
		}
		return { ...process.env, PATH: `${bin}:${process.env.PATH}` };
	}

	function bashComplete(script: string, words: string[]): string[] {
		const quoted = words.map((w) => `'${w}'`).join(' ');
		const r = spawnSync(
			'bash',
			[
				'--norc',
				'-c',
				`source "$1"; COMP_WORDS=(${quoted}); COMP_CWORD=$((\${#COMP_WORDS[@]} - 1)); _bpftime; printf '%s\\n' "\${COMPREPLY[@]}"`,
				'bash',
				script,
			],
			{ encoding: 'utf8', env: shellEnv() },
		);
		expect(r.stderr).toBe('');
		return r.stdout.split('\n').filter((l) => l !== '');
	}

	it('registers a bash completion that completes commands, subcommands, options, backends and registry names', async () => {
		const r = await bpftime(['completion', 'bash']);
		expect(r.code).toBe(0);
		const script = join(dir, 'bpftime.bash');
		writeFileSync(script, r.stdout);
		const p = spawnSync('bash', ['--norc', '-c', 'source "$1" && complete -p bpftime', 'bash', script], {
			encoding: 'utf8',
		});
		expect(p.stdout.trim()).toBe('complete -o default -F _bpftime bpftime');
		expect(bashComplete(script, ['bpftime', 'ob'])).toEqual(['objdump']);
		expect(bashComplete(script, ['bpftime', 'd'])).toEqual(['detach', 'doctor']);
		expect(bashComplete(script, ['bpftime', '--segment', 'x', 'ma'])).toEqual(['map']);
		expect(bashComplete(script, ['bpftime', 'map', 'du'])).toEqual(['dump']);
		expect(bashComplete(script, ['bpftime', 'vm', ''])).toEqual(['plugin']);
		expect(bashComplete(script, ['bpftime', 'prog', ''])).toEqual(expect.arrayContaining(['list', 'show', 'dump']));
		expect(bashComplete(script, ['bpftime', 'run', 'x.o', '--re'])).toEqual(['--repeat']);
		expect(bashComplete(script, ['bpftime', 'start', '--vm', 'int'])).toEqual(['interpreter']);
		expect(bashComplete(script, ['bpftime', 'completion', ''])).toEqual(['bash', 'zsh']);
		expect(bashComplete(script, ['bpftime', 'attach', String(process.pid)])).toContain(String(process.pid));
		expect(bashComplete(script, ['bpftime', '--v'])).toEqual(['--version']);

		// Names of the registry's objects, from `bpftime map list --json` in the --segment given.
		const seg = segmentName();
		expect((await bpftime(['--segment', seg, 'load', '--no-attach', object])).code).toBe(0);
		expect(bashComplete(script, ['bpftime', '--segment', seg, 'map', 'dump', ''])).toEqual(['totals', 'last']);
		expect(bashComplete(script, ['bpftime', `--segment=${seg}`, 'map', 'lookup', 'l'])).toEqual(['last']);
		expect(bashComplete(script, ['bpftime', '--segment', seg, 'prog', 'show', ''])).toEqual(['add_ctx', 'seven']);
		expect(bashComplete(script, ['bpftime', '--segment', `${seg}_none`, 'map', 'dump', ''])).toEqual([]);
	});

	const zsh = spawnSync('zsh', ['--version']).error ? undefined : 'zsh';
	it.skipIf(!zsh)('registers a zsh completion function with compdef (skips without zsh)', async () => {
		const r = await bpftime(['completion', 'zsh']);
		expect(r.code).toBe(0);
		const script = join(dir, '_bpftime');
		writeFileSync(script, r.stdout);
		expect(spawnSync('zsh', ['-n', script]).status).toBe(0);
		const p = spawnSync(
			'zsh',
			[
				'-f',
				'-c',
				'autoload -U compinit && compinit -u -D && source "$1" && print -r -- $_comps[bpftime]',
				'zsh',
				script,
			],
			{ encoding: 'utf8' },
		);
		expect(p.stdout.trim()).toBe('_bpftime');
		expect(r.stdout).toContain("'objdump:sections, maps, programs, relocations and the'");

		// _bpftime itself, in zsh, with what it offers printed by stand-ins for zsh's
		// completion functions (words and CURRENT are plain variables outside a widget).
		const complete = (words: string[]) => {
			const q = words.map((w) => `'${w}'`).join(' ');
			const c = spawnSync(
				'zsh',
				[
					'-f',
					'-c',
					`source "$1" 2>/dev/null
compadd() { [[ $1 == -- ]] && shift; print -r -- "$*" }
_describe() { print -r -- "\${(j: :)\${(@)commands%%:*}}" }
_files() { print -r -- '<files>' }
_pids() { print -r -- '<pids>' }
words=(${q}); CURRENT=$#words; _bpftime`,
					'zsh',
					script,
				],
				{ encoding: 'utf8', env: shellEnv() },
			);
			return c.stdout.trim();
		};
		expect(complete(['bpftime', ''])).toBe(COMMANDS.map((c) => c.name).join(' '));
		expect(complete(['bpftime', '--segment', 's', 'map', '']).split(' ')).toEqual(
			expect.arrayContaining(['list', 'dump']),
		);
		expect(complete(['bpftime', 'run', 'x.o', '--'])).toBe('--ctx --help --json --program --repeat --shm-size --vm');
		expect(complete(['bpftime', 'start', '--vm', ''])).toBe('interpreter jit llvm');
		expect(complete(['bpftime', 'attach', ''])).toBe('<pids>');
		expect(complete(['bpftime', 'objdump', ''])).toBe('<files>');
		expect(complete(['bpftime', '-'])).toBe('--segment --help --version');
		const seg = segmentName();
		expect((await bpftime(['--segment', seg, 'load', '--no-attach', object])).code).toBe(0);
		expect(complete(['bpftime', '--segment', seg, 'map', 'update', ''])).toBe('totals last');
		expect(complete(['bpftime', '--segment', seg, 'prog', 'dump', ''])).toBe('add_ctx seven');
	});

	it('exits 2 for a shell it does not know', async () => {
		const r = await bpftime(['completion', 'fish']);
		expect([r.code, /completion: unknown shell 'fish' \(expected bash or zsh\)/.test(r.stderr)]).toEqual([2, true]);
	});
});
