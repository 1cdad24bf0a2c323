import { readFileSync, readlinkSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { assemble } from '@bpftime/vm';
import { describe, expect, it, onTestFinished } from 'vitest';
import { availableHelpers, type Backend, ProgType } from '../src/index.js';
import { errorOf, freshRegistry, runChild, uniqueName } from './helpers.js';

const backends: Backend[] = ['interpreter', 'jit'];
const EFAULT = 14n;
const neg = (e: bigint) => (1n << 64n) - e;

/** This thread's kernel task id (the low half of bpf_get_current_pid_tgid). */
const threadId = () => BigInt(readlinkSync('/proc/thread-self').split('/').at(-1) as string);

describe.each(backends)('programs of the registry on the %s', (backend) => {
	function load(text: string, name = 'p') {
		const { reg } = freshRegistry(`prog_${backend}`);
		return reg.loadProg({ type: ProgType.Kprobe, name, license: 'GPL', insns: assemble(text) });
	}

	it('runs with r1 = ctx and returns r0', () => {
		const p = load('r0 = *(u32 *)(r1 + 4)\nr0 += r2\nexit');
		const ctx = Buffer.from([0, 0, 0, 0, 40, 0, 0, 0]);
		expect(p.instantiate({ backend }).backend).toBe(backend);
		expect(p.run(ctx, { backend })).toBe(48n);
	});

	it('bpf_probe_read of an unmapped address returns -EFAULT and zeroes the buffer instead of crashing', () => {
		const p = load(
			'r1 = -1\n*(u64 *)(r10 - 8) = r1\nr1 = r10\nr1 += -8\nr2 = 8\nr3 = 16\ncall 4\n' +
				'r1 = *(u64 *)(r10 - 8)\nif r1 != 0 goto +1\nexit\nr0 = 1\nexit',
		);
		expect(p.run(undefined, { backend })).toBe(neg(EFAULT));
	});

	it.each([
		['bpf_probe_read_user', 112],
		['bpf_probe_read_kernel', 113],
		['bpf_probe_read_user_str', 114],
	])('%s of an unmapped address returns -EFAULT', (_name, id) => {
		const p = load(`r1 = r10\nr1 += -8\nr2 = 8\nr3 = 4096\ncall ${id}\nexit`);
		expect(p.run(undefined, { backend })).toBe(neg(EFAULT));
	});

	it.each([
		['bpf_probe_read into an unmapped buffer', 'r1 = 16\nr2 = 8\nr3 = r10\ncall 4\nexit'],
		['bpf_probe_read_str into an unmapped buffer', 'r1 = 16\nr2 = 8\nr3 = r10\ncall 45\nexit'],
		['bpf_get_current_comm into an unmapped buffer', 'r1 = 16\nr2 = 16\ncall 16\nexit'],
		['bpf_trace_printk of an unmapped format', 'r1 = 16\nr2 = 8\ncall 6\nexit'],
		['bpf_strtol of an unmapped string', 'r1 = 16\nr2 = 4\nr3 = 0\nr4 = r10\nr4 += -8\ncall 105\nexit'],
		[
			'bpf_strtoul into an unmapped result',
			'r1 = 0x333231\n*(u32 *)(r10 - 8) = r1\nr1 = r10\nr1 += -8\nr2 = 4\nr3 = 0\nr4 = 16\ncall 106\nexit',
		],
		[
			'bpf_snprintf into an unmapped buffer',
			'r4 = 0x6261\n*(u64 *)(r10 - 8) = r4\nr1 = 16\nr2 = 16\nr3 = r10\nr3 += -8\nr4 = 0\nr5 = 0\ncall 165\nexit',
		],
		[
			'bpf_snprintf of an unmapped format and arguments',
			'r1 = r10\nr1 += -8\nr2 = 8\nr3 = 16\nr4 = 16\nr5 = 8\ncall 165\nexit',
		],
	])(
		'%s is refused by the verifier, and with it off returns -EFAULT instead of crashing the process',
		async (_what, text) => {
			// The kernel refuses a number where the helper wants memory; so does
			// the registry, naming the argument.
			const e = errorOf(() => load(text));
			expect(e.code).toBe('EINVAL');
			expect(e.message).toMatch(/prog 'p': load: insn \d+: R\d type=scalar expected=/);
			// With BPFTIME_VERIFIER=off the helper itself must still not crash.
			const child = await runChild(
				'child.mjs',
				['unsafe', uniqueName('unsafe'), backend, assemble(text).toString('hex')],
				{
					BPFTIME_VERIFIER: 'off',
				},
			);
			expect(child.stdout.trim()).toBe(`r0 ${neg(EFAULT)}`);
			expect(child.stderr).toMatch(/BPFTIME_VERIFIER=off/);
		},
	);

	it('bpf_probe_read copies readable memory', () => {
		const p = load('r3 = r1\nr1 = r10\nr1 += -8\nr2 = 8\ncall 4\nr0 = *(u64 *)(r10 - 8)\nexit');
		const ctx = Buffer.alloc(8);
		ctx.writeBigUInt64LE(0x1122334455667788n);
		expect(p.run(ctx, { backend })).toBe(0x1122334455667788n);
	});

	it('bpf_probe_write_user writes into memory of the process, and refuses an unmapped address', () => {
		const p = load('r2 = 0x2a\n*(u64 *)(r10 - 8) = r2\nr2 = r10\nr2 += -8\nr3 = 8\ncall 36\nexit');
		const ctx = Buffer.alloc(8);
		expect(p.run(ctx, { backend })).toBe(0n);
		expect(ctx.readBigUInt64LE()).toBe(42n);
		const bad = load('r1 = 16\nr2 = r10\nr2 += -8\nr3 = 8\n*(u64 *)(r10 - 8) = r3\ncall 36\nexit');
		expect(bad.run(undefined, { backend })).toBe(neg(EFAULT));
	});

	it('bpf_get_current_pid_tgid and bpf_get_current_uid_gid describe the calling thread', () => {
		expect(load('call 14\nexit').run(undefined, { backend })).toBe((BigInt(process.pid) << 32n) | threadId());
		const ids = (BigInt(process.getgid?.() ?? 0) << 32n) | BigInt(process.getuid?.() ?? 0);
		expect(load('call 15\nexit').run(undefined, { backend })).toBe(ids);
	});

	it('bpf_get_current_comm writes the thread name, NUL-terminated', () => {
		const p = load(
			'r6 = r1\nr1 = r10\nr1 += -16\nr2 = 16\ncall 16\nr1 = *(u64 *)(r10 - 16)\n*(u64 *)(r6 + 0) = r1\n' +
				'r1 = *(u64 *)(r10 - 8)\n*(u64 *)(r6 + 8) = r1\nexit',
		);
		const ctx = Buffer.alloc(16, 0xff);
		expect(p.run(ctx, { backend })).toBe(0n);
		const comm = readFileSync('/proc/thread-self/comm', 'utf8').trim();
		expect(ctx.toString('latin1', 0, ctx.indexOf(0))).toBe(comm);
	});

	it('bpf_ktime_get_ns, _boot_ns and _coarse_ns move forward', () => {
		for (const id of [5, 125, 160]) {
			const p = load(`call ${id}\nr6 = r0\ncall ${id}\nr0 -= r6\nexit`);
			const delta = p.run(undefined, { backend });
			expect(delta).toBeGreaterThanOrEqual(0n);
			expect(delta).toBeLessThan(1_000_000_000n);
		}
	});

	it('bpf_strtol parses a decimal string and returns the characters consumed', () => {
		// "123\0" on the stack; result in r10 - 16.
		const p = load(
			'r1 = 0x333231\n*(u32 *)(r10 - 8) = r1\nr1 = r10\nr1 += -8\nr2 = 4\nr3 = 0\nr4 = r10\nr4 += -16\n' +
				'call 105\nr0 *= 1000\nr1 = *(u64 *)(r10 - 16)\nr0 += r1\nexit',
		);
		expect(p.run(undefined, { backend })).toBe(3123n);
	});

	it('bpf_snprintf formats into a buffer and returns the length with the NUL', () => {
		// fmt "%d-%x\0" at r10-8, args [42, 255] at r10-24, output into ctx.
		const p = load(
			'r6 = r1\nr1 = 0x78252d6425 ll\n*(u64 *)(r10 - 8) = r1\nr1 = 42\n*(u64 *)(r10 - 24) = r1\n' +
				'r1 = 255\n*(u64 *)(r10 - 16) = r1\nr1 = r6\nr2 = 16\nr3 = r10\nr3 += -8\nr4 = r10\nr4 += -24\nr5 = 16\n' +
				'call 165\nexit',
		);
		const ctx = Buffer.alloc(16, 0xff);
		expect(p.run(ctx, { backend })).toBe(6n);
		expect(ctx.toString('latin1', 0, 6)).toBe('42-ff\0');
	});

	it('bpf_get_attach_cookie and bpf_get_func_ip return what the run was given', () => {
		expect(load('call 174\nexit').run(undefined, { backend, cookie: 0xabcdefn })).toBe(0xabcdefn);
		expect(load('call 173\nexit').run(undefined, { backend, funcIp: 0x401000n })).toBe(0x401000n);
	});

	it('refuses at instantiation a helper bpftime does not provide, by its kernel name', () => {
		const p = load('r1 = 0\ncall 35\nexit', 'task');
		const e = errorOf(() => p.instantiate({ backend }));
		expect(e.code).toBe('EINVAL');
		expect(e.message).toMatch(/prog 'task' \(id 0\): insn 1: calls bpf_get_current_task \(#35\)/);
	});

	it('reports what the verifier rejects, naming the program', () => {
		const e = errorOf(() => load('r0 = 0\ngoto +5\nexit', 'jumps'));
		expect(e.code).toBe('EINVAL');
		expect(e.message).toMatch(/prog 'jumps'/);
	});
});

describe('programs across processes', () => {
	it('runs a program another process loaded, and another process runs one loaded here', async () => {
		const { reg, name } = freshRegistry('xprog');
		const before = reg.changeCounter;
		const child = await runChild('child.mjs', ['load', name, '4242']);
		expect(child.stderr).toBe('');
		// What attached processes watch to pick up new links.
		expect(reg.changeCounter).toBe(before + 1n);
		const [, id, gen] = child.stdout.trim().split(' ');
		const p = reg.prog(Number(id));
		expect(p.generation).toBe(BigInt(gen as string));
		expect(p.name).toBe('from_child');
		expect(p.run()).toBe(4242n);

		const mine = reg.loadProg({ type: ProgType.Kprobe, name: 'from_parent', insns: assemble('r0 = 77\nexit') });
		const other = await runChild('child.mjs', ['run', name, String(mine.id)]);
		expect(other.stdout.trim()).toBe('r0 77');
	});

	it('sends bpf_trace_printk lines to the file BPFTIME_TRACE_PRINTK_SINK names', async () => {
		const { name } = freshRegistry('printk');
		const sink = join(tmpdir(), `bpftime-printk-${process.pid}.txt`);
		onTestFinished(() => rmSync(sink, { force: true }));
		const child = await runChild('child.mjs', ['printk', name], { BPFTIME_TRACE_PRINTK_SINK: sink });
		expect(child.stderr).toBe('');
		// The kernel's bpf_trace_printk returns the number of bytes written.
		expect(child.stdout.trim()).toBe('r0 5');
		expect(readFileSync(sink, 'utf8')).toBe('hi 7\n');
	});
});

describe('environment variables', () => {
	/** The child's `env` command with only `env` of the variables it reads set. */
	const runEnvChild = (env: Record<string, string>) =>
		runChild('child.mjs', ['env', uniqueName('env')], {
			BPFTIME_DISABLE_JIT: undefined,
			BPFTIME_VM_NAME: undefined,
			BPFTIME_MAX_FD_COUNT: undefined,
			...env,
		});

	it.each([
		[{}, 'env jit jit 6144'],
		[{ BPFTIME_DISABLE_JIT: '1' }, 'env interpreter interpreter 6144'],
		[{ BPFTIME_DISABLE_JIT: '0', BPFTIME_VM_NAME: 'interpreter' }, 'env interpreter interpreter 6144'],
		[{ BPFTIME_DISABLE_JIT: '1', BPFTIME_VM_NAME: 'jit' }, 'env interpreter interpreter 6144'],
		[{ BPFTIME_MAX_FD_COUNT: '100' }, 'env jit jit 100'],
	])('picks the backend and capacity from %o', async (env, line) => {
		const r = await runEnvChild(env);
		expect(r.stderr).toBe('');
		expect(r.stdout.trim()).toBe(line);
	});

	it.each([
		[{ BPFTIME_VM_NAME: 'bogus' }, /^error EINVAL BPFTIME_VM_NAME/],
		[{ BPFTIME_MAX_FD_COUNT: '12x' }, /^error EINVAL BPFTIME_MAX_FD_COUNT='12x'/],
	])('refuses a malformed %o with EINVAL naming the variable', async (env, message) => {
		const r = await runEnvChild(env);
		expect(r.stdout.trim()).toMatch(message);
	});
});

describe('helpers', () => {
	it('lists the standard helpers by kernel id and name', () => {
		const byId = new Map(availableHelpers().map((h) => [h.id, h.name]));
		expect(byId.get(1)).toBe('map_lookup_elem');
		expect(byId.get(4)).toBe('probe_read');
		expect(byId.get(14)).toBe('get_current_pid_tgid');
		expect(byId.get(112)).toBe('probe_read_user');
		expect(byId.has(27)).toBe(false);
	});
});
