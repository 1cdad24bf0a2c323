// bpftime vm plugin [args...]: the conformance plugin of @bpftime/vm
// (bpftime-vm-plugin), run in the foreground with this command's stdin,
// stdout and stderr, so that a conformance runner can name `bpftime vm
// plugin` (through a one-line wrapper script) as it names the executable.
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { BpftimeError } from '@bpftime/common';
import { foreground } from '../child.js';
import { type Command, UsageError } from '../command.js';

export const vm: Command = {
	name: 'vm',
	overview: [['vm plugin [args...]', 'the conformance plugin: run one program from\nhex on stdin, print r0']],
	usage: `Usage: bpftime vm plugin [--interpret | --jit] [<memory hex>]

Runs bpftime-vm-plugin of @bpftime/vm, the program bpf_conformance's runner
drives (--plugin_path): it reads a program's instruction bytes in hex from
stdin until EOF, runs it once with the optional memory (hex bytes) as its
context, and prints r0 in hex (0x2a). Exit status 0 on success; 1, with the
reason on stderr, when the program does not parse, verify, load or run.
Helper 5 is the identity; no other helper is registered.

Options (passed on to the plugin):
  --interpret      run on the interpreter (the default)
  --jit            run on the x86-64 JIT

Example:
  echo "b7 00 00 00 2a 00 00 00 95 00 00 00 00 00 00 00" | bpftime vm plugin --jit
`,
	ownsHelp: true,
	async run(args, { io }) {
		const [sub, ...rest] = args;
		if (sub === '--help' || sub === '-h') {
			io.out(vm.usage);
			return 0;
		}
		if (sub === undefined) throw new UsageError('vm: missing the subcommand (plugin)', 'vm');
		if (sub !== 'plugin') throw new UsageError(`vm: unknown subcommand '${sub}'`, 'vm');
		if (rest.includes('--help') || rest.includes('-h')) {
			io.out(vm.usage);
			return 0;
		}
		const { pluginPath } = await import('@bpftime/vm');
		if (!existsSync(pluginPath))
			throw new BpftimeError(
				'ENOENT',
				`vm plugin: ${pluginPath} is not built; run \`pnpm turbo run build --filter @bpftime/vm\` in the workspace`,
			);
		const child = spawn(pluginPath, rest, { stdio: 'inherit' });
		await new Promise<void>((resolve, reject) => {
			child.once('spawn', resolve);
			child.once('error', (e: NodeJS.ErrnoException) =>
				reject(new BpftimeError(e.code ?? 'EIO', `vm plugin: ${pluginPath}: ${e.message}`)),
			);
		});
		return foreground(child);
	},
};
