// bpftime help [<command>]: the overview, or a command's help text.
import { type Command, UsageError } from '../command.js';

export const help: Command = {
	name: 'help',
	overview: [['help [<command>]', "this text, or a command's"]],
	usage: `Usage: bpftime help [<command>]

Prints the overview of every command, or the help text of one (the same as
\`bpftime <command> --help\`).

Example:
  bpftime help run
`,
	async run(args, { io, usage }) {
		const topic = args[0];
		const text = usage(topic);
		if (text === undefined) throw new UsageError(`help: unknown command '${topic}'`, 'help');
		io.out(text);
		return 0;
	},
};
