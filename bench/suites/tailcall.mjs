// The tail-call benchmark: ns per run of a JIT program that bpf_tail_calls,
// through a PROG_ARRAY, into a program returning 42, against a run of that
// program alone (the difference is what the tail call costs), 200,000 runs
// through program_instance::run, medians of 9 rounds; the kernel's pair the
// same way (socket filters, BPF_PROG_TEST_RUN, repeat 100,000). Five passes
// in fresh processes, medians. packages/maps-userspace's
// bpftime-run-bench-tool does the measuring.
import { existsSync } from 'node:fs';
import { median, runJson } from '../lib.mjs';

const pkg = new URL('../../packages/maps-userspace/', import.meta.url).pathname;
const tool = ['build/Release', 'build'].map((d) => `${pkg}${d}/bpftime-run-bench-tool`).find((p) => existsSync(p));

console.log('tailcall: a run that tail-calls into a program returning 42, vs. a run of that program alone');
if (!tool) {
	console.log('  bpftime-run-bench-tool is not built (pnpm --filter @bpftime/maps-userspace build): skipped');
	process.exit(1);
}
const passes = [];
for (let pass = 0; pass < 5; pass++) {
	const r = runJson(tool, ['tailcall', '200000']);
	if (r.error) {
		console.log(`  FAILED: ${r.error}`);
		process.exit(1);
	}
	passes.push(r);
}
const m = (f) => median(passes.map(f));
const line = (who, tail, alone) =>
	console.log(
		`  ${who.padEnd(8)} with a tail call ${tail.toFixed(1).padStart(7)} ns, alone ${alone.toFixed(1).padStart(7)} ns, the tail call ${(tail - alone).toFixed(1).padStart(7)} ns`,
	);
line(
	'bpftime',
	m((r) => r.tail_ns),
	m((r) => r.alone_ns),
);
if (passes[0].kernel_skip) console.log(`  kernel column: skipped: ${passes[0].kernel_skip}`);
else
	line(
		'kernel',
		m((r) => r.kernel_tail_ns),
		m((r) => r.kernel_alone_ns),
	);
