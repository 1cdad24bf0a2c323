// bpftime help [<command>]: the overview, or a command's help text.
import { type Command, UsageError } from '../command.js';

export const help: Command = {
	name: 'help',
	overview: [['help [<command>]', "this text, or a command's"]],
	usage: `Usage: bpftime help [<command>]
`,
	async run(args, { io, usage }) {
		const topic = args[0];
		const text = usage(topic);
		if (text === undefined) throw new UsageError(`help: unknown command '${topic}'`, 'help');
		io.out(text);
		return 0;
	},
};
