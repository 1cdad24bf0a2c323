// The attach benchmark: the cost of a probe hit on an empty function
// (bench_empty in packages/attach/native/test/bench_target.S: endbr64; push
// rbp; mov rbp, rsp; pop rbp; ret), called in a loop by
// bpftime-attach-bench, against the same call without a probe and against
// the kernel's uprobe and uretprobe (perf_event_open on the uprobe PMU with
// an empty BPF program attached) on the function's push %rbp, past its
// endbr64: the kernel's ordinary path, not the single-stepped one, all in
// this run.
//
// Each variant runs in its own process, pinned to the core that was idler
// just before it started; a run whose rounds spread more than ±5% is
// repeated (up to 3 runs, the steadiest kept).
//
// Goals (the issue's): under 15 ns added per uprobe hit with an empty
// callback, under 25 ns per uretprobe hit.
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { idlerCpu, measureProcess, pad, padL, printUnmeasured, runTool } from '../lib.mjs';

const repo = fileURLToPath(new URL('../..', import.meta.url));
const buildDir = `${repo}packages/attach/build`;
const exe = `${buildDir}/Release/bpftime-attach-bench`;
const rounds = 61;
const maxSpread = 0.05;
const attempts = 3;

const variants = [
	['native', 'native call (baseline)'],
	['uprobe', 'uprobe, empty callback'],
	['uprobe-2', 'uprobe, two empty callbacks'],
	['uretprobe', 'uretprobe, empty callback'],
	['uprobe+uretprobe', 'uprobe + uretprobe'],
	['breakpoint', 'uprobe forced to int3 breakpoint'],
	['kernel-uprobe', "kernel's uprobe, empty BPF program"],
	['kernel-uretprobe', "kernel's uretprobe, empty BPF program"],
];

const quiet = { SPDLOG_LEVEL: 'warn' };

// Rebuild the bench executable against the current sources when the
// package has been configured; otherwise say how to build it.
if (existsSync(`${buildDir}/CMakeCache.txt`)) {
	const b = runTool('cmake', ['--build', buildDir, '--target', 'bpftime-attach-bench'], quiet);
	if (!b.ok) {
		console.log(`attach: cannot build bpftime-attach-bench:\n${b.out}`);
		process.exit(1);
	}
}
if (!existsSync(exe)) {
	console.log(`attach: ${exe} is not built: run \`pnpm turbo run build --filter @bpftime/attach\` first`);
	process.exit(1);
}

const rows = {};
let failed = false;
for (const [mode] of variants) {
	let best;
	for (let attempt = 1; attempt <= attempts; attempt++) {
		const { cpu } = idlerCpu(100);
		const row = measureProcess(exe, [mode, '--rounds', String(rounds), '--cpu', String(cpu)], quiet);
		if (row.error) {
			best = row;
			failed = true;
			break;
		}
		row.attempts = attempt;
		if (!best || row.skipped || row.spread < best.spread) best = row;
		if (row.skipped || row.spread <= maxSpread) break;
	}
	rows[mode] = best;
}

const fmt = (ns) => (ns >= 1e4 ? `${(ns / 1e3).toFixed(2)} µs` : `${ns.toFixed(1)} ns`);
const base = rows.native?.ns;
const kernel = rows['kernel-uprobe']?.ns;

console.log('attach: one call of an empty function (bench_empty), probes with empty callbacks / programs');
console.log(
	`    each variant in its own process, pinned to the idler core; median (and 10th percentile) of ${rounds} rounds`,
);
console.log(
	`  ${pad('variant', 40)} ${padL('per call', 10)} ${padL('p10', 9)} ${padL('±', 6)} ${padL('added', 10)} ${padL('vs native', 10)} ${padL('kernel uprobe ÷', 16)}  notes`,
);
for (const [mode, label] of variants) {
	const row = rows[mode];
	if (!row) continue;
	if (printUnmeasured(row, label, 40)) continue;
	const added = mode === 'native' || !base ? '' : fmt(row.ns - base);
	const ratio = base ? `${(row.ns / base).toFixed(2)}x` : '';
	const vsKernel =
		kernel && mode !== 'kernel-uprobe' ? `${(kernel / row.ns).toFixed(kernel / row.ns >= 10 ? 0 : 2)}x` : '';
	const notes = [];
	if (row.mechanism !== 'none') notes.push(row.mechanism);
	if (row.attempts > 1) notes.push(`${row.attempts} runs`);
	if (row.spread > maxSpread) notes.push('noisy');
	console.log(
		`  ${pad(label, 40)} ${padL(fmt(row.ns), 10)} ${padL(fmt(row.p10), 9)} ${padL(`${(row.spread * 100).toFixed(1)}%`, 6)} ${padL(added, 10)} ${padL(ratio, 10)} ${padL(vsKernel, 16)}  ${notes.join('; ')}`,
	);
}

if (base) {
	console.log();
	console.log('attach: goals');
	const verdict = (ok) => (ok ? 'met' : 'MISSED');
	const up = rows.uprobe?.ns;
	const ur = rows.uretprobe?.ns;
	// Medians decide; the 10th percentiles (rounds no other process
	// disturbed, on this shared 2-core machine) are shown beside them.
	const low = (m) => (rows[m]?.p10 ?? 0) - (rows.native?.p10 ?? 0);
	if (up)
		console.log(
			`  uprobe adds ${fmt(up - base)} per hit (< 15 ns: ${verdict(up - base < 15)}; p10 rounds: ${fmt(low('uprobe'))})`,
		);
	if (ur)
		console.log(
			`  uretprobe adds ${fmt(ur - base)} per hit (< 25 ns: ${verdict(ur - base < 25)}; p10 rounds: ${fmt(low('uretprobe'))})`,
		);
	if (up && kernel)
		console.log(
			`  the kernel's uprobe adds ${fmt(kernel - base)}: ${((kernel - base) / (up - base)).toFixed(0)}x ours`,
		);
	const two = rows['uprobe-2']?.ns;
	console.log();
	console.log('attach: where the nanoseconds of a uprobe hit go');
	console.log('  jmp to the trampoline, lea over the red zone, 21 pushes building pt_regs (no pushfq at a function');
	console.log(
		'  entry: flags are dead there), sp/ip fix-ups; 8 ymm stores + vzeroupper (the argument registers), the call',
	);
	console.log('  to bpftime_attach_on_entry (one atomic load of the handler list; a single uprobe is called at once,');
	console.log('  several are walked in attach order, one indirect call each),');
	console.log('  8 ymm loads, 11 pops (callee-saved registers are not reloaded), the moved instructions, jmp back.');
	if (two && up)
		console.log(`  one more callback on the same site: ${fmt(two - up)} (the list walk + one indirect call)`);
	if (ur && up) {
		console.log(
			`  uretprobe: ${fmt(ur - base)}: the entry half, then the trampoline calls the function itself (so both rets are`,
		);
		console.log('  predicted by the return stack), pushes a second pt_regs, pops its frame off the top of the');
		console.log('  thread-local shadow stack (abandoned frames are searched for only when the top is not this one)');
		console.log('  and restores only rax, rdx and rbx');
	}
	if (rows.breakpoint?.ns && up)
		console.log(
			`  the int3 fallback costs ${fmt(rows.breakpoint.ns - up)} more: a SIGTRAP delivered and returned from`,
		);
}
process.exit(failed ? 1 : 0);
