// The help texts of the bpftime command.

export const USAGE = `Usage: bpftime [--segment <name>] <command> [options]

Run eBPF programs in user space: load them into the registry (a shared-memory
segment), start programs with the agent, and read the maps while they run.

Commands:
  load <prog.bpf.o>          load an eBPF object into the registry and attach
                             its uprobes (uprobe/uretprobe SEC names)
  start <command> [args...]  run a command with libbpftime-agent.so preloaded;
                             exits with the command's exit status
  map list                   list the maps of the registry
  map dump <name|id>         print every entry of a map
  help [<command>]           this text, or a command's

Options:
  --segment <name>  the registry's segment (default: BPFTIME_GLOBAL_SHM_NAME,
                    else bpftime_maps_shm)
  -h, --help        show help
  --version         print the version

Example:
  bpftime load malloc.bpf.o
  bpftime start ./victim &
  bpftime map dump malloc_calls
`;

export const COMMAND_USAGE: Record<string, string> = {
	load: `Usage: bpftime load <prog.bpf.o> [--binary <path>] [--pid <pid>] [--no-attach]

Creates the registry when the segment does not exist (BPFTIME_SHM_MEMORY_MB
sizes it), loads the object's maps and programs into it, and attaches every
program whose SEC name gives an attach point (SEC("uprobe/libc.so.6:malloc")).
What it creates stays in the registry after the command exits; targets
started with \`bpftime start\` attach it, also when they are already running.

Options:
  --binary <path>  the binary of uprobe sections that name none (SEC("uprobe"))
  --pid <pid>      attach for this process only (default: every process)
  --no-attach      load only
`,
	start: `Usage: bpftime start <command> [args...]

Runs the command with libbpftime-agent.so in LD_PRELOAD: before its main()
the agent attaches the registry's uprobe links that match it, and it keeps
attaching links loaded later. Standard input, output and error are the
command's; bpftime exits with its exit status (128 + the signal number when a
signal ended it). SIGINT, SIGTERM and SIGHUP are passed on to the command.
`,
	map: `Usage: bpftime map list
       bpftime map dump <name|id> [--json]

list  one line per map: id, name, type, key and value sizes, max entries
dump  every entry of the map, one per line: "key <k> value <v>"; keys and
      values of 1, 2, 4 or 8 bytes are little-endian unsigned integers, others
      hex bytes. --json prints one JSON document instead.
`,
	help: `Usage: bpftime help [<command>]
`,
};
