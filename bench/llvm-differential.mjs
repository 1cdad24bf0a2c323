// The LLVM backend on all 3000 random programs of the VM's differential
// test (the suite runs a seeded tenth of them, as LLVM compiles each in
// milliseconds): node bench/llvm-differential.mjs
//
// Runs packages/vm's bpftime-vm-jit-test --full, which compares every
// program's result on each JIT and LLVM variant with the interpreter's, and
// prints its summary and how long it took.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';

const vmDir = dirname(createRequire(import.meta.url).resolve('@bpftime/vm/package.json'));
const exe = join(vmDir, 'build/Release/bpftime-vm-jit-test');
if (!existsSync(exe)) {
	console.log(`llvm-differential: ${exe} is not built (pnpm --filter @bpftime/vm build)`);
	process.exit(1);
}
const t0 = process.hrtime.bigint();
const r = spawnSync(exe, ['--full'], { encoding: 'utf8', maxBuffer: 256 << 20 });
const s = Number(process.hrtime.bigint() - t0) / 1e9;
const lines = (r.stdout ?? '').trim().split('\n');
for (const l of lines) if (/^(variants|note|differential|\d+ checks)/.test(l)) console.log(l);
const failures = (r.stderr ?? '').split('\n').filter((l) => l.startsWith('FAIL'));
for (const l of failures.slice(0, 20)) console.log(l);
console.log(`llvm-differential: ${s.toFixed(1)} s for the whole test, exit ${r.status}`);
process.exit(r.status === 0 ? 0 : 1);
