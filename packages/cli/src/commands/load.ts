// bpftime load <prog.bpf.o>: loads an object into the registry (creating the
// segment when needed) and attaches the programs whose SEC names say where.
import { type Command, takeOptions, UsageError } from '../command.js';
import { registryModules, segmentOptions } from '../registry.js';

function parsePid(text: string): number {
	if (!/^\d+$/.test(text) || Number(text) < 1 || Number(text) > 0x3fffffff) {
		throw new UsageError(`--pid: expected a process id but received '${text}'`, 'load');
	}
	return Number(text);
}

export const load: Command = {
	name: 'load',
	overview: [
		['load <prog.bpf.o>', 'load an eBPF object into the registry and attach\nits uprobes (uprobe/uretprobe SEC names)'],
	],
	usage: `Usage: bpftime load <prog.bpf.o> [--binary <path>] [--pid <pid>] [--no-attach]

Creates the registry when the segment does not exist (BPFTIME_SHM_MEMORY_MB
sizes it), loads the object's maps and programs into it, and attaches every
program whose SEC name gives an attach point (SEC("uprobe/libc.so.6:malloc")).
What it creates stays in the registry after the command exits; targets
started with \`bpftime start\` attach it, also when they are already running.

Options:
  --binary <path>  the binary of uprobe sections that name none (SEC("uprobe"))
  --pid <pid>      attach for this process only (default: every process)
  --no-attach      load only
`,
	async run(args, { segment, io }) {
		const { options, rest } = takeOptions(
			args,
			{ '--binary': 'value', '--pid': 'value', '--no-attach': 'flag' },
			'load',
			false,
		);
		if (rest.length === 0) throw new UsageError('load: missing the object file', 'load');
		if (rest.length > 1)
			throw new UsageError(`load: one object file at a time, received ${rest.length}: ${rest.join(' ')}`, 'load');
		const file = rest[0] as string;
		const pid = typeof options['--pid'] === 'string' ? parsePid(options['--pid']) : undefined;
		const binary = typeof options['--binary'] === 'string' ? options['--binary'] : undefined;
		const [{ BpfObject }, { Registry, Segment }] = await Promise.all([import('@bpftime/loader'), registryModules()]);
		const options_ = segmentOptions(segment);
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
			try {
				const loaded = await obj.load(reg);
				// Said only once the load is whole: a failed attach rolls it back.
				const lines = [`${file}: loaded into segment '${seg.name}'\n`];
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
				reg.close();
			}
		} finally {
			const name = seg.name;
			seg.close();
			// A load that failed into a segment it created leaves no empty segment.
			if (!ok && !existed && Segment.exists({ name })) Segment.remove({ name });
		}
	},
};
