// Histograms as bpftrace's text output draws hist() and lhist(): one row per
// bucket from the first non-empty one to the last, the range left-aligned in
// 16 columns, the count right-aligned in 8, and a bar of '@' 52 columns wide
// at the largest count.
//
// Buckets are what eBPF programs store, not bpftrace's own layout: a log2
// histogram's bucket i holds [2^i, 2^(i+1)), bucket 0 also 0 (the slots of
// libbpf-tools' `struct hist`, filled with log2() of bits.bpf.h); a linear
// one's bucket i holds [min + i*step, min + (i+1)*step).

export type HistKind = 'log2' | 'linear';

export interface HistSpec {
	kind: HistKind;
	/** Linear: the lower bound of bucket 0 (default 0). */
	min?: bigint;
	/** Linear: the width of a bucket (default 1). */
	step?: bigint;
}

export interface Bucket {
	/** Inclusive. */
	min: bigint;
	/** Exclusive. */
	max: bigint;
	count: bigint;
}

const SUFFIXES = ['', 'K', 'M', 'G', 'T', 'P', 'E'];

/** 2^power written as bpftrace writes a log2 bound: 1, 2, … 512, 1K, 2K, … 1M. */
function powerLabel(power: number): string {
	const decade = Math.min(Math.floor(power / 10), SUFFIXES.length - 1);
	return `${1n << BigInt(power - decade * 10)}${SUFFIXES[decade]}`;
}

/** A linear bound as bpftrace writes it: K or M when a whole multiple, else the number. */
function linearLabel(n: bigint): string {
	if (n === 0n) return '0';
	if (n % (1n << 20n) === 0n) return `${n / (1n << 20n)}M`;
	if (n % 1024n === 0n) return `${n / 1024n}K`;
	return String(n);
}

/** The buckets of `counts` (bucket i's count at index i), with their ranges. */
export function buckets(counts: readonly bigint[], spec: HistSpec): Bucket[] {
	const min = spec.min ?? 0n;
	const step = spec.step ?? 1n;
	return counts.map((count, i) =>
		spec.kind === 'log2'
			? { min: i === 0 ? 0n : 1n << BigInt(i), max: 1n << BigInt(i + 1), count }
			: { min: min + BigInt(i) * step, max: min + BigInt(i + 1) * step, count },
	);
}

function rangeLabel(i: number, b: Bucket, spec: HistSpec): string {
	if (spec.kind === 'log2') return i === 0 ? '[0, 2)' : `[${powerLabel(i)}, ${powerLabel(i + 1)})`;
	return `[${linearLabel(b.min)}, ${linearLabel(b.max)})`;
}

const BAR_WIDTH = 52;

/** The rows of the histogram; empty when every count is 0 (as bpftrace prints none). */
export function drawHist(counts: readonly bigint[], spec: HistSpec): string {
	const all = buckets(counts, spec);
	const first = all.findIndex((b) => b.count > 0n);
	if (first < 0) return '';
	let last = all.length - 1;
	while (last > first && (all[last] as Bucket).count === 0n) last--;
	let top = 0n;
	for (const b of all) if (b.count > top) top = b.count;
	let out = '';
	for (let i = first; i <= last; i++) {
		const b = all[i] as Bucket;
		// As bpftrace's int(count / (float)max * 52): rounded down.
		const bar = Number((b.count * BigInt(BAR_WIDTH)) / top);
		out += `${rangeLabel(i, b, spec).padEnd(16)}${String(b.count).padStart(8)} |${'@'.repeat(bar).padEnd(BAR_WIDTH)}|\n`;
	}
	return out;
}
