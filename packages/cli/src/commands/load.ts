// bpftime load <prog.bpf.o>: loads an object into the registry (creating the
// segment when needed) and attaches the programs whose SEC names say where.
// bpftime load <command> [args...]: runs a loader tool (a libbpf program,
// bpftool) under the syscall-server, so that what it loads lands in the
// registry.
import { closeSync, existsSync, openSync, readSync } from 'node:fs';
import { foreground } from '../child.js';
import { type Command, takeOptions, UsageError } from '../command.js';
import { keepSources } from '../line-info.js';
import { registryModules, segmentOptions } from '../registry.js';
import { requireBackend, VM_OPTION_SPEC, vmEnv, vmOptions } from '../vm-options.js';

function parsePid(text: string): number {
	if (!/^\d+$/.test(text) || Number(text) < 1 || Number(text) > 0x3fffffff) {
		throw new UsageError(`--pid: expected a process id but received '${text}'`, 'load');
	}
	return Number(text);
}

const EM_BPF = 247;

/**
 * Whether `file` is an eBPF object for the TypeScript loader: an ELF file
 * for EM_BPF, or, when there is no such file, a name ending in `.o` (so the
 * loader names the missing file). Anything else is a command to run.
 */
function isBpfObject(file: string): boolean {
	if (!existsSync(file)) return file.endsWith('.o');
	const head = Buffer.alloc(20);
	let fd: number | undefined;
	try {
		fd = openSync(file, 'r');
		if (readSync(fd, head, 0, 20, 0) < 20) return false;
	} catch {
		return file.endsWith('.o');
	} finally {
		if (fd !== undefined) closeSync(fd);
	}
	return head.readUInt32BE(0) === 0x7f454c46 && head.readUInt16LE(18) === EM_BPF;
}

export const load: Command = {
	name: 'load',
	overview: [
		['load <prog.bpf.o>', 'load an eBPF object into the registry and attach\nits uprobes (uprobe/uretprobe SEC names)'],
		[
			'load [--keep] <command> [args...]',
			"run a libbpf-based tool or bpftool with\nlibbpftime-syscall-server.so preloaded; exits\nwith the command's exit status",
		],
	],
	usage: `Usage: bpftime load <prog.bpf.o> [--binary <path>] [--pid <pid>] [--no-attach] [vm options]
       bpftime load [--keep] [vm options] <command> [args...]

Creates the registry when the segment does not exist (BPFTIME_SHM_MEMORY_MB
sizes it), loads the object's maps and programs into it, and attaches every
program whose SEC name gives an attach point (SEC("uprobe/libc.so.6:malloc")).
What it creates stays in the registry after the command exits; targets
started with \`bpftime start\` attach it, also when they are already running.

Options:
  --binary <path>  the binary of uprobe sections that name none (SEC("uprobe"))
  --pid <pid>      attach for this process only (default: every process)
  --no-attach      load only

The second form runs a loader tool (a program built on libbpf, bpftool ...)
with libbpftime-syscall-server.so in LD_PRELOAD: its bpf() and uprobe
perf_event_open() calls create maps, programs and links in the registry
instead of the kernel, and targets started with \`bpftime start\` run them.
Standard input, output and error are the command's; bpftime exits with its
exit status (128 + the signal number when a signal ended it). What the tool
leaves open when it exits is released, as the kernel does, unless --keep
is given.

Options of the second form:
  --keep           leave everything the tool creates in the registry after
                   it exits (BPFTIME_KEEP_OBJECTS=1)

VM options, of both forms:
  --vm <backend>   interpreter, jit or llvm: an object's programs are
                   verified and compiled on it here, so that a program the
                   backend refuses fails the load; a command gets
                   BPFTIME_VM_NAME. The backend that runs a program is the
                   target's: \`bpftime start --vm\`
  --shm-size <MiB> size of the segment when this load creates it
                   (BPFTIME_SHM_MEMORY_MB; 64, 64M, 1G)
  --verbose        say what is done (each program's backend and compile
                   time, the segment's size) on stderr; a command gets
                   SPDLOG_LEVEL=debug

Example:
  bpftime load malloc.bpf.o --vm interpreter
  bpftime load --keep ./uprobe-counter ./victim
`,
	ownsHelp: true,
	async run(args, { segment, io }) {
		const first = takeOptions(
			args,
			{
				'--binary': 'value',
				'--pid': 'value',
				'--no-attach': 'flag',
				'--keep': 'flag',
				'--help': 'flag',
				'-h': 'flag',
				...VM_OPTION_SPEC,
			},
			'load',
			true,
		);
		if (first.options['--help'] === true || first.options['-h'] === true) {
			io.out(load.usage);
			return 0;
		}
		const head = first.rest[0];
		if (head !== undefined && !isBpfObject(head)) {
			for (const o of ['--binary', '--pid', '--no-attach'])
				if (o in first.options) throw new UsageError(`load: ${o} is for object files, not commands`, 'load');
			const [command, ...commandArgs] = first.rest as [string, ...string[]];
			const vm = vmOptions(first.options, 'load');
			await requireBackend(vm.backend);
			const { spawnWithSyscallServer } = await import('@bpftime/syscall-server');
			const child = await spawnWithSyscallServer(command, commandArgs, {
				stdio: 'inherit',
				env: vmEnv(vm),
				keepObjects: first.options['--keep'] === true,
				...(segment ? { segment } : {}),
			});
			return foreground(child);
		}
		if (first.options['--keep'] === true)
			throw new UsageError('load: --keep is for commands; objects loaded from a file always stay', 'load');
		const { options, rest } = takeOptions(
			args,
			{
				'--binary': 'value',
				'--pid': 'value',
				'--no-attach': 'flag',
				'--help': 'flag',
				'-h': 'flag',
				...VM_OPTION_SPEC,
			},
			'load',
			false,
		);
		if (options['--help'] === true || options['-h'] === true) {
			io.out(load.usage);
			return 0;
		}
		if (rest.length === 0) throw new UsageError('load: missing the object file', 'load');
		if (rest.length > 1)
			throw new UsageError(`load: one object file at a time, received ${rest.length}: ${rest.join(' ')}`, 'load');
		const file = rest[0] as string;
		const pid = typeof options['--pid'] === 'string' ? parsePid(options['--pid']) : undefined;
		const binary = typeof options['--binary'] === 'string' ? options['--binary'] : undefined;
		const vm = vmOptions(options, 'load');
		await requireBackend(vm.backend);
		const [{ BpfObject }, { Registry, Segment }] = await Promise.all([import('@bpftime/loader'), registryModules()]);
		const options_ = { ...segmentOptions(segment), ...(vm.shmSizeMb === undefined ? {} : { sizeMb: vm.shmSizeMb }) };
		// The segment first: a bad name gets the reason every command gives.
		let existed = true;
		try {
			Segment.open(options_).close();
		} catch (e) {
			if ((e as { code?: string }).code !== 'ENOENT') throw e;
			existed = false;
		}
		const obj = BpfObject.open(file);
		const seg = Segment.openOrCreate(options_);
		let ok = false;
		try {
			const reg = Registry.openOrCreate(seg);
			// Load and attach are one transaction: killed in between, this
			// process leaves nothing for the next opener but a rollback.
			reg.beginLoad();
			try {
				const loaded = await obj.load(reg);
				if (vm.backend !== undefined || vm.verbose) {
					// Proves here, once, that every program verifies and compiles on the backend the
					// targets will be started with (`bpftime start --vm`), instead of a log line in each.
					for (const p of loaded.programs.values()) {
						try {
							const r = reg.prog(p.id).instantiate(vm.backend === undefined ? {} : { backend: vm.backend });
							if (vm.verbose)
								io.err(
									`bpftime: prog '${p.name}': ${r.compileTimeNs > 0n ? `verified and compiled on ${r.backend} in ${Number(r.compileTimeNs / 1000n)} µs` : `verified for ${r.backend}`}\n`,
								);
						} catch (e) {
							obj.close();
							throw e;
						}
					}
				}
				keepSources(seg, reg, loaded.programs.values());
				// Said only once the load is whole: a failed attach rolls it back.
				const lines = [`${file}: loaded into segment '${seg.name}'\n`];
				if (vm.verbose)
					io.err(
						`bpftime: segment '${seg.name}' ${existed ? 'opened' : `created (${vm.shmSizeMb ?? Segment.defaultOptions().sizeMb} MiB)`}: ${seg.stats().free >> 10n} KiB free\n`,
					);
				for (const m of loaded.maps.values()) lines.push(`  map '${m.name}' id ${m.id}\n`);
				for (const p of loaded.programs.values()) lines.push(`  prog '${p.name}' id ${p.id}\n`);
				if (options['--no-attach'] !== true) {
					try {
						const links = await obj.attachAll({ binary, pid });
						for (const l of links) lines.push(`  link ${l.id}: prog '${l.program}' -> ${l.target}\n`);
					} catch (e) {
						// All or nothing: a failed attach leaves no half-loaded object behind.
						obj.close();
						throw e;
					}
				}
				for (const line of lines) io.out(line);
				ok = true;
				return 0;
			} finally {
				try {
					reg.endLoad();
				} finally {
					reg.close();
				}
			}
		} finally {
			const name = seg.name;
			seg.close();
			// A load that failed into a segment it created leaves no empty segment.
			if (!ok && !existed && Segment.exists({ name })) Segment.remove({ name });
		}
	},
};
