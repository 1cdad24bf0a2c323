import { execFile } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { findBuilt } from '@bpftime/common';
import { afterAll, describe, expect, it } from 'vitest';
import { type Backend, backendUnavailable, Vm } from '../src/index.js';
import { findTool } from './llvm-tools.js';

const run = promisify(execFile);
const packageDir = new URL('..', import.meta.url).pathname;
const clangDir = join(packageDir, 'native/test/clang');

describe('native core tests', () => {
	it('pass: opcode table, verifier, interpreter, JIT, LLVM, callbacks, tail calls, bounds checks', async () => {
		const exe = findBuilt(packageDir, 'bpftime-vm-native-test');
		expect(exe, 'bpftime-vm-native-test is built with the package').toBeDefined();
		const { stdout } = await run(exe as string, [], { maxBuffer: 64 << 20 });
		const summary = stdout.trim().split('\n').at(-1) ?? '';
		expect(summary).toMatch(/\b0 failed\b/);
		expect(summary).toMatch(/\b0 skipped\b/);
	});

	it('pass: the JIT and the LLVM backend on every CPU-feature and bounds-check variant, against the interpreter and native C', async () => {
		const exe = findBuilt(packageDir, 'bpftime-vm-jit-test');
		expect(exe, 'bpftime-vm-jit-test is built with the package').toBeDefined();
		const { stdout } = await run(exe as string, [], { maxBuffer: 64 << 20 });
		expect(stdout).not.toMatch(/SKIPPED/);
		expect(stdout.trim().split('\n').at(-1)).toMatch(/^\d+ checks, 0 failed$/);
		// Where the LLVM plugin is built, its variants run (llvm-19-dev
		// is one of scripts/install-deps.sh's packages).
		if (backendUnavailable('llvm') === undefined) expect(stdout).toMatch(/^variants:.* llvm llvm\+bounds$/m);
	}, 300_000);
});

// Programs written in C, compiled by clang-19 for BPF (-mcpu=v4: sdiv/smod,
// movsx, sign-extending loads, bswap, local calls, atomics) and natively by
// the host compiler: the same input must give the same r0.
const clang = findTool('clang-19');
const objcopy = findTool('llvm-objcopy') ?? findTool('llvm-objcopy-19');
const cc = findTool('cc');
const programs = readdirSync(clangDir)
	.filter((f) => f.endsWith('.c') && f !== 'native_main.c')
	.map((f) => f.slice(0, -2));
const memory = Buffer.from(Array.from({ length: 64 }, (_, i) => (i * 37 + 11) % 256));
const work = mkdtempSync(join(tmpdir(), 'bpftime-vm-clang-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

describe.skipIf(!clang || !objcopy || !cc)('C programs compiled by clang-19 agree with native code', () => {
	if (!clang) console.log('skipped: clang-19 is not installed (scripts/install-deps.sh installs it)');

	async function build(name: string): Promise<{ code: Buffer; expected: bigint }> {
		const src = join(clangDir, `${name}.c`);
		const obj = join(work, `${name}.bpf.o`);
		const bin = join(work, `${name}.bin`);
		const exe = join(work, `${name}.native`);
		await run(clang as string, ['-target', 'bpf', '-mcpu=v4', '-O2', '-c', src, '-o', obj]);
		await run(objcopy as string, ['-O', 'binary', '--only-section=.text', obj, bin]);
		await run(cc as string, ['-O2', '-o', exe, src, join(clangDir, 'native_main.c')]);
		const { stdout } = await run(exe, [memory.toString('hex').replace(/(..)/g, '$1 ')]);
		return { code: readFileSync(bin), expected: BigInt(stdout.trim()) };
	}

	const backends: Backend[] = ['interpreter', 'jit', ...(backendUnavailable('llvm') ? [] : (['llvm'] as Backend[]))];
	it.each(programs.flatMap((p) => backends.map((b) => [p, b])))('%s on the %s', async (name, backend) => {
		const { code, expected } = await build(name as string);
		// The memory is the context, so the verifier knows its size.
		// Two programs test the machine with what the kernel's verifier
		// refuses by design: atomics.c runs atomic operations on the
		// context, loops.c indexes the context by its run-time length
		// (r2), which no verifier bounds. The verifier must refuse them
		// as the kernel does; they then run with the type discipline off.
		const refusedByDesign: Record<string, RegExp> = {
			atomics: /BPF_ATOMIC stores into R\d+ ctx is not allowed/,
			loops: /invalid bpf_context access off=64 size=1/,
		};
		const reason = refusedByDesign[name as string];
		if (reason) {
			using strict = new Vm({ backend: backend as Backend, contextSize: memory.length, verifier: 'strict' });
			expect(() => strict.load(code)).toThrow(reason);
		}
		using vm = new Vm({
			backend: backend as Backend,
			contextSize: memory.length,
			verifier: reason ? 'off' : 'strict',
		});
		vm.load(code);
		expect(vm.run(Buffer.from(memory))).toBe(expected);
	});
});
