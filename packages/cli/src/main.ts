// The bpftime command. `main(argv)` parses the arguments (without node and
// the script), runs one command and resolves with the exit status:
// 0 success, 1 a failed operation (its BpftimeError message on stderr),
// 2 wrong arguments (the usage on stderr), or the status of the command
// `bpftime start` ran.
import { readFileSync } from 'node:fs';
import { BpftimeError } from '@bpftime/common';
import type { BpfMap, MapDescriptor, Registry } from '@bpftime/handlers';
import type { Segment } from '@bpftime/shm';
import { COMMAND_USAGE, USAGE } from './usage.js';

// The packages with native addons are imported by the commands that need
// them, so that help, argument errors and `start` work (and start fast)
// without loading the registry's addons.
async function registryModules() {
	const [{ Registry }, { Segment }] = await Promise.all([
		import('@bpftime/handlers'),
		import('@bpftime/shm'),
		import('@bpftime/maps-userspace'),
	]);
	return { Registry, Segment };
}

export interface Io {
	out: (text: string) => void;
	err: (text: string) => void;
}

const defaultIo: Io = {
	out: (t) => process.stdout.write(t),
	err: (t) => process.stderr.write(t),
};

/** Wrong arguments: exit status 2 and the usage of `command`. */
export class UsageError extends Error {
	readonly command: string | undefined;
	constructor(message: string, command?: string) {
		super(message);
		this.name = 'UsageError';
		this.command = command;
	}
}

interface Global {
	segment: string | undefined;
}

/** Splits `--name value`, `--name=value` and flags off the front of args. */
function takeOptions(
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
		if (!a.startsWith('-') || a === '-') {
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

function parsePid(text: string): number {
	if (!/^\d+$/.test(text) || Number(text) < 1 || Number(text) > 0x3fffffff) {
		throw new UsageError(`--pid: expected a process id but received '${text}'`, 'load');
	}
	return Number(text);
}

function segmentOptions(g: Global): { name?: string } {
	return g.segment === undefined ? {} : { name: g.segment };
}

/** The registry of an existing segment; ENOENT says how to make one. */
async function openRegistry(g: Global): Promise<{ seg: Segment; reg: Registry }> {
	const { Registry, Segment } = await registryModules();
	const name = g.segment ?? Segment.defaultOptions().name;
	if (!Segment.exists({ name })) {
		throw new BpftimeError('ENOENT', `segment '${name}': does not exist; \`bpftime load <prog.bpf.o>\` creates it`);
	}
	const seg = Segment.open({ name });
	try {
		return { seg, reg: Registry.open(seg) };
	} catch (e) {
		seg.close();
		throw e;
	}
}

async function cmdLoad(g: Global, args: string[], io: Io): Promise<number> {
	const { options, rest } = takeOptions(
		args,
		{ '--binary': 'value', '--pid': 'value', '--no-attach': 'flag' },
		'load',
		false,
	);
	if (rest.length === 0) throw new UsageError('load: missing the object file', 'load');
	if (rest.length > 1)
		throw new UsageError(`load: one object file at a time, received ${rest.length}: ${rest.join(' ')}`, 'load');
	const file = rest[0] as string;
	const pid = typeof options['--pid'] === 'string' ? parsePid(options['--pid']) : undefined;
	const binary = typeof options['--binary'] === 'string' ? options['--binary'] : undefined;
	const [{ BpfObject }, { Registry, Segment }] = await Promise.all([import('@bpftime/loader'), registryModules()]);
	const obj = BpfObject.open(file);
	const seg = Segment.openOrCreate(segmentOptions(g));
	const reg = Registry.openOrCreate(seg);
	try {
		const loaded = await obj.load(reg);
		io.out(`${file}: loaded into segment '${seg.name}'\n`);
		for (const m of loaded.maps.values()) io.out(`  map '${m.name}' id ${m.id}\n`);
		for (const p of loaded.programs.values()) io.out(`  prog '${p.name}' id ${p.id}\n`);
		if (options['--no-attach'] !== true) {
			try {
				const links = await obj.attachAll({ binary, pid });
				for (const l of links) io.out(`  link ${l.id}: prog '${l.program}' -> ${l.target}\n`);
			} catch (e) {
				// All or nothing: a failed attach leaves no half-loaded object behind.
				obj.close();
				throw e;
			}
		}
		return 0;
	} finally {
		reg.close();
		seg.close();
	}
}

async function cmdStart(g: Global, args: string[]): Promise<number> {
	const { rest } = takeOptions(args, {}, 'start', true);
	if (rest.length === 0) throw new UsageError('start: missing the command to run', 'start');
	const [command, ...commandArgs] = rest as [string, ...string[]];
	const { spawnWithAgent } = await import('@bpftime/agent');
	const child = await spawnWithAgent(command, commandArgs, {
		stdio: 'inherit',
		...(g.segment ? { segment: g.segment } : {}),
	});
	const forward = (sig: NodeJS.Signals) => () => {
		child.kill(sig);
	};
	const handlers = (['SIGINT', 'SIGTERM', 'SIGHUP'] as const).map((s) => [s, forward(s)] as const);
	for (const [s, h] of handlers) process.on(s, h);
	try {
		const [code, signal] = await new Promise<[number | null, NodeJS.Signals | null]>((resolve) =>
			child.once('exit', (c, s) => resolve([c, s])),
		);
		if (signal) {
			const num = (await import('node:os')).constants.signals[signal] ?? 0;
			return 128 + num;
		}
		return code ?? 1;
	} finally {
		for (const [s, h] of handlers) process.off(s, h);
	}
}

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
		const d = reg.get(Number(which));
		if (!d) throw new BpftimeError('ENOENT', `map id ${which}: no such map in the registry`);
		if (d.kind !== 'map') throw new BpftimeError('EINVAL', `id ${which}: is a ${d.kind}, not a map`);
		return reg.map(Number(which));
	}
	const maps = reg.list().filter((d): d is MapDescriptor => d.kind === 'map');
	const hit = maps.find((d) => d.name === which);
	if (!hit) {
		const names = maps.map((d) => `'${d.name}'`).join(', ') || 'none';
		throw new BpftimeError('ENOENT', `map '${which}': no such map in the registry (maps: ${names})`);
	}
	return reg.map(hit.id);
}

async function cmdMap(g: Global, args: string[], io: Io): Promise<number> {
	const [sub, ...rest] = args;
	if (sub === undefined) throw new UsageError('map: missing the subcommand (list or dump)', 'map');
	if (sub === 'list') {
		const { rest: extra } = takeOptions(rest, {}, 'map', false);
		if (extra.length) throw new UsageError(`map list: unexpected argument '${extra[0]}'`, 'map');
		const { seg, reg } = await openRegistry(g);
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
	if (sub !== 'dump') throw new UsageError(`map: unknown subcommand '${sub}'`, 'map');
	const { options, rest: names } = takeOptions(rest, { '--json': 'flag' }, 'map', false);
	if (names.length === 0) throw new UsageError('map dump: missing the map name or id', 'map');
	if (names.length > 1) throw new UsageError(`map dump: one map at a time, received ${names.join(' ')}`, 'map');
	const { seg, reg } = await openRegistry(g);
	try {
		const map = findMap(reg, names[0] as string);
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
		const [command, ...args] = rest;
		if (options['--help'] === true || options['-h'] === true) {
			io.out(command && COMMAND_USAGE[command] ? (COMMAND_USAGE[command] as string) : USAGE);
			return 0;
		}
		const g: Global = { segment: typeof options['--segment'] === 'string' ? options['--segment'] : undefined };
		if (command === undefined) throw new UsageError('missing the command');
		if (command !== 'start' && (args.includes('--help') || args.includes('-h'))) {
			io.out(COMMAND_USAGE[command] ?? USAGE);
			return 0;
		}
		switch (command) {
			case 'load':
				return await cmdLoad(g, args, io);
			case 'start':
				return await cmdStart(g, args);
			case 'map':
				return await cmdMap(g, args, io);
			case 'help': {
				const topic = args[0];
				if (topic !== undefined && !COMMAND_USAGE[topic])
					throw new UsageError(`help: unknown command '${topic}'`, 'help');
				io.out(topic ? (COMMAND_USAGE[topic] as string) : USAGE);
				return 0;
			}
			default:
				throw new UsageError(`unknown command '${command}'`);
		}
	} catch (e) {
		if (e instanceof UsageError) {
			io.err(`bpftime: ${e.message}\n\n${e.command ? COMMAND_USAGE[e.command] : USAGE}`);
			return 2;
		}
		if (e instanceof BpftimeError) {
			io.err(`bpftime: ${e.message}\n`);
			return 1;
		}
		io.err(`bpftime: ${(e as Error)?.stack ?? String(e)}\n`);
		return 1;
	}
}
