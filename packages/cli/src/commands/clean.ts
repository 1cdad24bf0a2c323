// bpftime clean: removes the registry's segment. Refused while processes run
// the registry's programs (the agent is loaded there) unless --force, which
// first detaches the agent from each as `bpftime detach` does.
import { BpftimeError } from '@bpftime/common';
import { type Command, takeOptions, UsageError } from '../command.js';
import { registryModules } from '../registry.js';
import { segmentUsers } from '../registry-view.js';

export const clean: Command = {
	name: 'clean',
	overview: [['clean [--force]', "remove the registry's segment (--force: detach\nthe processes using it first)"]],
	usage: `Usage: bpftime clean [--force]

Removes the registry's segment: every program, map, link and event in it.
Processes that have it mapped keep their mapping until they exit, but
new ones will not find it.

While processes have the agent loaded (\`bpftime start\`, \`bpftime attach\`),
clean is refused (EBUSY) naming them. --force first detaches the agent
from each of them (the hooks come off, the original bytes come back, as
\`bpftime detach <pid>\`), then removes the segment.

Example:
  bpftime clean --force
`,
	async run(args, { segment, io }) {
		const { options, rest } = takeOptions(args, { '--force': 'flag' }, 'clean', false);
		if (rest.length) throw new UsageError(`clean: unexpected argument '${rest[0]}'`, 'clean');
		const { Segment } = await registryModules();
		const name = segment ?? Segment.defaultOptions().name;
		if (!Segment.exists({ name }))
			throw new BpftimeError('ENOENT', `clean: segment '${name}': does not exist; nothing to remove (ENOENT)`);
		const agents = segmentUsers(name).filter((u) => u.role === 'agent');
		if (agents.length && options['--force'] !== true) {
			const who = agents.map((a) => `${a.pid} (${a.command})`).join(', ');
			throw new BpftimeError(
				'EBUSY',
				`clean: segment '${name}': the agent runs its programs in ${agents.length === 1 ? 'process' : 'processes'} ${who}; \`bpftime detach <pid>\` them, or \`bpftime clean --force\` (EBUSY)`,
			);
		}
		if (agents.length) {
			const { detachAgent } = await import('@bpftime/agent');
			for (const a of agents) {
				try {
					const removed = await detachAgent(a.pid);
					io.out(`detached from process ${a.pid}: ${removed} hooks removed\n`);
				} catch (e) {
					// Already detached, or exited meanwhile: nothing of ours runs there any more.
					if (!(e instanceof BpftimeError && (e.code === 'ENOENT' || e.code === 'ESRCH'))) throw e;
				}
			}
		}
		Segment.remove({ name });
		io.out(`removed segment '${name}'\n`);
		return 0;
	},
};
