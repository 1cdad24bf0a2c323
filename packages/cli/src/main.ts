// The bpftime command. `main(argv)` parses the arguments (without node and
// the script), runs one command of the table in commands/index.ts and
// resolves with the exit status: 0 success, 1 a failed operation (its
// BpftimeError message on stderr), 2 wrong arguments (the usage on stderr),
// or the status of the command `bpftime start` ran.
import { readFileSync } from 'node:fs';
import { BpftimeError } from '@bpftime/common';
import { type Io, takeOptions, UsageError } from './command.js';
import { colorWanted } from './format/style.js';
import { findCommand, USAGE, usageOf } from './usage.js';

export { type Io, UsageError } from './command.js';

const defaultIo: Io = {
	out: (t) => process.stdout.write(t),
	err: (t) => process.stderr.write(t),
	color: colorWanted(process.stdout),
	tty: process.stdout.isTTY === true,
};

function version(): string {
	const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string };
	return pkg.version;
}

/** Runs the bpftime command line `argv` (without `node` and the script). */
export async function main(argv: readonly string[], io: Io = defaultIo): Promise<number> {
	try {
		const { options, rest } = takeOptions(
			[...argv],
			{ '--segment': 'value', '--help': 'flag', '-h': 'flag', '--version': 'flag' },
			undefined,
			true,
		);
		if (options['--version'] === true) {
			io.out(`bpftime ${version()}\n`);
			return 0;
		}
		const [name, ...args] = rest;
		const command = name === undefined ? undefined : findCommand(name);
		if (options['--help'] === true || options['-h'] === true) {
			io.out(command?.usage ?? USAGE);
			return 0;
		}
		if (name === undefined) throw new UsageError('missing the command');
		if (!command?.ownsHelp && (args.includes('--help') || args.includes('-h'))) {
			io.out(command?.usage ?? USAGE);
			return 0;
		}
		if (!command) throw new UsageError(`unknown command '${name}'`);
		const segment = typeof options['--segment'] === 'string' ? options['--segment'] : undefined;
		return await command.run(args, { segment, io, usage: usageOf });
	} catch (e) {
		if (e instanceof UsageError) {
			io.err(`bpftime: ${e.message}\n\n${(e.command && usageOf(e.command)) || USAGE}`);
			return 2;
		}
		if (e instanceof BpftimeError) {
			// The errno name, for scripts and searches, unless the message already says it.
			const code = new RegExp(`\\b${e.code}\\b`).test(e.message) ? '' : ` (${e.code})`;
			io.err(`bpftime: ${e.message}${code}\n`);
			return 1;
		}
		io.err(`bpftime: ${(e as Error)?.stack ?? String(e)}\n`);
		return 1;
	}
}
