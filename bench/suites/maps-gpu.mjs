// The GPU maps benchmark (@bpftime/maps-gpu), on a machine with an NVIDIA
// GPU; elsewhere it prints why and exits 0. One process of
// packages/maps-gpu's bpftime-maps-gpu-bench (built with the package) runs,
// alternating each variant with its baseline, `rounds` times:
//
//   array    host read of a 1M-entry GPU array (8-byte values: 8 MiB) through
//            the registry (one batched lookup), against one cudaMemcpy of
//            the same bytes to pageable host memory
//   ringbuf  1M 16-byte records written by a kernel (24 MiB with their
//            headers), consumed by the host through the registry, against one
//            cudaMemcpy of the same bytes
//
// Medians; the ratio is the baseline's time over bpftime's (1x: as fast as
// a plain copy).
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { runTool } from '../lib.mjs';

const exe = fileURLToPath(new URL('../../packages/maps-gpu/build/Release/bpftime-maps-gpu-bench', import.meta.url));
console.log('maps-gpu: GPU array host reads and GPU ring buffer records, against cudaMemcpy');
if (!existsSync(exe)) {
	console.log(
		`  skipped: ${exe} is not built (the package builds it where the CUDA toolkit is found: pnpm turbo run build --filter=@bpftime/maps-gpu)`,
	);
	process.exit(0);
}
const r = runTool(exe, [process.env.BPFTIME_BENCH_ROUNDS ?? '11']);
const last = (r.stdout ?? '').trim().split('\n').pop() ?? '';
let row;
try {
	row = JSON.parse(last);
} catch {
	console.log(`  error: ${r.out.split('\n').slice(-3).join(' ')}`);
	process.exit(1);
}
if (row.skip) {
	console.log(`  skipped: ${row.skip}`);
	process.exit(0);
}
if (!r.ok || row.error) {
	console.log(`  error: ${row.error ?? r.out}`);
	process.exit(1);
}
const gb = (x) => `${(x / 1e9).toFixed(2)} GB/s`;
const ms = (ns) => `${(ns / 1e6).toFixed(3)} ms`;
console.log(`  ${row.device}, ${row.rounds} rounds, medians`);
console.log(
	`  array, ${row.array_entries} x 8 B   registry read ${ms(row.array_map_ns)} ${gb(row.array_map_bytes_per_s)}` +
		`   cudaMemcpy ${ms(row.array_memcpy_ns)} ${gb(row.array_memcpy_bytes_per_s)}` +
		`   ${(row.array_map_ns / row.array_memcpy_ns).toFixed(2)}x the copy's time`,
);
console.log(
	`  ringbuf, ${row.ring_records} records   consume ${ms(row.ring_consume_ns)} ${(row.ring_records_per_s / 1e6).toFixed(2)} M records/s` +
		`   cudaMemcpy ${ms(row.ring_memcpy_ns)} ${gb(row.ring_memcpy_bytes_per_s)}` +
		`   ${(row.ring_consume_ns / row.ring_memcpy_ns).toFixed(2)}x the copy's time`,
);
console.log(`  (kernel producing the records: ${(row.ring_produce_records_per_s / 1e6).toFixed(2)} M records/s)`);
