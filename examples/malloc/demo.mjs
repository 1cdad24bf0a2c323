// The main job, end to end: count the malloc calls of a running program.
//
//   node examples/malloc/demo.mjs [seconds]     (default 10)
//
// 1. builds malloc.bpf.o with clang and the victim with cc, in a temporary
//    directory;
// 2. creates a bpftime segment of its own (so it never touches another
//    user's registry);
// 3. `bpftime load malloc.bpf.o`: the maps and the program go into the
//    registry, and the program's SEC("uprobe/libc.so.6:malloc") becomes a
//    uprobe link there;
// 4. `bpftime start ./victim`: the victim runs with libbpftime-agent.so,
//    which attaches the link to libc's malloc before the victim's main();
// 5. once a second, `bpftime map dump malloc_calls` reads the hash map in
//    shared memory and this script prints the victim's count;
// 6. stops the victim, removes the segment and the build directory, and
//    exits 0 — or 1, loudly, when the count did not grow every second.
//
// Needs the workspace built (`pnpm build`): scripts/demo.sh does that.
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
const seconds = Number(process.argv[2] ?? 10);
const segment = `bpftime_malloc_demo_${process.pid}`;
const dir = mkdtempSync(join(tmpdir(), 'bpftime-malloc-'));

const bpftime = bpftimeIn(segment);

function fail(message) {
	console.error(`malloc demo FAILED: ${message}`);
	process.exitCode = 1;
}

let victim;
// Ctrl-C (or a kill) still cleans up: the segment would otherwise stay in
// /dev/shm.
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
	process.once(sig, () => {
		victim?.kill('SIGTERM');
		if (Segment.exists({ name: segment })) Segment.remove({ name: segment });
		rmSync(dir, { recursive: true, force: true });
		console.error(`malloc demo: ${sig}: stopped, segment '${segment}' removed`);
		process.exit(130);
	});
}
try {
	const { object, victim: victimBin } = await buildExample(here, 'malloc.bpf.c', dir);

	Segment.create({ name: segment, sizeMb: 16 }).close();
	console.log(`segment '${segment}' created`);
	process.stdout.write(`$ bpftime load malloc.bpf.o\n${bpftime(['load', object])}`);

	console.log('$ bpftime start ./victim');
	victim = spawn(process.execPath, [cli, '--segment', segment, 'start', victimBin], {
		stdio: ['ignore', 'pipe', 'inherit'],
		env: { ...process.env, SPDLOG_LEVEL: process.env.SPDLOG_LEVEL ?? 'warn' },
	});
	const ended = once(victim, 'exit');
	const lines = createInterface({ input: victim.stdout });
	const started = new Promise((resolve, reject) => {
		lines.on('line', (line) => {
			console.log(line);
			const m = /^victim (\d+): started$/.exec(line);
			if (m) resolve(Number(m[1]));
		});
		ended.then(([code]) => reject(new Error(`the victim exited (${code}) before it started`)));
	});
	const pid = await Promise.race([
		started,
		sleep(15_000, null, { ref: false }).then(() => Promise.reject(new Error('the victim did not start within 15 s'))),
	]);

	let last = 0n;
	let grew = true;
	for (let t = 1; t <= seconds; t++) {
		await sleep(1000);
		const dump = JSON.parse(bpftime(['map', 'dump', '--json', 'malloc_calls']));
		const row = dump.entries.find((e) => e.key === String(pid));
		const count = row ? BigInt(row.value) : 0n;
		console.log(`t=${String(t).padStart(2)}s  malloc calls of victim ${pid}: ${count}`);
		if (count <= last) {
			grew = false;
			fail(`the count did not grow between t=${t - 1}s and t=${t}s (${last} -> ${count})`);
			break;
		}
		last = count;
	}
	if (grew) console.log(`the victim's malloc count grew every second, to ${last}: the uprobe ran inside it`);
} catch (e) {
	fail(e.message);
} finally {
	if (victim && victim.exitCode === null && victim.signalCode === null) {
		const ended = once(victim, 'exit');
		victim.kill('SIGTERM'); // bpftime start passes it on to the victim
		await ended;
	}
	if (Segment.exists({ name: segment })) Segment.remove({ name: segment });
	console.log(`segment '${segment}' removed`);
	rmSync(dir, { recursive: true, force: true });
}
