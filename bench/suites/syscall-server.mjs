// The syscall-server benchmark: bpf(BPF_MAP_LOOKUP_ELEM) and
// bpf(BPF_MAP_UPDATE_ELEM) from a tool, answered by
// libbpftime-syscall-server.so from the registry, against the same calls
// answered by the kernel, in this run.
//
//   baseline   bench/build/maps_kernel_bench as it is: one bpf() system call
//              per operation on a kernel map (array and hash, 1024 entries,
//              4-byte keys, 8-byte values, keys spread over the map)
//   bpftime    the same executable, unchanged, started with the
//              syscall-server preloaded (LD_PRELOAD), so its syscall(__NR_bpf)
//              calls never enter the kernel
//
// The two alternate, each in its own process, `rounds` times per shape (the
// machine's speed varies 2x for seconds at a time); the medians of the
// per-process medians are printed with the ratio to the kernel.
//
// Then what a libbpf skeleton tool does at start and exit
// (bench/programs/syscall-server/ten_loader.c): open + load of an object
// with 10 maps and 10 programs, attach of the 10 as uprobes, destroy; the
// kernel against the same executable under the server, alternated.
//
// Goals (issue #19): under 50 ns per lookup and update through the server;
// a skeleton's open + load + attach no slower than the kernel's.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { syscallServerPath } from '@bpftime/syscall-server';
import { buildDir } from '../build-native.mjs';
import { pad, padL, runTool } from '../lib.mjs';

const bench = `${buildDir}/maps_kernel_bench`;
const rounds = 7;
const ops = 300_000;
const shapes = [
	['array', 1024, 'array, 1024 entries'],
	['hash', 1024, 'hash, 1024 entries'],
];

function median(xs) {
	const s = [...xs].sort((a, b) => a - b);
	return s[Math.floor(s.length / 2)];
}

function once(type, entries, env) {
	const r = runTool(bench, [type, String(entries), '8', String(ops)], env);
	if (!r.ok) return { error: r.out.split('\n').slice(-3).join(' ') };
	return JSON.parse(r.stdout.trim().split('\n').pop());
}

console.log('syscall-server: ns per bpf() map call from a tool, kernel vs libbpftime-syscall-server.so');
if (!existsSync(bench)) {
	console.log(`  skipped: ${bench} is not built (see the build error above)`);
	process.exit(0);
}
let lib;
try {
	lib = syscallServerPath();
} catch (e) {
	console.log(`  skipped: ${e.message.split('\n')[0]}`);
	process.exit(0);
}
const segment = `bpftime_bench_sysserver_${process.pid}`;
const served = { LD_PRELOAD: lib, BPFTIME_GLOBAL_SHM_NAME: segment, BPFTIME_SHM_MEMORY_MB: '64' };
console.log(`  ${pad('map', 22)} ${pad('op', 7)} ${padL('kernel', 9)} ${padL('bpftime', 9)}  ratio`);
let failed = false;
try {
	for (const [type, entries, what] of shapes) {
		const kernel = { lookup_ns: [], update_ns: [] };
		const ours = { lookup_ns: [], update_ns: [] };
		let skip;
		for (let r = 0; r < rounds && !skip; r++) {
			const k = once(type, entries, {});
			if (k.skip || k.error) {
				skip = `kernel: ${k.skip ?? k.error}`;
				break;
			}
			const b = once(type, entries, served);
			if (b.skip || b.error) {
				skip = `bpftime: ${b.skip ?? b.error}`;
				failed = failed || Boolean(b.error);
				break;
			}
			for (const op of ['lookup_ns', 'update_ns']) {
				kernel[op].push(k[op]);
				ours[op].push(b[op]);
			}
		}
		if (skip) {
			console.log(`  ${pad(what, 22)} skipped: ${skip}`);
			continue;
		}
		for (const op of ['lookup', 'update']) {
			const kn = median(kernel[`${op}_ns`]);
			const bn = median(ours[`${op}_ns`]);
			console.log(
				`  ${pad(what, 22)} ${pad(op, 7)} ${padL(kn.toFixed(1), 9)} ${padL(bn.toFixed(1), 9)}  ${(bn / kn).toFixed(3)}x` +
					`  (bpftime per process: ${ours[`${op}_ns`].map((x) => x.toFixed(0)).join(' ')})`,
			);
		}
	}
} finally {
	rmSync(`/dev/shm/${segment}`, { force: true });
}
console.log('  goal: bpftime under 50 ns per lookup and update');

// --- a skeleton's start and exit ---------------------------------------------

function buildTen(dir) {
	const here = fileURLToPath(new URL('../programs/syscall-server/', import.meta.url));
	const object = join(dir, 'ten.bpf.o');
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
			join(here, 'ten.bpf.c'),
			'-o',
			object,
		],
		{ stdio: 'pipe' },
	);
	writeFileSync(join(dir, 'ten.skel.h'), execFileSync('bpftool', ['gen', 'skeleton', object, 'name', 'ten_bpf']));
	const exe = join(dir, 'ten_loader');
	execFileSync('cc', ['-O2', `-I${dir}`, join(here, 'ten_loader.c'), '-lbpf', '-o', exe], { stdio: 'pipe' });
	return exe;
}

console.log('\nsyscall-server: a libbpf skeleton with 10 maps and 10 uprobe programs, ms (medians)');
const dir = mkdtempSync(join(tmpdir(), 'bpftime-bench-sysserver-'));
try {
	let exe;
	try {
		exe = buildTen(dir);
	} catch (e) {
		console.log(
			`  skipped: the loader does not build (clang, bpftool, libbpf-dev?): ${String(e.stderr ?? e.message).split('\n')[0]}`,
		);
	}
	if (exe) {
		const kernel = { load_ns: [], attach_ns: [], destroy_ns: [] };
		const ours = { load_ns: [], attach_ns: [], destroy_ns: [] };
		let skip;
		for (let r = 0; r < 3 && !skip; r++) {
			// The kernel's destroy waits for RCU grace periods (about 1 s a
			// round here): 3 rounds a process.
			const k = runTool(exe, ['3']);
			if (!k.ok) {
				skip = `kernel: ${k.out.split('\n').pop()}`;
				break;
			}
			const b = runTool(exe, ['9'], served);
			if (!b.ok) {
				skip = `bpftime: ${b.out.split('\n').pop()}`;
				failed = true;
				break;
			}
			const kj = JSON.parse(k.stdout.trim().split('\n').pop());
			const bj = JSON.parse(b.stdout.trim().split('\n').pop());
			for (const f of Object.keys(kernel)) {
				kernel[f].push(kj[f]);
				ours[f].push(bj[f]);
			}
		}
		if (skip) console.log(`  skipped: ${skip}`);
		else {
			console.log(`  ${pad('phase', 22)} ${padL('kernel', 9)} ${padL('bpftime', 9)}  ratio`);
			for (const [f, what] of [
				['load_ns', 'open + load'],
				['attach_ns', 'attach 10 uprobes'],
				['destroy_ns', 'destroy'],
			]) {
				const kn = median(kernel[f]) / 1e6;
				const bn = median(ours[f]) / 1e6;
				console.log(
					`  ${pad(what, 22)} ${padL(kn.toFixed(3), 9)} ${padL(bn.toFixed(3), 9)}  ${(bn / kn).toPrecision(3)}x`,
				);
			}
			console.log('  goal: open + load + attach no slower than the kernel');
		}
	}
} finally {
	rmSync(dir, { recursive: true, force: true });
	rmSync(`/dev/shm/${segment}`, { force: true });
}
process.exit(failed ? 1 : 0);
