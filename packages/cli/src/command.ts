// command.ts: what a command of the bpftime CLI is, and the argument parsing
// every command shares. The table of commands is commands/index.ts; main.ts
// dispatches through it and usage.ts builds the overview from it.

/** Where a command writes: stdout and stderr of the CLI, or a test's buffers. */
export interface Io {
	out: (text: string) => void;
	err: (text: string) => void;
	/** Colour and cursor movement are wanted on out: a terminal, NO_COLOR unset (format/style.ts). */
	color?: boolean;
	/** out is a terminal: a live view may redraw in place. */
	tty?: boolean;
}

/** Wrong arguments: exit status 2 and the usage of `command`. */
export class UsageError extends Error {
	readonly command: string | undefined;
	constructor(message: string, command?: string) {
		super(message);
		this.name = 'UsageError';
		this.command = command;
	}
}

/** What a command runs with: the options before it, its output, and the help texts. */
export interface Context {
	/** --segment <name>, when given. */
	segment: string | undefined;
	io: Io;
	/** The overview (no topic) or a command's help text; undefined for an unknown command. */
	usage(command?: string): string | undefined;
}

export interface Command {
	/** The word that selects it: `bpftime <name>`. */
	name: string;
	/** Its rows in the overview: synopsis and description (lines split by \n). */
	overview: readonly (readonly [synopsis: string, description: string])[];
	/** Its help text (`bpftime help <name>`, `bpftime <name> --help`). */
	usage: string;
	/** `--help` and `-h` after the command are its arguments, not a request for help (start passes them on). */
	ownsHelp?: boolean;
	/** Resolves with the exit status; throws UsageError for wrong arguments, BpftimeError for a failed operation. */
	run(args: string[], ctx: Context): Promise<number>;
}

/** Splits `--name value`, `--name=value` and flags off the front of args. */
export function takeOptions(
	args: string[],
	spec: Record<string, 'value' | 'flag'>,
	command: string | undefined,
	stopAtPositional: boolean,
): { options: Record<string, string | true>; rest: string[] } {
	const options: Record<string, string | true> = {};
	const rest: string[] = [];
	let i = 0;
	for (; i < args.length; i++) {
		const a = args[i] as string;
		if (a === '--') {
			i++;
			break;
		}
		// A negative number (a key or value: `map update m -1 5`) is an operand, not an option.
		if (!a.startsWith('-') || a === '-' || /^-\d/.test(a)) {
			if (stopAtPositional) break;
			rest.push(a);
			continue;
		}
		const eq = a.indexOf('=');
		const name = eq < 0 ? a : a.slice(0, eq);
		const kind = spec[name];
		if (!kind) throw new UsageError(`unknown option '${name}'`, command);
		if (kind === 'flag') {
			if (eq >= 0) throw new UsageError(`option '${name}' takes no value`, command);
			options[name] = true;
			continue;
		}
		let value: string | undefined;
		if (eq >= 0) value = a.slice(eq + 1);
		else value = args[++i];
		if (value === undefined || value === '') throw new UsageError(`option '${name}' needs a value`, command);
		options[name] = value;
	}
	rest.push(...args.slice(i));
	return { options, rest };
}
