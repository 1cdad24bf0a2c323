// The per-CPU run benchmark: what a run owning a CPU slot costs
// (@bpftime/handlers' cpu_slot.hpp: a run of a program that uses a per-CPU
// map claims its CPU's owner word in a restartable sequence and releases it
// at the end, so no other run updates the same values meanwhile).
//
//   per run        ns per run of a JIT program doing one bpf_map_lookup_elem
//                  and a non-atomic `*v += 1`, one thread, 2,000,000 runs
//                  through program_instance::run: on an ARRAY (no slot: the
//                  baseline), a PERCPU_ARRAY (the lookup inlined) and a
//                  PERCPU_HASH (the helper)
//   kernel         the same program in the kernel on a map of the same type
//                  (BPF_PROG_TEST_RUN, repeat 100,000), its test-run loop
//                  included; skipped, saying why, when bpf() is refused
//   contended      8 threads on this machine's CPUs, 200,000 runs each, on
//                  the PERCPU_ARRAY: ns per run (wall time / runs of one
//                  thread), whether every increment was counted, the runs
//                  that slept for a slot
//
// All in packages/maps-userspace's bpftime-run-bench-tool, one process per
// measurement, the variants alternated over 5 passes; medians.
import { existsSync } from 'node:fs';
import { median, pad, padL, runJson } from '../lib.mjs';

const pkg = new URL('../../packages/maps-userspace/', import.meta.url).pathname;
const tool = ['build/Release', 'build'].map((d) => `${pkg}${d}/bpftime-run-bench-tool`).find((p) => existsSync(p));

console.log('percpu: a run owning a CPU slot, one lookup + `*v += 1` per run, vs. the same run without a slot');
if (!tool) {
	console.log('  bpftime-run-bench-tool is not built (pnpm --filter @bpftime/maps-userspace build): skipped');
	process.exit(1);
}
const types = ['array', 'percpu_array', 'percpu_hash'];
const PASSES = 5;
const runs = Object.fromEntries(types.map((t) => [t, []]));
const kernel = Object.fromEntries(types.map((t) => [t, []]));
const contended = [];
let failed = false;
for (let pass = 0; pass < PASSES; pass++) {
	for (const t of types) {
		const r = runJson(tool, ['runs', t, '1', '2000000']);
		if (r.error || r.counted !== r.runs) {
			console.log(`  ${t}: FAILED: ${r.error ?? `${r.counted} counted of ${r.runs}`}`);
			failed = true;
		} else runs[t].push(r.ns_per_run);
		const k = runJson(tool, ['kernel', t]);
		if (k.ns_per_run !== undefined) kernel[t].push(k.ns_per_run);
		else if (pass === 0) console.log(`  kernel ${t}: skipped: ${k.skip ?? k.error}`);
	}
	contended.push(runJson(tool, ['runs', 'percpu_array', '8', '200000']));
}
const base = median(runs.array);
console.log(`  ${pad('map', 14)}  ${padL('ns/run', 8)}  ${pad('vs. array', 10)}  ${padL('kernel', 8)}`);
for (const t of types) {
	const ns = median(runs[t]);
	const k = kernel[t].length ? median(kernel[t]) : undefined;
	console.log(
		`  ${pad(t, 14)}  ${padL(ns.toFixed(1), 8)}  ${pad(`${(ns / base).toFixed(2)}x`, 10)}  ${padL(k === undefined ? '-' : k.toFixed(1), 8)}`,
	);
}
const bad = contended.find((c) => c.error || c.counted !== c.runs);
if (bad) {
	console.log(
		`  contended: FAILED: ${bad.error ?? `${bad.counted} counted of ${bad.runs} (${bad.unowned} runs without a slot)`}`,
	);
	failed = true;
} else {
	console.log(
		`  contended, 8 threads: ${median(contended.map((c) => c.ns_per_run)).toFixed(1)} ns/run, every increment counted, ` +
			`slept for a slot: ${contended.map((c) => c.waits).join(', ')} runs of ${contended[0].runs} (per pass)`,
	);
}
process.exit(failed ? 1 : 0);
