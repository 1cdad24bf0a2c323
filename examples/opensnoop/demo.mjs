// opensnoop under bpftime: the files a running program opens, traced
// inside it by the sys_enter_openat and sys_exit_openat tracepoint
// programs of opensnoop.bpf.c, written for the kernel.
//
//   node examples/opensnoop/demo.mjs [seconds]     (default 2)
//
// Builds opensnoop.bpf.o and the victim, `bpftime load`s the object into a
// segment of its own, `bpftime start`s the victim, then reads the `events`
// array with `bpftime map dump` and prints PID, FD (or -errno) and PATH as
// opensnoop does. Exits 1 unless both of the victim's opens were seen, the
// one that exists with an fd and the other with -ENOENT.
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { Segment } from '@bpftime/shm';
import { bpftimeIn, buildExample, cli } from '../build.mjs';

const here = fileURLToPath(new URL('.', import.meta.url));
const seconds = Number(process.argv[2] ?? 2);
const segment = `bpftime_opensnoop_demo_${process.pid}`;
const dir = mkdtempSync(join(tmpdir(), 'bpftime-opensnoop-'));
const bpftime = bpftimeIn(segment);

function fail(message) {
	console.error(`opensnoop demo FAILED: ${message}`);
	process.exitCode = 1;
}

// struct event of opensnoop.bpf.c: seq u64, pid u32, tid u32, ret s64, fname[64].
function parseEvent(hex) {
	const b = Buffer.from(hex.replace(/^0x/, '').replace(/\s/g, ''), 'hex');
	const fname = b.subarray(24, 88);
	const end = fname.indexOf(0);
	return {
		seq: b.readBigUInt64LE(0),
		pid: b.readUInt32LE(8),
		ret: b.readBigInt64LE(16),
		path: fname.subarray(0, end < 0 ? fname.length : end).toString(),
	};
}

let victim;
try {
	const { object, victim: victimBin } = await buildExample(here, 'opensnoop.bpf.c', dir);
	Segment.create({ name: segment, sizeMb: 16 }).close();
	process.stdout.write(`$ bpftime load opensnoop.bpf.o\n${bpftime(['load', object])}`);
	console.log('$ bpftime start ./victim');
	victim = spawn(process.execPath, [cli, '--segment', segment, 'start', victimBin], {
		stdio: ['ignore', 'pipe', 'inherit'],
		env: { ...process.env, SPDLOG_LEVEL: process.env.SPDLOG_LEVEL ?? 'warn' },
	});
	const ended = once(victim, 'exit');
	const lines = createInterface({ input: victim.stdout });
	await new Promise((resolve, reject) => {
		lines.on('line', (line) => {
			console.log(line);
			if (/^victim \d+: started$/.test(line)) resolve();
		});
		ended.then(([code]) => reject(new Error(`the victim exited (${code}) before it started`)));
	});
	await sleep(seconds * 1000);
	const dump = JSON.parse(bpftime(['map', 'dump', '--json', 'events']));
	const events = dump.entries
		.map((e) => parseEvent(e.value))
		.filter((e) => e.seq > 0n)
		.sort((a, b) => (a.seq < b.seq ? -1 : 1));
	console.log(`${'PID'.padStart(7)} ${'FD'.padStart(4)} PATH`);
	for (const e of events.slice(-10)) console.log(`${String(e.pid).padStart(7)} ${String(e.ret).padStart(4)} ${e.path}`);
	const ok = events.some((e) => e.path === '/etc/hostname' && e.ret >= 0n);
	const enoent = events.some((e) => e.path === '/nonexistent/bpftime' && e.ret === -2n);
	if (!ok) fail('no successful open of /etc/hostname seen');
	if (!enoent) fail('no open of /nonexistent/bpftime failing with -ENOENT seen');
	if (ok && enoent) console.log(`${events.length} opens traced inside the victim, successes and failures`);
} catch (e) {
	fail(e.message);
} finally {
	if (victim && victim.exitCode === null && victim.signalCode === null) {
		const ended = once(victim, 'exit');
		victim.kill('SIGTERM');
		await ended;
	}
	if (Segment.exists({ name: segment })) Segment.remove({ name: segment });
	rmSync(dir, { recursive: true, force: true });
}
