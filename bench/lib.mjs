// Measurement helpers shared by the suites: medians over repeated batches,
// a table with the ratio of each variant to the suite's baseline, and the
// choice of the core a variant is pinned to.
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename } from 'node:path';

/**
 * The CPU with the least busy time over a `ms` sample of /proc/stat. Other
 * work (builds) may hold a core for a while: each variant is pinned to the
 * core that was idler just before it started, which also spares it
 * migrations.
 */
export function idlerCpu(ms) {
	const sample = () =>
		readFileSync('/proc/stat', 'utf8')
			.split('\n')
			.filter((l) => /^cpu\d+ /.test(l))
			.map((l) => {
				const f = l.split(/\s+/).slice(1).map(Number);
				return { busy: f[0] + f[1] + f[2] + f[5] + f[6] + f[7], total: f.reduce((a, b) => a + b, 0) };
			});
	const a = sample();
	Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
	const b = sample();
	let best = 0;
	let bestLoad = Number.POSITIVE_INFINITY;
	b.forEach((s, i) => {
		const load = (s.busy - a[i].busy) / Math.max(1, s.total - a[i].total);
		if (load < bestLoad) {
			bestLoad = load;
			best = i;
		}
	});
	return { cpu: best, load: bestLoad };
}

/** Median ns per operation of `fn(n)` (which runs n operations), over `rounds` batches. */
export function measure(fn, { ops = 1_000_000, rounds = 11 } = {}) {
	fn(Math.min(ops, 10_000)); // warm-up: JIT the caller, fault in pages
	const samples = [];
	for (let i = 0; i < rounds; i++) {
		const t0 = process.hrtime.bigint();
		fn(ops);
		samples.push(Number(process.hrtime.bigint() - t0) / ops);
	}
	samples.sort((a, b) => a - b);
	return samples[Math.floor(samples.length / 2)];
}

/** Prints rows of [name, ns/op]; the first row is the baseline. */
export function report(title, rows) {
	const [, base] = rows[0];
	console.log(title);
	const width = Math.max(...rows.map(([n]) => n.length));
	for (const [name, ns] of rows) {
		const ratio = ns / base;
		const rel = rows[0][0] === name ? 'baseline' : `${ratio.toFixed(2)}x baseline`;
		console.log(`  ${name.padEnd(width)}  ${ns.toFixed(1).padStart(9)} ns/op  ${rel}`);
	}
}

/** A table cell: `s` padded on the right (pad) or the left (padL) to `n` characters. */
export const pad = (s, n) => String(s).padEnd(n);
export const padL = (s, n) => String(s).padStart(n);

/**
 * Prints the row of a variant that has no measurement (`row.error` or
 * `row.skipped` set by the suite), its label padded to `width`; returns
 * whether it did, so the caller prints the measured rows itself.
 */
export function printUnmeasured(row, label, width) {
	if (row.error) console.log(`  ${pad(label, width)} error: ${row.error}`);
	else if (row.skipped) console.log(`  ${pad(label, width)} skipped: ${row.skipped}`);
	else return false;
	return true;
}

/**
 * Runs `cmd args` to its end, `env` laid over process.env: `ok` when it
 * exited 0, `out` its stdout and stderr (trimmed), `stdout` alone.
 */
export function runTool(cmd, args, env = {}) {
	const r = spawnSync(cmd, args, { encoding: 'utf8', env: { ...process.env, ...env } });
	if (r.error) return { ok: false, out: `${cmd}: ${r.error.message}` };
	return { ok: r.status === 0, out: `${r.stdout}${r.stderr}`.trim(), stdout: r.stdout };
}

/**
 * One process of a bench executable that prints its result as a JSON line
 * last (ns, p25, p75, or skipped): that row with `spread`, half the
 * interquartile range over the median; or `{ error }`, the last lines of its
 * output, when it failed.
 */
export function measureProcess(exe, args, env = {}) {
	const r = runTool(exe, args, env);
	if (!r.ok) return { error: r.out.split('\n').slice(-3).join(' ') };
	const row = JSON.parse(r.stdout.trim().split('\n').pop());
	row.spread = row.ns ? (row.p75 - row.p25) / 2 / row.ns : 0;
	return row;
}

/** The median of numbers (the upper one of an even count). */
export function median(xs) {
	const s = [...xs].sort((a, b) => a - b);
	return s[Math.floor(s.length / 2)];
}

/**
 * Runs a command that prints one JSON line last (a suite's variant in a
 * process of its own, a native kernel baseline), and parses that line.
 * Not built: `{ skip }` naming the file; a failing or silent run: `{ skip }`
 * (orSkip) or `{ error }` with its output.
 */
export function runJson(file, args, { cwd, orSkip = false, label = file } = {}) {
	if (!existsSync(file)) return { skip: `${file} is not built` };
	const r = spawnSync(file, args, { encoding: 'utf8', cwd });
	const line = r.stdout.trim().split('\n').at(-1) ?? '';
	try {
		return JSON.parse(line);
	} catch {
		const why = `${r.stdout}${r.stderr}`.trim() || `exit ${r.status}`;
		return orSkip ? { skip: `${label} failed: ${why}` } : { error: why };
	}
}

/** A suite's own variant `args` in a fresh Node process (runJson of the suite file). */
export function runSelf(selfPath, args) {
	return runJson(process.execPath, [selfPath, ...args], { cwd: tmpdir() });
}

/** A native kernel-baseline program (bench/build/…): its JSON, or `{ skip }` with the reason. */
export function runKernelBench(file, args) {
	return runJson(file, args, { orSkip: true, label: basename(file) });
}
