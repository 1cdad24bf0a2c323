// bpftime start <command> [args...]: runs a command with the agent preloaded
// and exits with its status; signals to the CLI are passed on to it.
import { foreground } from '../child.js';
import { type Command, takeOptions, UsageError } from '../command.js';
import { registryModules, segmentOptions } from '../registry.js';
import { requireBackend, VM_OPTION_SPEC, vmEnv, vmOptions } from '../vm-options.js';

export const start: Command = {
	name: 'start',
	overview: [
		[
			'start <command> [args...]',
			"run a command with libbpftime-agent.so preloaded;\nexits with the command's exit status",
		],
	],
	usage: `Usage: bpftime start [--vm <backend>] [--shm-size <MiB>] [--verbose] <command> [args...]

Runs the command with libbpftime-agent.so in LD_PRELOAD: before its main()
the agent attaches the registry's uprobe links that match it, and it keeps
attaching links loaded later. Standard input, output and error are the
command's; bpftime exits with its exit status (128 + the signal number when a
signal ended it). SIGINT, SIGTERM and SIGHUP are passed on to the command.

Options (before the command; what follows it is the command's):
  --vm <backend>    the backend the agent runs programs on: interpreter, jit
                    or llvm (BPFTIME_VM_NAME; default jit)
  --shm-size <MiB>  create the registry's segment of this size first, when
                    it does not exist (the agent waits for one; a loader
                    started later fills it)
  --verbose         the agent logs at debug level (SPDLOG_LEVEL=debug)

Example:
  bpftime start ./victim 10
  bpftime start --vm interpreter --verbose -- ./victim --its-own-flag
`,
	ownsHelp: true,
	async run(args, { segment, io }) {
		const { options, rest } = takeOptions(args, { ...VM_OPTION_SPEC, '--help': 'flag', '-h': 'flag' }, 'start', true);
		// Before the command, --help is ours; after it, the command's.
		if (options['--help'] === true || options['-h'] === true) {
			io.out(start.usage);
			return 0;
		}
		if (rest.length === 0) throw new UsageError('start: missing the command to run', 'start');
		const [command, ...commandArgs] = rest as [string, ...string[]];
		const vm = vmOptions(options, 'start');
		await requireBackend(vm.backend);
		if (vm.shmSizeMb !== undefined) {
			const { Registry, Segment } = await registryModules();
			const name = segmentOptions(segment).name ?? Segment.defaultOptions().name;
			if (!Segment.exists({ name })) {
				using seg = Segment.create({ name, sizeMb: vm.shmSizeMb });
				Registry.create(seg).close();
				if (vm.verbose) io.err(`bpftime: segment '${name}' created: ${vm.shmSizeMb} MiB\n`);
			}
		}
		const { spawnWithAgent } = await import('@bpftime/agent');
		const child = await spawnWithAgent(command, commandArgs, {
			stdio: 'inherit',
			env: vmEnv(vm),
			...(segment ? { segment } : {}),
		});
		return foreground(child);
	},
};
