// The syscall-server's event delivery: libbpf's ring_buffer__poll and
// perf_buffer__poll in a tool, of events produced by a uprobe program in a
// target (packages/syscall-server/test/fixtures/event_printer.c in its
// `quiet` mode: 32 MiB ring, 4096 perf pages per CPU, no printing).
//
//   baseline   the tool and the victim against the kernel (a kernel uprobe
//              per call, the kernel's ring buffer or perf buffer)
//   bpftime    the same executables, the tool under the syscall-server (its
//              epoll and mmap of the rings), the victim with the agent
//
// Each variant runs `calls` calls of the victim, in its own processes,
// alternated `rounds` times. Printed: events the tool received, lost ones,
// the victim's wall time (the producer), and events per second from the
// tool's first event to its last (what ring_buffer__poll delivered), medians.
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { agentPath } from '@bpftime/agent';
import { syscallServerPath } from '@bpftime/syscall-server';
import { pad, padL } from '../lib.mjs';

const calls = 50_000;
const rounds = 3;
const fixtures = fileURLToPath(new URL('../../packages/syscall-server/test/fixtures/', import.meta.url));

function median(xs) {
	const s = [...xs].sort((a, b) => a - b);
	return s[Math.floor(s.length / 2)];
}

function build(dir) {
	const object = join(dir, 'events.bpf.o');
	execFileSync(
		'clang',
		[
			'-target',
			'bpf',
			'-O2',
			'-g',
			'-D__TARGET_ARCH_x86',
			'-I/usr/include/x86_64-linux-gnu',
			'-c',
			join(fixtures, 'events.bpf.c'),
			'-o',
			object,
		],
		{ stdio: 'pipe' },
	);
	writeFileSync(join(dir, 'events.skel.h'), execFileSync('bpftool', ['gen', 'skeleton', object, 'name', 'events_bpf']));
	const tool = join(dir, 'event_printer');
	execFileSync('cc', ['-O2', `-I${dir}`, join(fixtures, 'event_printer.c'), '-lbpf', '-o', tool], { stdio: 'pipe' });
	const victim = join(dir, 'victim');
	execFileSync('cc', ['-O2', join(fixtures, 'victim.c'), '-o', victim], { stdio: 'pipe' });
	return { tool, victim };
}

/** One round: the tool started, "ready" awaited, the victim run and timed, the tool's JSON line. */
async function once(exe, mode, toolEnv, victimEnv) {
	const child = spawn(exe.tool, [exe.victim, String(calls), mode, 'quiet'], {
		env: { ...process.env, ...toolEnv },
		stdio: ['ignore', 'pipe', 'pipe'],
	});
	let out = '';
	let err = '';
	child.stdout.on('data', (d) => {
		out += d;
	});
	child.stderr.on('data', (d) => {
		err += d;
	});
	const closed = new Promise((resolve) => child.on('close', resolve));
	const deadline = Date.now() + 20_000;
	while (!out.includes('ready\n')) {
		if (child.exitCode !== null || Date.now() > deadline) {
			child.kill('SIGKILL');
			return { error: `tool: ${err.trim().split('\n').pop()}` };
		}
		await new Promise((r) => setTimeout(r, 20));
	}
	const t0 = process.hrtime.bigint();
	const v = spawnSync(exe.victim, [String(calls)], { env: { ...process.env, ...victimEnv }, stdio: 'ignore' });
	const victimNs = Number(process.hrtime.bigint() - t0);
	const code = await closed;
	if (v.status !== 0 || code !== 0) return { error: `victim ${v.status}, tool ${code}: ${err.trim()}` };
	const row = JSON.parse(out.trim().split('\n').pop());
	return { ...row, victimNs };
}

console.log(`syscall-server: events of ${calls} uprobe hits through ring_buffer__poll / perf_buffer__poll`);
let libs;
try {
	libs = { server: syscallServerPath(), agent: agentPath() };
} catch (e) {
	console.log(`  skipped: ${e.message.split('\n')[0]}`);
	process.exit(0);
}
const dir = mkdtempSync(join(tmpdir(), 'bpftime-bench-events-'));
const segment = `bpftime_bench_events_${process.pid}`;
let failed = false;
try {
	let exe;
	try {
		exe = build(dir);
	} catch (e) {
		console.log(`  skipped: the tool does not build: ${String(e.stderr ?? e.message).split('\n')[0]}`);
	}
	if (exe) {
		const common = { BPFTIME_GLOBAL_SHM_NAME: segment, SPDLOG_LEVEL: 'warn' };
		const served = {
			...common,
			LD_PRELOAD: libs.server,
			BPFTIME_SHM_MEMORY_MB: '256',
			BPFTIME_PERF_BUFFER_PAGES: '4096',
		};
		const agent = { ...common, LD_PRELOAD: libs.agent };
		console.log(
			`  ${pad('buffer', 7)} ${pad('variant', 8)} ${padL('events', 7)} ${padL('lost', 5)} ${padL('victim ms', 10)} ${padL('events/s', 11)}`,
		);
		for (const mode of ['ring', 'perf']) {
			const rows = { kernel: [], bpftime: [] };
			for (let r = 0; r < rounds; r++) {
				for (const [name, toolEnv, victimEnv] of [
					['kernel', {}, {}],
					['bpftime', served, agent],
				]) {
					rmSync(`/dev/shm/${segment}`, { force: true });
					const row = await once(exe, mode, toolEnv, victimEnv);
					if (row.error) {
						console.log(`  ${pad(mode, 7)} ${pad(name, 8)} failed: ${row.error}`);
						failed = failed || name === 'bpftime';
						continue;
					}
					rows[name].push(row);
				}
			}
			const rates = {};
			for (const name of ['kernel', 'bpftime']) {
				const rs = rows[name];
				if (!rs.length) continue;
				rates[name] = median(rs.map((x) => x.events / (x.ns / 1e9)));
				console.log(
					`  ${pad(mode, 7)} ${pad(name, 8)} ${padL(median(rs.map((x) => x.events)), 7)} ${padL(median(rs.map((x) => x.lost)), 5)} ${padL((median(rs.map((x) => x.victimNs)) / 1e6).toFixed(1), 10)} ${padL(rates[name].toFixed(0), 11)}`,
				);
			}
			if (rates.kernel && rates.bpftime)
				console.log(`  ${pad(mode, 7)} bpftime / kernel events/s: ${(rates.bpftime / rates.kernel).toFixed(1)}x`);
		}
	}
} finally {
	rmSync(dir, { recursive: true, force: true });
	rmSync(`/dev/shm/${segment}`, { force: true });
}
process.exit(failed ? 1 : 0);
