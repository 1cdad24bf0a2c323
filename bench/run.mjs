#!/usr/bin/env node
// Runs every benchmark of bench/suites in its own process (so one cannot warm
// or pollute another), then prints the machine it ran on. The native drivers
// (bench/native, into bench/build) are built first, against the current
// sources of the packages; a failed build is reported and the suites that
// need it say so.
//   pnpm bench            all suites
//   pnpm bench shm-lock   suites whose file name contains "shm-lock"
import { spawnSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { cpus, release, totalmem } from 'node:os';
import { buildNative } from './build-native.mjs';

const filter = process.argv[2] ?? '';
const dir = new URL('./suites/', import.meta.url).pathname;
const cpu = cpus()[0]?.model ?? 'unknown cpu';
console.log(
	`machine: ${cpu}, ${cpus().length} cores, ${Math.round(totalmem() / 2 ** 30)} GiB, Linux ${release()}, Node ${process.version}\n`,
);
let failed = 0;
const buildError = buildNative();
if (buildError) {
	console.error(`bench/native did not build:\n${buildError}\n`);
	failed++;
}
for (const file of readdirSync(dir).sort()) {
	if (!file.endsWith('.mjs') || !file.includes(filter)) continue;
	const r = spawnSync(process.execPath, ['--expose-gc', dir + file], { stdio: 'inherit' });
	if (r.status !== 0) failed++;
	console.log();
}
process.exit(failed ? 1 : 0);
