// bpftime map dump of a stack trace map: each stack, its frames named from
// the ELF symbols of the process that recorded them (--pid).
import { execFileSync, spawn } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { MapType, ProgType, Registry } from '@bpftime/handlers';
import '@bpftime/maps-userspace';
import { Segment } from '@bpftime/shm';
import { describe, expect, it, onTestFinished } from 'vitest';

const cli = new URL('../dist/cli.js', import.meta.url).pathname;

async function bpftime(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
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

/** The address of libc's getpid in this process, from nm and /proc/self/maps, or why not. */
function getpidAddress(): bigint | string {
	const line = readFileSync('/proc/self/maps', 'utf8')
		.split('\n')
		.find((l) => /\/libc\.so\.6$/.test(l) && / 00000000 /.test(l));
	if (!line) return 'no libc.so.6 mapped at file offset 0 in /proc/self/maps';
	let nm: string;
	try {
		nm = execFileSync('nm', ['-D', '--defined-only', line.split(/\s+/)[5] as string], {
			encoding: 'utf8',
			maxBuffer: 1 << 26,
		});
	} catch {
		return 'nm (binutils) is not installed';
	}
	const sym = nm.split('\n').find((l) => / [TW] getpid(@@.*)?$/.test(l));
	if (!sym) return 'libc has no getpid symbol';
	return BigInt(`0x${line.split('-')[0]}`) + BigInt(`0x${sym.split(' ')[0]}`);
}

describe('bpftime map dump of a stack trace map', { timeout: 60_000 }, () => {
	it('prints each stack, and names its frames from the recording process with --pid', async (ctx) => {
		const at = getpidAddress();
		if (typeof at === 'string') {
			console.log(`skipped: ${at}`);
			ctx.skip();
			return;
		}
		const name = `bpftime_cli_stacks_${process.pid}`;
		const seg = Segment.create({ name, sizeMb: 8 });
		onTestFinished(() => {
			seg.close();
			Segment.remove({ name });
		});
		const reg = Registry.create(seg);
		const stacks = reg.createMap({
			type: MapType.StackTrace,
			name: 'stacks',
			keySize: 4,
			valueSize: 32,
			maxEntries: 4,
		});
		// r2 = map_by_fd(stacks) ll; r3 = BPF_F_USER_STACK; call bpf_get_stackid; exit
		const insn = (code: number, regs: number, imm: number) => {
			const b = Buffer.alloc(8);
			b.writeUInt8(code, 0);
			b.writeUInt8(regs, 1);
			b.writeInt32LE(imm, 4);
			return b;
		};
		const insns = Buffer.concat([
			insn(0x18, 0x12, stacks.id),
			insn(0, 0, 0),
			insn(0xb7, 0x03, 1 << 8),
			insn(0x85, 0, 27),
			insn(0x95, 0, 0),
		]);
		const p = reg.loadProg({ type: ProgType.Kprobe, name: 'rec', insns });
		const regs = Buffer.alloc(168);
		regs.writeBigUInt64LE(at + 6n, 128); // ip, inside getpid
		const id = Number(p.run(regs));

		const plain = await bpftime(['--segment', name, 'map', 'dump', 'stacks']);
		expect(plain.stderr).toBe('');
		expect(plain.stdout).toBe(
			`stack ${id}:\n    0x${(at + 6n).toString(16)}\nmap 'stacks' (id ${stacks.id}): 1 stack\n`,
		);
		const named = await bpftime(['--segment', name, 'map', 'dump', 'stacks', '--pid', String(process.pid)]);
		expect(named.stdout).toMatch(/^stack \d+:\n {4}(__)?getpid\+0x6 \(\/.*libc\.so\.6\)\n/);
		const json = JSON.parse(
			(await bpftime(['--segment', name, 'map', 'dump', 'stacks', '--json', '--pid', String(process.pid)])).stdout,
		);
		expect(json.stacks[0].frames[0]).toMatchObject({ offset: '6', address: `0x${(at + 6n).toString(16)}` });
		const bad = await bpftime(['--segment', name, 'map', 'dump', 'stacks', '--pid', 'x']);
		expect([bad.code, bad.stderr]).toEqual([2, expect.stringMatching(/--pid takes a process id, received 'x'/)]);
		reg.close();
	});
});
