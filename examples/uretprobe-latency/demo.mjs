// The uretprobe example: a latency histogram of a function, drawn as bcc's
// funclatency draws it.
//
//   node examples/uretprobe-latency/demo.mjs [seconds]     (default 3)
//
// Builds latency.bpf.o and the victim, loads the object into a segment of its
// own with `bpftime load --binary ./victim` (its SEC names give only the
// function, work), runs the victim under `bpftime start` for the given time,
// then reads the histogram with `bpftime map dump` and prints it. Exits 1
// when no call was measured, or when the calls measured are not those the
// victim made. Needs the workspace built (`pnpm build`).
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Segment } from '@bpftime/shm';
import { bpftimeIn, buildExample } from '../build.mjs';

const here = fileURLToPath(new URL('.', import.meta.url));
const seconds = Number(process.argv[2] ?? 3);
const segment = `bpftime_latency_demo_${process.pid}`;
const dir = mkdtempSync(join(tmpdir(), 'bpftime-latency-'));
const bpftime = bpftimeIn(segment);

try {
	const { object, victim } = await buildExample(here, 'latency.bpf.c', dir);
	Segment.create({ name: segment, sizeMb: 16 }).close();
	process.stdout.write(
		`$ bpftime load --binary ./victim latency.bpf.o\n${bpftime(['load', '--binary', victim, object])}`,
	);
	console.log(`$ bpftime start ./victim ${seconds}`);
	const out = bpftime(['start', victim, String(seconds)], {
		env: { ...process.env, SPDLOG_LEVEL: process.env.SPDLOG_LEVEL ?? 'warn' },
	});
	process.stdout.write(out);
	const made = Number(/: (\d+) calls of work\(\)/.exec(out)?.[1]);

	const hist = JSON.parse(bpftime(['map', 'dump', '--json', 'hist'])).entries.map((e) => BigInt(e.value));
	const total = hist.reduce((a, b) => a + b, 0n);
	let last = hist.length - 1;
	while (last > 0 && hist[last] === 0n) last--;
	let max = 1n;
	for (const h of hist) if (h > max) max = h;
	console.log('\n     usecs               : count     distribution');
	for (let i = 0; i <= last; i++) {
		const lo = i === 0 ? 0 : 2 ** i;
		const hi = 2 ** (i + 1) - 1;
		const bar = '*'.repeat(Number((hist[i] * 40n) / max));
		console.log(
			`${String(lo).padStart(10)} -> ${String(hi).padEnd(10)} : ${String(hist[i]).padEnd(9)} |${bar.padEnd(40)}|`,
		);
	}
	console.log(`\n${total} calls of work() measured`);
	if (total === 0n) throw new Error('no call of work() was measured');
	if (total !== BigInt(made)) throw new Error(`the victim made ${made} calls, the histogram holds ${total}`);
} catch (e) {
	console.error(`uretprobe-latency demo FAILED: ${e.message}`);
	process.exitCode = 1;
} finally {
	if (Segment.exists({ name: segment })) Segment.remove({ name: segment });
	rmSync(dir, { recursive: true, force: true });
}
