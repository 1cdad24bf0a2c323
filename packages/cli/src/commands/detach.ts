// bpftime detach <pid>: removes every hook the agent placed in a process
// (`bpftime attach` or `bpftime start`); the agent stays loaded, inert.
import { type Command, takeOptions, UsageError } from '../command.js';
import { parsePid } from './attach.js';

export const detach: Command = {
	name: 'detach',
	overview: [['detach <pid>', 'remove the hooks of the agent from a process']],
	usage: `Usage: bpftime detach <pid>

Removes every hook the agent placed in process <pid> (the original bytes of
the hooked functions come back) and stops its watching for new links. The
agent library stays loaded but inert: a thread may still be returning
through a hook's trampoline, so its code cannot be unmapped safely.
\`bpftime attach <pid>\` attaches again.

Example:
  bpftime detach $(pidof victim)
`,
	async run(args, { io }) {
		const { rest } = takeOptions(args, {}, 'detach', false);
		if (rest.length > 1) throw new UsageError(`detach: unexpected argument '${rest[1]}'`, 'detach');
		const pid = parsePid(rest[0], 'detach');
		const { detachAgent } = await import('@bpftime/agent');
		const removed = await detachAgent(pid);
		io.out(`detached from process ${pid}: ${removed} hooks removed\n`);
		return 0;
	},
};
