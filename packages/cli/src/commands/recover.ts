// bpftime recover [--list | --remove]: what loaders that died part-way
// through a load left in the registry (issue 17). Every other opener of the
// registry releases it by itself; this command shows it first, or releases
// it without doing anything else.
import type { OwnerInfo } from '@bpftime/handlers';
import { type Command, takeOptions, UsageError } from '../command.js';
import { registryModules } from '../registry.js';

function describe(o: OwnerInfo): string {
	const name = o.name ? ` '${o.name}'` : '';
	return `${o.id}: ${o.kind}${name} of process ${o.pid}`;
}

export const recover: Command = {
	name: 'recover',
	overview: [['recover [--list|--remove]', 'list or remove what a loader that died left in the registry']],
	usage: `Usage: bpftime recover [--list | --remove] [--segment <name>]

A load (\`bpftime load\`, or BpfObject.load into a registry) is one
transaction: the maps, programs, perf events and links it creates are marked
with the loader's process (pid and start time) until the load commits. A
loader killed part-way leaves them marked, and the next process that opens
the registry releases them.

  --list    (the default) prints the handlers of unfinished loads, with
            their process and whether it still runs; changes nothing
  --remove  releases those whose process is gone, and prints them

Example:
  bpftime recover --list
  bpftime recover --remove
`,
	async run(args, { segment, io }) {
		const { options, rest } = takeOptions(args, { '--list': 'flag', '--remove': 'flag' }, 'recover', false);
		if (rest.length) throw new UsageError(`recover: unexpected argument '${rest[0]}'`, 'recover');
		if (options['--list'] === true && options['--remove'] === true)
			throw new UsageError('recover: --list and --remove exclude each other', 'recover');
		const remove = options['--remove'] === true;
		const { Registry, Segment } = await registryModules();
		const seg = Segment.open(segment === undefined ? {} : { name: segment });
		try {
			const reg = Registry.open(seg, { rollBack: false });
			try {
				if (remove) {
					const gone = reg.rollBackDeadLoads();
					for (const o of gone) io.out(`removed ${describe(o)}\n`);
					io.out(`${gone.length} handler(s) of dead loaders removed\n`);
					return 0;
				}
				const unfinished = reg.owners().filter((o) => o.inLoad);
				for (const o of unfinished)
					io.out(`${describe(o)}: ${o.alive ? 'loading (the process runs)' : 'left by a dead loader'}\n`);
				const dead = unfinished.filter((o) => !o.alive).length;
				io.out(
					`${unfinished.length} handler(s) in unfinished loads, ${dead} of dead loaders${dead ? ' (`bpftime recover --remove` releases them)' : ''}\n`,
				);
				return 0;
			} finally {
				reg.close();
			}
		} finally {
			seg.close();
		}
	},
};
