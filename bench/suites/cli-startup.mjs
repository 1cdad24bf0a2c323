// The CLI's start-up: wall time from spawn to exit of `bpftime --help`,
// `bpftime list` (or `map list` where there is no `list`) on a registry that
// holds the malloc example, and `bpftime doctor`, against `node -e 0`
// started the same way (the floor: Node's own start-up). Each run is a new
// process; the variants alternate within each pass, so a slow spell of the
// machine hits them alike.
//
//   pnpm bench cli-startup     (after `pnpm turbo run build --filter @bpftime/cli...`)
//
// Goal (issue 21): --help and list under 150 ms.
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Segment } from '@bpftime/shm';

const cli = fileURLToPath(new URL('../../packages/cli/dist/cli.js', import.meta.url));
const example = fileURLToPath(new URL('../../examples/malloc/malloc.bpf.c', import.meta.url));
const PASSES = 21;
// USER_HZ: the unit of /proc/<pid>/stat's times, 100 on every Linux ABI.
const TICKS_PER_SECOND = 100;

/**
 * CPU time (user + system, in clock ticks) of this process's waited-for
 * children: cutime and cstime of /proc/self/stat. Wall time swings with
 * what else the machine runs; CPU time much less.
 */
function childCpuTicks() {
	const stat = readFileSync('/proc/self/stat', 'utf8');
	const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
	// Fields 16 and 17 of proc(5), counted from pid = 1; the slice starts at field 3.
	return Number(fields[13]) + Number(fields[14]);
}
const segment = `bpftime_bench_cli_${process.pid}`;

const dir = mkdtempSync(join(tmpdir(), 'bpftime-cli-bench-'));
const object = join(dir, 'malloc.bpf.o');
try {
	execFileSync('clang', [
		'-target',
		'bpf',
		'-O2',
		'-g',
		'-D__TARGET_ARCH_x86',
		'-I/usr/include/x86_64-linux-gnu',
		'-c',
		example,
		'-o',
		object,
	]);
	execFileSync(process.execPath, [cli, '--segment', segment, 'load', '--no-attach', object], { stdio: 'ignore' });
	const help = spawnSync(process.execPath, [cli, 'help', 'list'], { encoding: 'utf8' });
	const listArgs = help.status === 0 ? ['list'] : ['map', 'list'];

	const variants = [
		['node -e 0', ['-e', '0']],
		['bpftime --help', [cli, '--help']],
		[`bpftime ${listArgs.join(' ')}`, [cli, '--segment', segment, ...listArgs]],
		['bpftime doctor', [cli, 'doctor']],
	];
	const samples = variants.map(() => []);
	const cpuTicks = variants.map(() => 0);
	for (let pass = 0; pass < PASSES; pass++) {
		variants.forEach(([name, args], i) => {
			const c0 = childCpuTicks();
			const t0 = process.hrtime.bigint();
			const r = spawnSync(process.execPath, args, { stdio: 'ignore' });
			const ms = Number(process.hrtime.bigint() - t0) / 1e6;
			cpuTicks[i] += childCpuTicks() - c0;
			if (r.status !== 0) throw new Error(`${name}: exited ${r.status ?? r.signal}`);
			samples[i].push(ms);
		});
	}
	const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
	const base = median(samples[0]);
	const cpuMs = (i) => (cpuTicks[i] * 1000) / TICKS_PER_SECOND / PASSES;
	console.log(
		`cli start-up: spawn to exit (wall, median of ${PASSES} alternating passes) and CPU time (user + system, mean)`,
	);
	const width = Math.max(...variants.map(([n]) => n.length));
	variants.forEach(([name], i) => {
		const ms = median(samples[i]);
		const rel = i === 0 ? 'baseline' : `${(ms / base).toFixed(2)}x baseline, +${(ms - base).toFixed(1)} ms`;
		const cpu = `${cpuMs(i).toFixed(0).padStart(4)} ms CPU${i === 0 ? '' : ` (+${(cpuMs(i) - cpuMs(0)).toFixed(0)})`}`;
		console.log(`  ${name.padEnd(width)}  ${ms.toFixed(1).padStart(7)} ms  ${cpu}  ${rel}`);
	});
} finally {
	if (Segment.exists({ name: segment })) Segment.remove({ name: segment });
	rmSync(dir, { recursive: true, force: true });
}
