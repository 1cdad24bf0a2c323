// bpftime start <command> [args...]: runs a command with the agent preloaded
// and exits with its status; signals to the CLI are passed on to it.
import { foreground } from '../child.js';
import { type Command, takeOptions, UsageError } from '../command.js';

export const start: Command = {
	name: 'start',
	overview: [
		[
			'start <command> [args...]',
			"run a command with libbpftime-agent.so preloaded;\nexits with the command's exit status",
		],
	],
	usage: `Usage: bpftime start <command> [args...]

Runs the command with libbpftime-agent.so in LD_PRELOAD: before its main()
the agent attaches the registry's uprobe links that match it, and it keeps
attaching links loaded later. Standard input, output and error are the
command's; bpftime exits with its exit status (128 + the signal number when a
signal ended it). SIGINT, SIGTERM and SIGHUP are passed on to the command.
`,
	ownsHelp: true,
	async run(args, { segment }) {
		const { rest } = takeOptions(args, {}, 'start', true);
		if (rest.length === 0) throw new UsageError('start: missing the command to run', 'start');
		const [command, ...commandArgs] = rest as [string, ...string[]];
		const { spawnWithAgent } = await import('@bpftime/agent');
		const child = await spawnWithAgent(command, commandArgs, {
			stdio: 'inherit',
			...(segment ? { segment } : {}),
		});
		return foreground(child);
	},
};
