// The libbpf-tool event printer: snoop.c prints each call of work() as its
// ring buffer record arrives (ring_buffer__poll), under bpftime.
//
//   node examples/libbpf-tool/snoop-demo.mjs [calls]     (default 20)
//
// Builds snoop.bpf.o, its skeleton, the tool and the victim; runs `bpftime
// load ./snoop ./victim work` (the tool under the syscall-server), then
// `bpftime start ./victim <calls>`, waits for the tool to print every call,
// and stops it with SIGINT. Exits 1 when a call is missing. Needs the
// workspace built (`pnpm build`), clang, bpftool and libbpf-dev.
import { execFileSync, spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { Segment } from '@bpftime/shm';
import { bpftimeIn, buildExample, cli } from '../build.mjs';

const here = fileURLToPath(new URL('.', import.meta.url));
const calls = Number(process.argv[2] ?? 20);
const segment = `bpftime_libbpf_snoop_demo_${process.pid}`;
const dir = mkdtempSync(join(tmpdir(), 'bpftime-libbpf-snoop-'));
const bpftime = bpftimeIn(segment);
let tool;

try {
	const { object, victim } = await buildExample(here, 'snoop.bpf.c', dir);
	writeFileSync(join(dir, 'snoop.skel.h'), execFileSync('bpftool', ['gen', 'skeleton', object, 'name', 'snoop_bpf']));
	const exe = join(dir, 'snoop');
	execFileSync('cc', ['-O2', `-I${dir}`, join(here, 'snoop.c'), '-lbpf', '-o', exe], { stdio: 'inherit' });

	console.log('$ bpftime load ./snoop ./victim work &');
	tool = spawn(process.execPath, [cli, '--segment', segment, 'load', exe, victim, 'work'], {
		stdio: ['ignore', 'pipe', 'inherit'],
	});
	const lines = createInterface({ input: tool.stdout });
	const seen = [];
	let onLine = () => {};
	lines.on('line', (l) => {
		console.log(`  ${l}`);
		if (l.startsWith('pid ')) seen.push(l);
		onLine(l);
	});
	const exited = once(tool, 'exit');
	const waitFor = (test, what) =>
		new Promise((resolve, reject) => {
			const timer = setTimeout(() => reject(new Error(`no ${what} within 10 s`)), 10_000);
			onLine = (l) => {
				if (test(l)) {
					clearTimeout(timer);
					resolve();
				}
			};
			exited.then(([code]) => reject(new Error(`the tool exited (${code}) before ${what}`)));
		});
	await waitFor((l) => l.startsWith('attached'), 'attaching');

	console.log(`$ bpftime start ./victim ${calls}`);
	const printed = waitFor(() => seen.length === calls, `${calls} events`);
	process.stdout.write(
		bpftime(['start', victim, String(calls)], {
			env: { ...process.env, SPDLOG_LEVEL: process.env.SPDLOG_LEVEL ?? 'warn' },
		}),
	);
	await printed;
	console.log('$ kill -INT %1');
	tool.kill('SIGINT');
	const [code] = await exited;
	if (code !== 0) throw new Error(`the tool exited with ${code}`);
	const xs = seen.map((l) => Number(/x=(-?\d+)$/.exec(l)?.[1]));
	if (xs.some((x, i) => x !== i)) throw new Error(`the calls came out of order or wrong: ${xs.join(' ')}`);
	console.log(`\n${seen.length} calls of work() printed as they happened`);
} catch (e) {
	console.error(`libbpf-tool snoop demo FAILED: ${e.message}`);
	process.exitCode = 1;
} finally {
	if (tool && tool.exitCode === null) tool.kill('SIGKILL');
	if (Segment.exists({ name: segment })) Segment.remove({ name: segment });
	rmSync(dir, { recursive: true, force: true });
}
