// bpftime map list | map dump <name|id>: reads the maps of the registry, as
// `bpftool map` does for the kernel's.
import { BpftimeError } from '@bpftime/common';
import { type BpfMap, type MapDescriptor, MapType, type Registry } from '@bpftime/handlers';
import { StackTraceMap, Symbolizer } from '@bpftime/maps-userspace';
import { type Command, type Context, takeOptions, UsageError } from '../command.js';
import { openRegistry } from '../registry.js';

/** bpftool's name of a map type: BPF_MAP_TYPE_PERCPU_ARRAY -> percpu_array. */
function mapTypeName(typeName: string): string {
	return typeName.replace(/^BPF_MAP_TYPE_/, '').toLowerCase();
}

function formatBytes(b: Buffer): string {
	switch (b.length) {
		case 1:
			return String(b.readUInt8(0));
		case 2:
			return String(b.readUInt16LE(0));
		case 4:
			return String(b.readUInt32LE(0));
		case 8:
			return b.readBigUInt64LE(0).toString();
		default:
			return `0x${b.toString('hex')}`;
	}
}

function findMap(reg: Registry, which: string): BpfMap {
	if (/^\d+$/.test(which)) {
		// An id the table cannot hold (above its capacity, or past u32) names no map either.
		const id = Number(which);
		const d = Number.isSafeInteger(id) && id < reg.capacity ? reg.get(id) : undefined;
		if (!d) throw new BpftimeError('ENOENT', `map id ${which}: no such map in the registry`);
		if (d.kind !== 'map') throw new BpftimeError('EINVAL', `id ${which}: is a ${d.kind}, not a map`);
		return reg.map(Number(which));
	}
	const maps = reg.list().filter((d): d is MapDescriptor => d.kind === 'map');
	const hits = maps.filter((d) => d.name === which);
	const [hit] = hits;
	if (!hit) {
		const names = maps.map((d) => `'${d.name}'`).join(', ') || 'none';
		throw new BpftimeError('ENOENT', `map '${which}': no such map in the registry (maps: ${names})`);
	}
	if (hits.length > 1) {
		const ids = hits.map((d) => d.id).join(', ');
		throw new BpftimeError('EINVAL', `map '${which}': ${hits.length} maps have this name (ids ${ids}); name one by id`);
	}
	return reg.map(hit.id);
}

async function list(args: string[], { segment, io }: Context): Promise<number> {
	const { rest: extra } = takeOptions(args, {}, 'map', false);
	if (extra.length) throw new UsageError(`map list: unexpected argument '${extra[0]}'`, 'map');
	const { seg, reg } = await openRegistry(segment);
	try {
		for (const d of reg.list()) {
			if (d.kind !== 'map') continue;
			io.out(
				`${d.id}: ${mapTypeName(d.typeName)} name '${d.name}' key ${d.keySize}B value ${d.valueSize}B max_entries ${d.maxEntries}\n`,
			);
		}
	} finally {
		reg.close();
		seg.close();
	}
	return 0;
}

/** The stacks of a stack trace map, one frame a line, named through the ELF symbols of process `pid`. */
function dumpStacks(map: BpfMap, pid: number | undefined, json: boolean, io: Context['io']): void {
	const stacks = new StackTraceMap(map);
	const sym = pid === undefined ? undefined : new Symbolizer(pid);
	const all = [...stacks.entries()];
	if (json) {
		const frames = (ips: bigint[]) =>
			ips.map((ip) => {
				const f = sym?.symbolize(ip);
				return { address: `0x${ip.toString(16)}`, symbol: f?.symbol, offset: f?.offset?.toString(), module: f?.module };
			});
		io.out(
			`${JSON.stringify({ id: map.id, name: map.name, type: 'stack_trace', stacks: all.map(([id, ips]) => ({ id, frames: frames(ips) })) }, null, 2)}\n`,
		);
		return;
	}
	for (const [id, ips] of all) {
		io.out(`stack ${id}:\n`);
		for (const ip of ips) io.out(`    ${sym ? sym.format(ip) : `0x${ip.toString(16)}`}\n`);
	}
	io.out(`${map.describe()}: ${all.length} ${all.length === 1 ? 'stack' : 'stacks'}\n`);
}

async function dump(args: string[], { segment, io }: Context): Promise<number> {
	const { options, rest: names } = takeOptions(args, { '--json': 'flag', '--pid': 'value' }, 'map', false);
	if (names.length === 0) throw new UsageError('map dump: missing the map name or id', 'map');
	if (names.length > 1) throw new UsageError(`map dump: one map at a time, received ${names.join(' ')}`, 'map');
	const pidText = options['--pid'];
	const pid = typeof pidText === 'string' ? Number(pidText) : undefined;
	if (pid !== undefined && !(Number.isInteger(pid) && pid > 0))
		throw new UsageError(`map dump: --pid takes a process id, received '${pidText}'`, 'map');
	const { seg, reg } = await openRegistry(segment);
	try {
		const map = findMap(reg, names[0] as string);
		if (map.type === MapType.StackTrace) {
			dumpStacks(map, pid, options['--json'] === true, io);
			return 0;
		}
		const entries = [...map.entries()].map(([k, v]) => [formatBytes(k), formatBytes(v)] as const);
		if (options['--json'] === true) {
			io.out(
				`${JSON.stringify({ id: map.id, name: map.name, type: mapTypeName(map.typeName), keySize: map.keySize, valueSize: map.valueSize, entries: entries.map(([key, value]) => ({ key, value })) }, null, 2)}\n`,
			);
		} else {
			for (const [k, v] of entries) io.out(`key ${k} value ${v}\n`);
			io.out(`${map.describe()}: ${entries.length} ${entries.length === 1 ? 'entry' : 'entries'}\n`);
		}
		return 0;
	} finally {
		reg.close();
		seg.close();
	}
}

/** The subcommands of `bpftime map`. */
const subcommands = new Map([
	['list', list],
	['dump', dump],
]);

export const map: Command = {
	name: 'map',
	overview: [
		['map list', 'list the maps of the registry'],
		['map dump <name|id>', 'print every entry of a map'],
	],
	usage: `Usage: bpftime map list
       bpftime map dump <name|id> [--json] [--pid <pid>]

list  one line per map: id, name, type, key and value sizes, max entries
dump  every entry of the map, one per line: "key <k> value <v>"; keys and
      values of 1, 2, 4 or 8 bytes are little-endian unsigned integers, others
      hex bytes. --json prints one JSON document instead. A stack trace map
      prints each stack, one frame a line; with --pid, each frame is named
      from the ELF symbols of that process (the one that recorded them):
      "function+0x1f (/path/to/module)".
`,
	async run(args, ctx) {
		const [sub, ...rest] = args;
		if (sub === undefined) throw new UsageError('map: missing the subcommand (list or dump)', 'map');
		const run = subcommands.get(sub);
		if (!run) throw new UsageError(`map: unknown subcommand '${sub}'`, 'map');
		return run(rest, ctx);
	},
};
