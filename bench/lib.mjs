// Measurement helpers shared by the suites: medians over repeated batches,
// and a table with the ratio of each variant to the suite's baseline.

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
