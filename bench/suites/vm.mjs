// The VM benchmark: programs compiled from C (bench/programs) run by
// bpftime's interpreter, its JIT, its JIT with bounds checks, its LLVM
// backend (JIT and AOT object), and the kernel's JIT, against the same C
// compiled natively, all in this run.
//
// Each program is built three ways into a temporary directory:
//   <name>.bpf.o   clang-19 -target bpf -mcpu=v4 -O2 (the one object that
//                  bpftime and the kernel both run); @bpftime/loader opens
//                  it and writes <name>.bpf.txt beside it, the program and
//                  its global data as vm_bench reads them (bench_object.hpp)
//   <name>.so      gcc -O2 -fno-tree-vectorize -fno-tree-loop-distribute-patterns:
//                  the baseline (eBPF has no vector instructions and cannot
//                  call memset/memcpy, so neither may the native code)
//   <name>.O2.so   gcc -O2, for reference
// then bench/build/vm_bench (bench/native, built by run.mjs) runs each
// (program, variant) in its own process, pinned to the CPU that was idler
// when the suite started, and prints one JSON line; this file prints one
// table per program and checks that every variant computed the same result.
//
// Goals (the issue's): the JIT within 1.2x of the baseline on every compute
// loop and no slower than the kernel's JIT on any; the interpreter under
// 1.5 ns per executed eBPF instruction. The JIT's ratio to native code is
// judged as measured inside one process, JIT and native rounds alternated,
// because this kind of machine runs whole stretches of seconds at one of two
// speeds about 2x apart; the table's "vs native" column, process against
// process, is printed as well.
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { release, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { BpfObject } from '@bpftime/loader';
import { vmBenchPath } from '../build-native.mjs';
import { idlerCpu, measureProcess, pad, padL, printUnmeasured, runTool } from '../lib.mjs';

const benchDir = fileURLToPath(new URL('..', import.meta.url));
const programsDir = join(benchDir, 'programs');
const repoDir = join(benchDir, '..');

const clang = 'clang-19';
const cc = 'gcc';
const fairFlags = ['-O2', '-fno-tree-vectorize', '-fno-tree-loop-distribute-patterns'];
const rounds = 61;
const roundMs = 5;
// Each variant runs in `processes` processes and the median of their
// medians is kept. How fast a small loop runs here depends on where the
// process is placed in memory: now and then a whole process runs about
// twice as slow (native code as much as JIT code), which no number of
// rounds inside one process averages out. A spread above `maxSpread` (half
// the interquartile range over the median) means other work disturbed it.
const processes = 3;
const maxSpread = 0.03;

// What each program is, in the table's title; compute loops are held to the
// 1.2x goal, the helper-call program is not a compute loop.
const programs = {
	checksum: { what: 'byte-loop checksum over 4 KiB', compute: true },
	fnv1a: { what: 'FNV-1a over 4 KiB', compute: true },
	sieve: { what: 'prime sieve below 8192', compute: true },
	memcpy: { what: 'memcpy-like loop, 4 KiB as 64-bit words', compute: true },
	helpers: { what: '256 calls of bpf_get_prandom_u32', compute: false },
};

const variants = [
	['native', 'native -O2 -fno-tree-vectorize … (baseline)'],
	['native-O2', 'native -O2'],
	['interpreter', 'interpreter'],
	['jit', 'JIT'],
	['jit-bounds', 'JIT + bounds checks, data as ctx'],
	['jit-bounds-region', 'JIT + bounds checks, data as a region'],
	['llvm-jit', 'LLVM JIT (ORC LLJIT, O3)'],
	['llvm-aot', 'LLVM AOT object, loaded without LLVM'],
	['kernel', "kernel's JIT (BPF_PROG_TEST_RUN)"],
];

// The LLVM backend's plugin, where @bpftime/vm built it (llvm-19-dev);
// vm_bench links the vm core statically and is told where it is.
const llvmPlugin = join(
	dirname(createRequire(import.meta.url).resolve('@bpftime/vm/package.json')),
	'build/Release/libbpftime_vm_llvm.so',
);
const llvmEnv = { BPFTIME_VM_LLVM_LIB: llvmPlugin };

function skip(why) {
	console.log(`vm: skipped: ${why}`);
	process.exit(0);
}

// The kernel runs -mcpu=v4 objects since Linux 6.6 (sign-extending loads,
// sdiv/smod, bswap, gotol); an older kernel gets a -mcpu=v3 build.
function kernelTakesV4() {
	const [major, minor] = release().split('.').map(Number);
	return major > 6 || (major === 6 && minor >= 6);
}

function vmSources() {
	const rev = runTool('git', ['-C', repoDir, 'rev-parse', '--short', 'HEAD']);
	const dirty = runTool('git', ['-C', repoDir, 'status', '--porcelain', '--', 'packages/vm/native']);
	if (!rev.ok) return 'packages/vm (not a git checkout)';
	return `packages/vm at ${rev.out}${dirty.ok && dirty.out ? ' + uncommitted changes in packages/vm/native' : ''}`;
}

function fmtNs(ns) {
	if (ns >= 1e6) return `${(ns / 1e6).toFixed(2)} ms`;
	if (ns >= 1e4) return `${(ns / 1e3).toFixed(2)} µs`;
	return `${ns.toFixed(1)} ns`;
}

const BPF_PSEUDO_MAP_VALUE = 2;
const INSN_SIZE = 8;

// Opens <stem>.bpf.o with @bpftime/loader and writes <stem>.bpf.txt for
// vm_bench (format: bench/native/bench_object.hpp): the instructions of
// bench_run with each global-data lddw as BPF_PSEUDO_MAP_VALUE, imm = the
// index of its data section in the file and next_imm = the offset in it
// (the loader leaves the map's index in imm); then the data sections, their
// initial bytes and their variables. Throws for a reference to a map that is
// not global data (bench programs use none).
function writeBenchObject(stem) {
	const obj = BpfObject.open(`${stem}.bpf.o`);
	const prog = obj.program('bench_run');
	const dataIndex = new Map();
	const lines = ['bpftime-bench-object 1'];
	const data = [];
	obj.maps.forEach((m, i) => {
		if (m.contents === undefined) return;
		if (/\s/.test(m.section)) throw new Error(`${stem}.bpf.o: section name '${m.section}' has white space`);
		dataIndex.set(i, data.length);
		data.push(m);
	});
	const insns = Buffer.from(prog.instructions);
	for (const ref of prog.mapReferences) {
		const index = dataIndex.get(ref.mapIndex);
		if (ref.kind !== 'value' || index === undefined)
			throw new Error(`${stem}.bpf.o: insn ${ref.insnIdx} refers to map '${ref.map}', not to global data`);
		const at = ref.insnIdx * INSN_SIZE;
		insns[at + 1] = (insns[at + 1] & 0x0f) | (BPF_PSEUDO_MAP_VALUE << 4);
		insns.writeInt32LE(index, at + 4);
		insns.writeInt32LE(ref.offset, at + INSN_SIZE + 4);
	}
	lines.push(`program ${prog.name} ${insns.length / INSN_SIZE}`);
	for (let at = 0; at < insns.length; at += INSN_SIZE)
		lines.push(`insn ${insns.subarray(at, at + INSN_SIZE).toString('hex')}`);
	for (const m of data) {
		const zero = m.contents.every((b) => b === 0);
		lines.push(`data ${m.section} ${m.contents.length} ${zero ? '-' : m.contents.toString('hex')}`);
	}
	data.forEach((m, index) => {
		for (const v of m.variables) lines.push(`symbol ${v.name} ${index} ${v.offset} ${v.size}`);
	});
	writeFileSync(`${stem}.bpf.txt`, `${lines.join('\n')}\n`);
}

const fmtUs = (ns) => `${(ns / 1e3).toFixed(1)} µs`;

// ---------------------------------------------------------------------------

if (runTool(clang, ['--version']).ok === false) skip(`${clang} not found (needed to build the programs for BPF)`);
if (runTool(cc, ['--version']).ok === false) skip(`${cc} not found (needed for the native baseline)`);
if (!existsSync(vmBenchPath)) {
	console.log(`vm: ${vmBenchPath} is not built (see the build error above)`);
	process.exit(1);
}

const work = mkdtempSync(join(tmpdir(), 'bpftime-vm-bench-'));
let failed = false;
try {
	const v4 = kernelTakesV4();
	for (const name of Object.keys(programs)) {
		const src = join(programsDir, `${name}.c`);
		const stem = join(work, name);
		const builds = [
			// -fno-builtin: a loop clang would turn into memset/memcpy stays a
			// loop (a BPF program cannot call them), as the native flags do.
			[clang, ['-target', 'bpf', '-mcpu=v4', '-O2', '-g', '-fno-builtin', '-c', src, '-o', `${stem}.bpf.o`]],
			[cc, [...fairFlags, '-fPIC', '-shared', src, '-o', `${stem}.so`]],
			[cc, ['-O2', '-fPIC', '-shared', src, '-o', `${stem}.O2.so`]],
		];
		if (!v4) {
			builds.push([
				clang,
				['-target', 'bpf', '-mcpu=v3', '-O2', '-g', '-fno-builtin', '-c', src, '-o', `${stem}.v3.bpf.o`],
			]);
		}
		for (const [cmd, args] of builds) {
			const r = runTool(cmd, args);
			if (!r.ok) {
				console.log(`vm: cannot build ${name}: ${cmd} ${args.join(' ')}\n${r.out}`);
				process.exit(1);
			}
		}
		for (const s of v4 ? [stem] : [stem, `${stem}.v3`]) {
			try {
				writeBenchObject(s);
			} catch (e) {
				console.log(`vm: cannot read ${s}.bpf.o with @bpftime/loader: ${e.message}`);
				process.exit(1);
			}
		}
	}

	console.log(`vm: eBPF programs from C (bench/programs), ${clang} -mcpu=v4 -O2; native: ${cc} -O2 with and without`);
	console.log(`    ${fairFlags.slice(1).join(' ')}; ${vmSources()}`);
	console.log(
		`    each variant in its own process, pinned to the idler core; median of ${rounds} rounds of ~${roundMs} ms;`,
	);
	console.log(
		`    ± is half the interquartile range; each variant in ${processes} processes, the median of their medians shown`,
	);
	if (!v4) console.log(`    the kernel (Linux ${release()}) gets the same C built with -mcpu=v3`);
	console.log();

	const summary = [];
	for (const [name, info] of Object.entries(programs)) {
		const stem = join(work, name);
		const rows = {};
		for (const [variant] of variants) {
			const runs = [];
			let error;
			for (let i = 0; i < processes && !error; i++) {
				const { cpu } = idlerCpu(100);
				const args = [variant === 'kernel' && !v4 ? `${stem}.v3` : stem, variant];
				args.push('--rounds', String(rounds), '--round-ms', String(roundMs), '--cpu', String(cpu));
				if (variant.startsWith('llvm') && !existsSync(llvmPlugin)) {
					runs.push({ variant, skipped: `${llvmPlugin} is not built (llvm-19-dev)` });
					break;
				}
				const row = measureProcess(vmBenchPath, args, llvmEnv);
				if (row.error) {
					error = row;
					failed = true;
					break;
				}
				runs.push(row);
				if (row.skipped) break;
			}
			if (error) {
				rows[variant] = error;
				continue;
			}
			runs.sort((a, b) => (a.ns ?? 0) - (b.ns ?? 0));
			const mid = runs[Math.floor((runs.length - 1) / 2)];
			const ns = runs.map((x) => x.ns).filter((x) => x);
			mid.perProcess = ns.length > 1 && ns[ns.length - 1] / ns[0] > 1.2 ? ns : undefined;
			const paired = runs
				.map((x) => x.paired_ratio)
				.filter((x) => x)
				.sort((a, b) => a - b);
			mid.paired = paired.length ? paired[Math.floor((paired.length - 1) / 2)] : undefined;
			const pairedJit = runs
				.map((x) => x.paired_jit_ratio)
				.filter((x) => x)
				.sort((a, b) => a - b);
			mid.pairedJit = pairedJit.length ? pairedJit[Math.floor((pairedJit.length - 1) / 2)] : undefined;
			rows[variant] = mid;
		}

		const base = rows.native;
		const insns = rows.interpreter?.insns ?? rows.jit?.insns;
		console.log(`vm: ${name}: ${info.what}${insns ? `, ${insns} eBPF instructions per run` : ''}`);
		console.log(
			`  ${pad('variant', 44)} ${padL('per run', 10)} ${padL('±', 6)} ${padL('vs native', 10)}  ${padL('ns/insn', 7)}  notes`,
		);
		// Results must agree, except the kernel's where the program mixes in
		// bpf_get_prandom_u32: the kernel's generator has its own state.
		const random = readFileSync(join(programsDir, `${name}.c`), 'utf8').includes('bench_get_prandom_u32');
		const expected = base?.r0;
		for (const [variant, label] of variants) {
			const row = rows[variant];
			if (!row) continue;
			if (printUnmeasured(row, label, 44)) continue;
			const spread = `${(row.spread * 100).toFixed(1)}%`;
			const ratio = base?.ns ? `${(row.ns / base.ns).toFixed(2)}x` : '';
			const perInsn = variant === 'interpreter' && row.insns ? (row.ns / row.insns).toFixed(2) : '';
			const notes = [];
			if (row.paired) notes.push(`${row.paired.toFixed(2)}x native in the same process`);
			if (row.pairedJit) notes.push(`${row.pairedJit.toFixed(2)}x the JIT in the same process`);
			if (row.perProcess) notes.push(`per process: ${row.perProcess.map(fmtNs).join(', ')}`);
			if (row.compile_ns !== undefined) {
				notes.push(`compile ${fmtUs(row.compile_ns)} (first in the process ${fmtUs(row.compile_ns_first)})`);
			}
			if (variant === 'kernel')
				notes.push(`${row.code_bytes} bytes of x86, ${row.xlated_insns} insns after the verifier`);
			if (expected !== undefined && row.r0 !== expected && !(variant === 'kernel' && random)) {
				notes.push(`RESULT ${row.r0} != native ${expected}`);
				failed = true;
			}
			console.log(
				`  ${pad(label, 44)} ${padL(fmtNs(row.ns), 10)} ${padL(spread, 6)} ${padL(ratio, 10)}  ${padL(perInsn, 7)}  ${notes.join('; ')}`,
			);
		}
		console.log();
		summary.push({ name, info, rows });
	}

	// The goals, program by program.
	console.log('vm: goals');
	const verdict = (ok) => (ok ? 'met' : 'MISSED');
	for (const { name, info, rows } of summary) {
		const { native, jit, interpreter, kernel } = rows;
		if (!native?.ns || !jit?.ns) continue;
		const parts = [];
		// The goal is judged on the ratio measured in one process, JIT and
		// native rounds alternated (vm_bench.cpp, paired_ratio): processes
		// measured apart can land in the machine's two speeds.
		const r = jit.paired ?? jit.ns / native.ns;
		const how = jit.paired ? ' in the same process' : '';
		parts.push(
			info.compute
				? `JIT ${r.toFixed(2)}x native${how} (≤ 1.20x: ${verdict(r <= 1.2)})`
				: `JIT ${r.toFixed(2)}x native${how}`,
		);
		if (kernel?.ns) {
			// The two columns run under different harnesses (vm::exec in a loop,
			// the kernel's test-run loop) with the code at different
			// addresses: a difference inside both runs' quartiles, or under
			// the 2% by which the same variant moves from one run of this
			// suite to the next on this machine, is not a difference.
			const k = jit.ns / kernel.ns;
			const noise = Math.max(0.02, jit.spread + kernel.spread);
			const state = k <= 1 ? 'met' : k <= 1 + noise ? 'met within noise' : 'MISSED';
			parts.push(`${k.toFixed(2)}x kernel JIT (≤ 1: ${state})`);
		} else if (kernel?.skipped) {
			parts.push('kernel JIT skipped');
		}
		if (interpreter?.insns) {
			const ni = interpreter.ns / interpreter.insns;
			parts.push(`interpreter ${ni.toFixed(2)} ns/insn (< 1.5: ${verdict(ni < 1.5)})`);
		}
		// The LLVM backend (issue #23): never slower than our JIT on a
		// compute loop, within 1.05x of the baseline; its compile time
		// against the JIT's.
		for (const [variant, label] of [
			['llvm-jit', 'LLVM JIT'],
			['llvm-aot', 'LLVM AOT'],
		]) {
			const l = rows[variant];
			if (!l?.ns) continue;
			const rl = l.paired ?? l.ns / native.ns;
			// Both judged in one process, rounds alternated, as the JIT's
			// own goal is: processes measured apart land in the
			// machine's two speeds.
			const vsJit = l.pairedJit ?? l.ns / jit.ns;
			const text = `${label} ${rl.toFixed(2)}x native, ${vsJit.toFixed(2)}x our JIT${l.paired ? ' (same process)' : ''}`;
			parts.push(
				info.compute ? `${text} (≤ 1.05x native: ${verdict(rl <= 1.05)}; ≤ 1x JIT: ${verdict(vsJit <= 1.02)})` : text,
			);
			if (l.compile_ns && jit.compile_ns)
				parts.push(
					`${label} compiles in ${fmtUs(l.compile_ns)}, ${(l.compile_ns / jit.compile_ns).toFixed(0)}x the JIT's ${fmtUs(jit.compile_ns)}`,
				);
		}
		const noisy = [native, jit, interpreter, kernel].some((row) => row?.spread > maxSpread);
		if (noisy) parts.push(`a run spread above ±${maxSpread * 100}%: take with care`);
		console.log(`  ${pad(name, 9)} ${parts.join('; ')}`);
	}
} finally {
	rmSync(work, { recursive: true, force: true });
}
process.exit(failed ? 1 : 0);
