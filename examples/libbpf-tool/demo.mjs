// The libbpf-tool example: an unmodified libbpf skeleton tool run by bpftime.
//
//   node examples/libbpf-tool/demo.mjs [calls]     (default 1000)
//
// Builds calls.bpf.o, its skeleton (bpftool gen skeleton), the tool (cc
// -lbpf) and the victim; runs `bpftime load ./calls ./victim work` (the tool
// under the syscall-server: its maps, program and uprobe go to a registry of
// its own), then `bpftime start ./victim <calls>`, then stops the tool with
// SIGINT, which prints its counts. Exits 1 when they are not what the victim
// did. Needs the workspace built (`pnpm build`), clang, bpftool and
// libbpf-dev.
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
const calls = Number(process.argv[2] ?? 1000);
const segment = `bpftime_libbpf_tool_demo_${process.pid}`;
const dir = mkdtempSync(join(tmpdir(), 'bpftime-libbpf-tool-'));
const bpftime = bpftimeIn(segment);
let tool;

try {
	const { object, victim } = await buildExample(here, 'calls.bpf.c', dir);
	writeFileSync(join(dir, 'calls.skel.h'), execFileSync('bpftool', ['gen', 'skeleton', object, 'name', 'calls_bpf']));
	const exe = join(dir, 'calls');
	execFileSync('cc', ['-O2', `-I${dir}`, join(here, 'calls.c'), '-lbpf', '-o', exe], { stdio: 'inherit' });

	console.log('$ bpftime load ./calls ./victim work &');
	tool = spawn(process.execPath, [cli, '--segment', segment, 'load', exe, victim, 'work'], {
		stdio: ['ignore', 'pipe', 'inherit'],
	});
	const lines = createInterface({ input: tool.stdout });
	const printed = [];
	const attached = new Promise((resolve, reject) => {
		lines.on('line', (l) => {
			console.log(`  ${l}`);
			printed.push(l);
			if (l.startsWith('attached')) resolve();
		});
		tool.once('exit', (code) => reject(new Error(`the tool exited (${code}) before attaching`)));
	});
	await attached;

	console.log(`$ bpftime start ./victim ${calls}`);
	process.stdout.write(
		bpftime(['start', victim, String(calls)], {
			env: { ...process.env, SPDLOG_LEVEL: process.env.SPDLOG_LEVEL ?? 'warn' },
		}),
	);
	console.log('$ kill -INT %1');
	tool.kill('SIGINT');
	const [code] = await once(tool, 'exit');
	if (code !== 0) throw new Error(`the tool exited with ${code}`);
	const counted = printed
		.map((l) => /: (\d+) calls$/.exec(l)?.[1])
		.filter((n) => n !== undefined)
		.reduce((a, n) => a + Number(n), 0);
	console.log(`\n${counted} calls of work() counted by the tool`);
	if (counted !== calls) throw new Error(`the victim made ${calls} calls, the tool counted ${counted}`);
} catch (e) {
	console.error(`libbpf-tool demo FAILED: ${e.message}`);
	process.exitCode = 1;
} finally {
	if (tool && tool.exitCode === null) tool.kill('SIGKILL');
	if (Segment.exists({ name: segment })) Segment.remove({ name: segment });
	rmSync(dir, { recursive: true, force: true });
}
