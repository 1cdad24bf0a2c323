// bpftime attach <pid>: injects the agent into a running process (ptrace,
// dlopen() by the process's own loader) and attaches the registry's links
// there, as `bpftime start` would have at its start.
import { BpftimeError } from '@bpftime/common';
import { type Command, takeOptions, UsageError } from '../command.js';
import { openRegistry } from '../registry.js';

export function parsePid(word: string | undefined, command: string): number {
	if (word === undefined) throw new UsageError(`${command}: missing the pid`, command);
	if (!/^[1-9]\d{0,9}$/.test(word)) throw new UsageError(`${command}: '${word}' is not a pid`, command);
	return Number(word);
}

export const attach: Command = {
	name: 'attach',
	overview: [['attach <pid>', "inject the agent into a running process and attach\nthe registry's links there"]],
	usage: `Usage: bpftime attach <pid>

Injects libbpftime-agent.so into the running process <pid> and attaches the
registry's links to it, as \`bpftime start\` does for a new process. One
thread of the process is stopped with ptrace for the time of a dlopen() call;
the others keep running. \`bpftime detach <pid>\` removes the hooks again.

Needs the right to ptrace the process: the same user and a Yama
ptrace_scope of 0, or root (CAP_SYS_PTRACE).

Example:
  bpftime load ./malloc.bpf.o && bpftime attach $(pidof victim)
`,
	async run(args, { segment, io }) {
		const { rest } = takeOptions(args, {}, 'attach', false);
		if (rest.length > 1) throw new UsageError(`attach: unexpected argument '${rest[1]}'`, 'attach');
		const pid = parsePid(rest[0], 'attach');
		const { seg, reg } = await openRegistry(segment);
		let links: number;
		try {
			links = reg.list().filter((d) => d.kind === 'link').length;
		} finally {
			seg.close();
		}
		if (links === 0) {
			throw new BpftimeError(
				'ENOENT',
				`attach ${pid}: the registry holds no link, nothing to attach; load a program with its links first (\`bpftime load <prog.bpf.o>\`)`,
			);
		}
		const { inject } = await import('@bpftime/agent');
		const attached = await inject(pid, segment === undefined ? {} : { segment });
		io.out(`attached to process ${pid}: ${attached} of ${links} links attached\n`);
		return 0;
	},
};
