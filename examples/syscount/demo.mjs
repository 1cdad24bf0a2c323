// syscount under bpftime: the system calls of a running program, per
// number, counted inside it by a raw sys_enter program written for the
// kernel.
//
//   node examples/syscount/demo.mjs [seconds]     (default 3)
//
// Builds syscount.bpf.o and the victim, `bpftime load`s the object into a
// segment of its own (the SEC("raw_tracepoint/sys_enter") program becomes a
// link), `bpftime start`s the victim (the agent rewrites its system call
// sites before main()), then reads the map with `bpftime map dump` and
// prints the top system calls by name. Exits 1 when getpid, openat, read
// and close were not all counted, 10 getpids per openat.
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { Segment } from '@bpftime/shm';
import { bpftimeIn, buildExample, cli } from '../build.mjs';

const here = fileURLToPath(new URL('.', import.meta.url));
const seconds = Number(process.argv[2] ?? 3);
const segment = `bpftime_syscount_demo_${process.pid}`;
const dir = mkdtempSync(join(tmpdir(), 'bpftime-syscount-'));
const bpftime = bpftimeIn(segment);

// Names from the kernel's header, as syscount prints them.
const names = new Map();
for (const m of readFileSync('/usr/include/x86_64-linux-gnu/asm/unistd_64.h', 'utf8').matchAll(
	/#define __NR_(\w+) (\d+)/g,
)) {
	names.set(Number(m[2]), m[1]);
}

function fail(message) {
	console.error(`syscount demo FAILED: ${message}`);
	process.exitCode = 1;
}

let victim;
try {
	const { object, victim: victimBin } = await buildExample(here, 'syscount.bpf.c', dir);
	Segment.create({ name: segment, sizeMb: 16 }).close();
	process.stdout.write(`$ bpftime load syscount.bpf.o\n${bpftime(['load', object])}`);
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
	const dump = JSON.parse(bpftime(['map', 'dump', '--json', 'syscall_counts']));
	const counts = new Map(dump.entries.map((e) => [Number(e.key), BigInt(e.value)]));
	const rows = [...counts].sort((a, b) => (b[1] > a[1] ? 1 : b[1] < a[1] ? -1 : 0));
	console.log(`${'SYSCALL'.padEnd(20)} ${'COUNT'.padStart(10)}`);
	for (const [nr, n] of rows.slice(0, 10))
		console.log(`${(names.get(nr) ?? String(nr)).padEnd(20)} ${String(n).padStart(10)}`);
	const get = (name) => counts.get([...names].find(([, n]) => n === name)?.[0]) ?? 0n;
	for (const name of ['getpid', 'openat', 'read', 'close']) if (get(name) === 0n) fail(`no ${name} counted`);
	// The agent's own calls do not include getpid/openat pairs: 10 to 1.
	const ratio = Number(get('getpid')) / Number(get('openat') || 1n);
	if (ratio < 9 || ratio > 11) fail(`getpid/openat is ${ratio.toFixed(2)}, not 10`);
	else console.log(`getpid/openat = ${ratio.toFixed(2)}: every call of the victim was counted inside it`);
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
