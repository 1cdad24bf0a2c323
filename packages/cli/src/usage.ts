// The help texts of the bpftime command: the overview, whose command list is
// built from the command table, and each command's own text.
import type { Command } from './command.js';
import { COMMANDS } from './commands/index.js';

/** The overview's rows, descriptions aligned two columns after the longest synopsis. */
function commandList(commands: readonly Command[]): string {
	const rows = commands.flatMap((c) => c.overview);
	const width = Math.max(...rows.map(([synopsis]) => synopsis.length)) + 2;
	return rows
		.map(([synopsis, description]) =>
			description
				.split('\n')
				.map((line, i) => `  ${(i === 0 ? synopsis : '').padEnd(width)}${line}`)
				.join('\n'),
		)
		.join('\n');
}

export const USAGE = `Usage: bpftime [--segment <name>] <command> [options]

Run eBPF programs in user space: load them into the registry (a shared-memory
segment), start programs with the agent, and read the maps while they run.

Commands:
${commandList(COMMANDS)}

Options:
  --segment <name>  the registry's segment (default: BPFTIME_GLOBAL_SHM_NAME,
                    else bpftime_maps_shm)
  -h, --help        show help
  --version         print the version

Example:
  bpftime load malloc.bpf.o
  bpftime start ./victim &
  bpftime map dump malloc_calls
`;

const byName = new Map(COMMANDS.map((c) => [c.name, c]));

/** The command named `name`, if there is one. */
export function findCommand(name: string): Command | undefined {
	return byName.get(name);
}

/** The overview (no name) or the help text of a command; undefined for an unknown command. */
export function usageOf(name?: string): string | undefined {
	return name === undefined ? USAGE : findCommand(name)?.usage;
}
