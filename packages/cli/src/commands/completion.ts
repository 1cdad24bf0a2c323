// bpftime completion bash|zsh: prints a completion script for the shell.
// The words come from the command table (commands/index.ts) at the time the
// script is printed: command names and descriptions from each command's
// overview, subcommands from the overview's synopses (`map list`), options
// from its help text. A command added to the table completes without an
// edit here.
import { type Command, takeOptions, UsageError } from '../command.js';

interface Words {
	name: string;
	description: string;
	subcommands: string[];
	options: string[];
}

/** What completes after each command, read from its overview and usage. */
export function completionWords(commands: readonly Command[]): Words[] {
	return commands.map((c) => {
		const subcommands = new Set<string>();
		for (const [synopsis] of c.overview) {
			// `map list`, `prog show|dump <id>`, `completion bash|zsh`: literal words, not <operands>.
			const second = synopsis.split(/\s+/)[1];
			if (second && /^[a-z][a-z-]*(\|[a-z][a-z-]*)*$/.test(second))
				for (const w of second.split('|')) subcommands.add(w);
		}
		// The options of the synopsis (the usage up to its first blank line) and of the option
		// tables (lines that start with one); examples and prose name options of other programs.
		const synopsis = c.usage.split(/\n\s*\n/)[0] ?? '';
		const options = new Set([
			...(synopsis.match(/(?<![\w-])--[a-z][a-z0-9-]*/g) ?? []),
			...[...c.usage.matchAll(/^\s+(--[a-z][a-z0-9-]*)/gm)].map((m) => m[1] as string),
			'--help',
		]);
		return {
			name: c.name,
			description: (c.overview[0]?.[1] ?? '').split('\n')[0] as string,
			subcommands: [...subcommands],
			options: [...options].sort(),
		};
	});
}

const GLOBAL_OPTIONS = ['--segment', '--help', '--version'];
/** Options whose value is one of these words. */
const VALUE_WORDS: Record<string, string> = { '--vm': 'interpreter jit llvm', '--hist': 'log2 linear' };
/**
 * Subcommands whose operand is an object of the registry, and the field of
 * `bpftime <command> list --json` that names it: completed by running that.
 */
const REGISTRY_OPERANDS: Record<string, 'name' | 'id'> = {
	'map dump': 'name',
	'map lookup': 'name',
	'map update': 'name',
	'map delete': 'name',
	'prog show': 'name',
	'prog dump': 'name',
	'link detach': 'id',
};

/** The rows of REGISTRY_OPERANDS whose command and subcommand the table has. */
function registryOperands(words: Words[]): [string, 'name' | 'id'][] {
	return Object.entries(REGISTRY_OPERANDS).filter(([pair]) => {
		const [name, sub] = pair.split(' ');
		return words.some((w) => w.name === name && w.subcommands.includes(sub as string));
	});
}

/** Commands whose first operand is a process id. */
const PID_COMMANDS = ['attach', 'detach'];

const shellWord = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;

function bash(words: Words[]): string {
	const cases = words
		.map((w) => `\t\t${w.name}) subs=${shellWord(w.subcommands.join(' '))}; opts=${shellWord(w.options.join(' '))} ;;`)
		.join('\n');
	const values = Object.entries(VALUE_WORDS)
		.map(([o, v]) => `\t\t${o}) COMPREPLY=($(compgen -W ${shellWord(v)} -- "$cur")); return ;;`)
		.join('\n');
	const operands = registryOperands(words)
		.map(([pair, field]) => `\t\t"${pair}") field=${field} ;;`)
		.join('\n');
	return `# bash completion for bpftime. Load it with
#   source <(bpftime completion bash)
# or save it as ~/.local/share/bash-completion/completions/bpftime.
_bpftime() {
	local cur="\${COMP_WORDS[COMP_CWORD]}" prev="\${COMP_WORDS[COMP_CWORD-1]}"
	local i=1 cmd="" cmdi=0 subs="" opts="" seg=""
	# The command is the first word that is neither a global option nor its value.
	while [ "$i" -lt "$COMP_CWORD" ]; do
		case "\${COMP_WORDS[i]}" in
		--segment) seg="\${COMP_WORDS[i + 1]}"; i=$((i + 2)); continue ;;
		--segment=*) seg="\${COMP_WORDS[i]#--segment=}" ;;
		-*) ;;
		*) cmd="\${COMP_WORDS[i]}"; cmdi=$i; break ;;
		esac
		i=$((i + 1))
	done
	if [ -z "$cmd" ]; then
		if [ "$prev" = --segment ]; then
			COMPREPLY=($(compgen -W "$(cd /dev/shm 2>/dev/null && echo *)" -- "$cur"))
		elif [[ "$cur" == -* ]]; then
			COMPREPLY=($(compgen -W ${shellWord(GLOBAL_OPTIONS.join(' '))} -- "$cur"))
		else
			COMPREPLY=($(compgen -W ${shellWord(words.map((w) => w.name).join(' '))} -- "$cur"))
		fi
		return
	fi
	case "$prev" in
${values}
	esac
	case "$cmd" in
${cases}
	esac
	local field=""
	if [ "$COMP_CWORD" -eq $((cmdi + 2)) ] && [[ "$cur" != -* ]]; then
		case "$cmd \${COMP_WORDS[cmdi + 1]}" in
${operands}
		esac
	fi
	if [ -n "$field" ]; then
		# The registry's objects, from the command's own listing.
		local listed
		# The top-level fields of its pretty-printed JSON array are four spaces in.
		listed=$("\${COMP_WORDS[0]}" \${seg:+--segment "$seg"} "$cmd" list --json 2>/dev/null |
			sed -n "s/^    \\"$field\\": \\"\\{0,1\\}\\([^\\",]*\\)\\"\\{0,1\\},\\{0,1\\}\\$/\\1/p")
		COMPREPLY=($(compgen -W "$listed" -- "$cur"))
	elif [ -n "$subs" ] && [ "$COMP_CWORD" -eq $((cmdi + 1)) ] && [[ "$cur" != -* ]]; then
		COMPREPLY=($(compgen -W "$subs" -- "$cur"))
	elif [[ "$cur" == -* ]]; then
		COMPREPLY=($(compgen -W "$opts" -- "$cur"))
	elif [ "$COMP_CWORD" -eq $((cmdi + 1)) ] && case " ${PID_COMMANDS.join(' ')} " in *" $cmd "*) true ;; *) false ;; esac; then
		COMPREPLY=($(compgen -W "$(cd /proc && echo [0-9]*)" -- "$cur"))
	elif [ "$cmd" = completion ]; then
		COMPREPLY=($(compgen -W 'bash zsh' -- "$cur"))
	fi
	# Nothing of ours fits: -o default completes file names.
}
complete -o default -F _bpftime bpftime
`;
}

function zsh(words: Words[]): string {
	const zq = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;
	const described = words.map((w) => `\t\t${zq(`${w.name}:${w.description.replace(/:/g, '\\:')}`)}`).join('\n');
	const cases = words
		.map((w) => `\t\t${w.name}) subs=(${w.subcommands.join(' ')}); opts=(${w.options.join(' ')}) ;;`)
		.join('\n');
	const values = Object.entries(VALUE_WORDS)
		.map(([o, v]) => `\t\t${o}) compadd -- ${v}; return ;;`)
		.join('\n');
	const operands = registryOperands(words)
		.map(([pair, field]) => `\t\t"${pair}") field=${field} ;;`)
		.join('\n');
	return `#compdef bpftime
# zsh completion for bpftime. Load it with
#   source <(bpftime completion zsh)     (after compinit)
# or save it as _bpftime in a folder of $fpath.
_bpftime() {
	local -a commands subs opts
	commands=(
${described}
	)
	local i=2 cmd="" cmdi=0 seg="" field=""
	while (( i < CURRENT )); do
		case \${words[i]} in
		--segment) seg=\${words[i+1]}; (( i += 2 )); continue ;;
		--segment=*) seg=\${words[i]#--segment=} ;;
		-*) ;;
		*) cmd=\${words[i]}; cmdi=$i; break ;;
		esac
		(( i++ ))
	done
	if [[ -z $cmd ]]; then
		if [[ \${words[CURRENT-1]} == --segment ]]; then
			_files -W /dev/shm
		elif [[ \${words[CURRENT]} == -* ]]; then
			compadd -- ${GLOBAL_OPTIONS.join(' ')}
		else
			_describe -t commands 'bpftime command' commands
		fi
		return
	fi
	case \${words[CURRENT-1]} in
${values}
	esac
	case $cmd in
${cases}
	esac
	if (( CURRENT == cmdi + 2 )) && [[ \${words[CURRENT]} != -* ]]; then
		case "$cmd \${words[cmdi+1]}" in
${operands}
		esac
	fi
	if [[ -n $field ]]; then
		# The registry's objects, from the command's own listing (top-level JSON fields are four spaces in).
		local -a listed
		listed=(\${(f)"$(\${words[1]} \${seg:+--segment} \${seg:+$seg} $cmd list --json 2>/dev/null |
			sed -n "s/^    \\"$field\\": \\"\\{0,1\\}\\([^\\",]*\\)\\"\\{0,1\\},\\{0,1\\}\\$/\\1/p")"})
		compadd -- $listed
	elif (( \${#subs} )) && (( CURRENT == cmdi + 1 )) && [[ \${words[CURRENT]} != -* ]]; then
		compadd -- $subs
	elif [[ \${words[CURRENT]} == -* ]]; then
		compadd -- $opts
	elif (( CURRENT == cmdi + 1 )) && [[ " ${PID_COMMANDS.join(' ')} " == *" $cmd "* ]]; then
		_pids
	elif [[ $cmd == completion ]]; then
		compadd -- bash zsh
	else
		_files
	fi
}
if [[ \${funcstack[1]} == _bpftime ]]; then
	_bpftime "$@"
else
	compdef _bpftime bpftime
fi
`;
}

export const completion: Command = {
	name: 'completion',
	overview: [['completion bash|zsh', 'print the completion script for the shell']],
	usage: `Usage: bpftime completion bash|zsh

Prints a script that makes the shell complete bpftime's commands,
subcommands and options, --vm's backends, process ids after attach and
detach, and the names of the registry's maps and programs (ids of its links)
after map dump, prog show, link detach … (from \`bpftime <command> list
--json\`, in the --segment given); file names elsewhere.

Example:
  source <(bpftime completion bash)               # in ~/.bashrc
  bpftime completion zsh > ~/.zfunc/_bpftime      # with ~/.zfunc in $fpath
`,
	async run(args, { io }) {
		const { rest } = takeOptions(args, {}, 'completion', false);
		if (rest.length === 0) throw new UsageError('completion: missing the shell (bash or zsh)', 'completion');
		if (rest.length > 1) throw new UsageError(`completion: unexpected argument '${rest[1]}'`, 'completion');
		const shell = rest[0] as string;
		if (shell !== 'bash' && shell !== 'zsh')
			throw new UsageError(`completion: unknown shell '${shell}' (expected bash or zsh)`, 'completion');
		// The table imports this file: read it when the script is asked for, not at load.
		const { COMMANDS } = await import('./index.js');
		const words = completionWords(COMMANDS);
		io.out(shell === 'bash' ? bash(words) : zsh(words));
		return 0;
	},
};
