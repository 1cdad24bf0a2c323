// bpftime aot: the command in its own process, on an object clang-19 builds
// from test/fixtures/aot.bpf.c; the objects it writes run in a Vm.
import { execFile, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { BpfObject } from '@bpftime/loader';
import { backendUnavailable, Vm } from '@bpftime/vm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const run = promisify(execFile);
const cli = new URL('../dist/cli.js', import.meta.url).pathname;
const source = new URL('./fixtures/aot.bpf.c', import.meta.url).pathname;
const llvmMissing = backendUnavailable('llvm');
const clang = spawnSync('clang-19', ['--version']).status === 0;

function bpftime(args: string[]) {
	return spawnSync(process.execPath, [cli, ...args], { encoding: 'utf8' });
}

describe.skipIf(llvmMissing !== undefined || !clang)('bpftime aot', () => {
	if (llvmMissing) console.log(`skipped: the llvm backend: ${llvmMissing}`);
	if (!clang) console.log('skipped: clang-19 is not installed (scripts/install-deps.sh installs it)');
	let dir: string;
	let object: string;
	beforeAll(async () => {
		dir = mkdtempSync(join(tmpdir(), 'bpftime-aot-'));
		object = join(dir, 'aot.bpf.o');
		await run('clang-19', ['-target', 'bpf', '-mcpu=v4', '-O2', '-c', source, '-o', object]);
	});
	afterAll(() => rmSync(dir, { recursive: true, force: true }));

	const memory = Buffer.from(Array.from({ length: 16 }, (_, i) => (i * 37 + 11) % 256));

	it('compiles every program to an object that a vm runs as the interpreter does', () => {
		const out = join(dir, 'all');
		const r = bpftime(['aot', object, '-o', out]);
		expect(r.stderr).toBe('');
		expect(r.status).toBe(0);
		expect(r.stdout).toMatch(/^fnv1a: \d+ instructions -> .*fnv1a\.o \(\d+ bytes\)$/m);
		expect(readdirSync(out).sort()).toEqual(['fnv1a.o', 'sum.o']);
		const obj = BpfObject.open(object);
		try {
			for (const p of obj.programs) {
				using interp = new Vm({ contextSize: 16 });
				interp.load(p.instructions);
				using native = new Vm({ contextSize: 16 });
				native.loadAot(readFileSync(join(out, `${p.name}.o`)));
				expect(native.run(Buffer.from(memory))).toBe(interp.run(Buffer.from(memory)));
			}
		} finally {
			obj.close();
		}
	});

	it('writes one program to the file -o names', () => {
		const out = join(dir, 'sum.o');
		const r = bpftime(['aot', object, '--program', 'sum', '-o', out]);
		expect(r.status).toBe(0);
		using vm = new Vm({ contextSize: 16 });
		vm.loadAot(readFileSync(out));
		const want = [...memory].reduce((s, b, i) => s + b * (i + 1), 0);
		expect(vm.run(Buffer.from(memory))).toBe(BigInt(want));
	});

	it('exits 1 naming the programs when --program names none', () => {
		const out = join(dir, 'none.o');
		const r = bpftime(['aot', object, '--program', 'nope', '-o', out]);
		expect(r.status).toBe(1);
		expect(r.stderr).toMatch(/program 'nope': not in .* \(programs: 'fnv1a', 'sum'\)/);
		expect(existsSync(out)).toBe(false);
	});

	it('exits 2 with its usage without an object', () => {
		const r = bpftime(['aot']);
		expect(r.status).toBe(2);
		expect(r.stderr).toMatch(/missing <prog\.bpf\.o>/);
	});
});
