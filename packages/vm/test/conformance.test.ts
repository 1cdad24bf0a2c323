// Runs every test/data/*.data case on every backend through the native
// plugin executable, in the style of ubpf's tests/*.data.
//
// A case file has `#` comment lines, then sections:
//   -- asm      the program, in the syntax of src/asm (labels allowed)
//   -- mem      optional: memory as hex bytes, passed to the program in r1
//   -- result   r0 at exit, in hex
//   -- error    or: a substring (case-insensitive) of the load, verify or
//               run error the plugin reports
//
// Plugin protocol (build/Release/bpftime-vm-plugin), as bpf_conformance's
// runner drives plugins: the program's bytes as one line of hex on stdin; the
// memory, if any, as the first argument, in hex; then `--interpret`,
// `--jit`, `--llvm` or `--aot`. It exits 0 printing r0 in hex, or non-zero with the reason on
// stderr. Helper 5 returns its first argument. The memory is the program's
// context: its length is the context size the verifier proves accesses
// against (BPFTIME_VERIFIER=strict, the default).

import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { assemble } from '../src/asm/index.js';

const DATA = fileURLToPath(new URL('./data/', import.meta.url));
const PLUGIN = fileURLToPath(new URL('../build/Release/bpftime-vm-plugin', import.meta.url));

interface Case {
	name: string;
	asm: string;
	/** Line of the file where the asm section starts, for error messages. */
	asmLine: number;
	mem?: string;
	result?: bigint;
	error?: string;
}

const SECTIONS = new Set(['asm', 'mem', 'result', 'error']);

function parseCase(name: string, text: string): Case {
	const sections = new Map<string, { lines: string[]; start: number }>();
	let current: string[] | undefined;
	text.split('\n').forEach((line, index) => {
		const header = /^-- (\S+)\s*$/.exec(line);
		if (header) {
			const section = header[1] as string;
			if (!SECTIONS.has(section)) throw new Error(`${name}:${index + 1}: unknown section '-- ${section}'`);
			if (sections.has(section)) throw new Error(`${name}:${index + 1}: section '-- ${section}' appears twice`);
			current = [];
			sections.set(section, { lines: current, start: index + 2 });
			return;
		}
		if (current === undefined) {
			if (line.trim() !== '' && !line.startsWith('#')) {
				throw new Error(`${name}:${index + 1}: text before the first section: '${line}'`);
			}
			return;
		}
		current.push(line);
	});
	// Outside asm, blank and comment lines carry nothing.
	const body = (section: string) =>
		sections
			.get(section)
			?.lines.filter((l) => l.trim() !== '' && !l.trim().startsWith('#'))
			.join(' ')
			.trim();

	const asm = sections.get('asm');
	if (asm === undefined) throw new Error(`${name}: no '-- asm' section`);
	const result = body('result');
	const error = body('error');
	if ((result === undefined) === (error === undefined)) {
		throw new Error(`${name}: needs exactly one of '-- result' and '-- error'`);
	}
	const parsed: Case = { name, asm: asm.lines.join('\n'), asmLine: asm.start };
	if (result !== undefined) {
		if (!/^0x[0-9a-f]+$/i.test(result)) throw new Error(`${name}: result '${result}' is not hex like 0x2a`);
		parsed.result = BigInt(result);
		if (parsed.result >= 2n ** 64n) throw new Error(`${name}: result ${result} does not fit 64 bits`);
	}
	if (error !== undefined) {
		if (error === '') throw new Error(`${name}: empty '-- error' section`);
		parsed.error = error;
	}
	const mem = body('mem');
	if (mem !== undefined) {
		const bytes = mem.split(/\s+/);
		if (!bytes.every((b) => /^[0-9a-f]{2}$/i.test(b))) throw new Error(`${name}: '-- mem' is not hex bytes`);
		parsed.mem = bytes.join('');
	}
	return parsed;
}

const files = readdirSync(DATA)
	.filter((f) => f.endsWith('.data'))
	.sort();

function load(file: string): Case {
	return parseCase(file, readFileSync(`${DATA}${file}`, 'utf8'));
}

function hex64(value: bigint): string {
	return `0x${value.toString(16)}`;
}

describe('conformance case files', () => {
	it('assembles every conformance case', () => {
		const failures: string[] = [];
		for (const file of files) {
			try {
				const c = load(file);
				assemble(c.asm);
			} catch (e) {
				failures.push(`${file}: ${(e as Error).message}`);
			}
		}
		expect(failures).toEqual([]);
		expect(files.length).toBeGreaterThanOrEqual(200);
	});
});

// The LLVM backend (--llvm: ORC JIT, --aot: an ELF object loaded by the
// vm's own loader) runs where its plugin was built, with llvm-19-dev.
const LLVM_PLUGIN = fileURLToPath(new URL('../build/Release/libbpftime_vm_llvm.so', import.meta.url));
const llvmBuilt = existsSync(LLVM_PLUGIN);

for (const mode of ['interpret', 'jit', 'llvm', 'aot'] as const) {
	const needsLlvm = mode === 'llvm' || mode === 'aot';
	describe.skipIf(needsLlvm && !llvmBuilt)(`${mode} backend`, () => {
		if (needsLlvm && !llvmBuilt) console.log(`skipped: ${LLVM_PLUGIN} is not built (no llvm-19-dev)`);
		if (!existsSync(PLUGIN)) {
			it('finds the bpftime-vm-plugin executable', () => {
				throw new Error(
					`bpftime-vm-plugin not found at ${PLUGIN}; build the native part first ` +
						'(pnpm --filter @bpftime/vm build) so the conformance cases can run',
				);
			});
			return;
		}

		it.each(files)('%s', (file) => {
			const c = load(file);
			const program = assemble(c.asm).toString('hex');
			const args = [...(c.mem === undefined ? [] : [c.mem]), `--${mode}`];
			const spawn = (env: NodeJS.ProcessEnv) =>
				spawnSync(PLUGIN, args, { input: `${program}\n`, encoding: 'utf8', timeout: 10_000, env });
			let run = spawn({ ...process.env, BPFTIME_VERIFIER: 'strict' });
			// Cases that test the ISA where the kernel's verifier refuses the
			// program by design (a shift immediate at or above the width, an
			// atomic operation on the context): the verifier must refuse them
			// as the kernel does, and the machine must still compute what RFC
			// 9669 says, so they run again with the type discipline off.
			const byDesign = /: (invalid shift -?\d+|BPF_ATOMIC stores into R\d+ ctx is not allowed)$/m;
			if (c.error === undefined && run.status === 1 && byDesign.test(run.stderr.trim())) {
				run = spawn({ ...process.env, BPFTIME_VERIFIER: 'off' });
			}
			// EPIPE only means the plugin exited before reading the program;
			// its status and stderr still say why.
			if (run.error !== undefined && run.status === null && run.signal === null) throw run.error;
			const how = run.signal !== null ? `was killed by ${run.signal}` : `exited ${run.status}`;
			const stderr = run.stderr.trim();

			if (c.error !== undefined) {
				if (run.status === 0) {
					throw new Error(`expected an error containing '${c.error}' but the program returned ${run.stdout.trim()}`);
				}
				expect(run.signal, `the plugin ${how}: ${stderr}`).toBeNull();
				expect(stderr.toLowerCase(), `the plugin ${how}`).toContain(c.error.toLowerCase());
				return;
			}
			expect(run.status, `the plugin ${how}: ${stderr}`).toBe(0);
			const out = run.stdout.trim();
			expect(out, 'stdout is r0 in hex').toMatch(/^(0x)?[0-9a-f]+$/i);
			const r0 = BigInt(out.startsWith('0x') || out.startsWith('0X') ? out : `0x${out}`);
			expect(hex64(r0)).toBe(hex64(c.result as bigint));
		});
	});
}
