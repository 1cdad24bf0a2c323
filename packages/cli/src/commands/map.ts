// bpftime map list|dump|lookup|update|delete: reads and writes the maps of
// the registry, as `bpftool map` does for the kernel's. Keys and values are
// formatted from the BTF the object carried (format/btf-value.ts), numbers or
// hex bytes otherwise; per-CPU values one per CPU; maps of counts by bucket
// drawn as histograms (format/hist.ts).
// The kernel's numbers from @bpftime/common: importing @bpftime/handlers here would load its
// native addon at start-up for every command.
import { BpftimeError, MapType, UpdateFlags } from '@bpftime/common';
import type { BpfMap, MapDescriptor, Registry } from '@bpftime/handlers';
import type { Btf } from '@bpftime/loader';
import { type Command, type Context, takeOptions, UsageError } from '../command.js';
import { decodeBtf, encodeArgument, hexBytes, type Plain, plainText, rawValue } from '../format/btf-value.js';
import { type Bucket, buckets, drawHist, type HistSpec } from '../format/hist.js';
import { jsonLine, jsonText } from '../format/json.js';
import { openRegistry } from '../registry.js';
import { btfParser, findHandler, registryBtf, shortTypeName } from '../registry-view.js';

/** The raw text of a key or value in --json (`key`, `value`): what `map dump --json` has always printed. */
function rawText(b: Buffer): string {
	const v = rawValue(b);
	return typeof v === 'bigint' ? v.toString() : (v as string);
}

const PER_CPU_TYPES = new Set<number>([
	MapType.PercpuHash,
	MapType.PercpuArray,
	MapType.LruPercpuHash,
	MapType.PercpuCgroupStorage,
]);

/** How the keys and values of one map read and write: from its BTF when it has some. */
class MapFormat {
	readonly map: BpfMap;
	readonly desc: MapDescriptor;
	readonly btf: Btf | undefined;
	/** A per-CPU map: a value per CPU for each key. */
	readonly perCpuMap: boolean;
	/** Values per key: the number of CPUs for a per-CPU map, else 1. */
	readonly cpus: number;
	/** Bytes of one CPU's value in a per-CPU value (round_up(valueSize, 8), as the kernel's bpf_map_value_size). */
	readonly stride: number;

	constructor(reg: Registry, desc: MapDescriptor, parser: typeof Btf | undefined) {
		this.desc = desc;
		this.map = reg.map(desc.id);
		const typed = desc.btfKeyTypeId !== 0 || desc.btfValueTypeId !== 0;
		this.btf = typed && parser ? registryBtf(reg, parser, desc.btfId) : undefined;
		// By type, as the kernel's bpf_map_value_size: a machine of one CPU still gets "CPU 0".
		const perCpu = PER_CPU_TYPES.has(desc.type) || desc.userValueSize !== desc.valueSize;
		this.perCpuMap = perCpu;
		this.stride = perCpu ? Math.ceil(desc.valueSize / 8) * 8 : desc.valueSize;
		this.cpus = perCpu && this.stride > 0 ? desc.userValueSize / this.stride : 1;
	}

	#decode(typeId: number, b: Buffer): Plain {
		if (this.btf && typeId !== 0) {
			try {
				return decodeBtf(this.btf, typeId, b);
			} catch {
				// A type that does not fit the bytes (BTF of another build): show the bytes.
			}
		}
		return rawValue(b);
	}

	key(b: Buffer): Plain {
		return this.#decode(this.desc.btfKeyTypeId, b);
	}

	/** One CPU's value (or the value) as its type says. */
	value(b: Buffer): Plain {
		return this.#decode(this.desc.btfValueTypeId, b.subarray(0, this.desc.valueSize));
	}

	/** The value of each CPU of a per-CPU value. */
	perCpu(b: Buffer): Buffer[] {
		return Array.from({ length: this.cpus }, (_, i) => b.subarray(i * this.stride, i * this.stride + this.stride));
	}

	parseKey(text: string): Buffer {
		return encodeArgument(text, this.desc.keySize, 'key', this.btf, this.desc.btfKeyTypeId);
	}

	/** A value from the command line; a per-CPU map gets it on every CPU, as bpftool writes one. */
	parseValue(text: string): Buffer {
		const one = encodeArgument(text, this.desc.valueSize, 'value', this.btf, this.desc.btfValueTypeId);
		if (!this.perCpuMap) return one;
		const all = Buffer.alloc(this.desc.userValueSize);
		for (let i = 0; i < this.cpus; i++) one.copy(all, i * this.stride);
		return all;
	}

	/** One entry as --json writes it: raw `key`/`value` text, `formatted` from BTF, `values` per CPU. */
	jsonEntry(k: Buffer, v: Buffer) {
		const entry: Record<string, unknown> = { key: rawText(k), value: !this.perCpuMap ? rawText(v) : hexBytes(v) };
		if (this.perCpuMap)
			entry.values = this.perCpu(v).map((c, cpu) => ({ cpu, value: rawText(c.subarray(0, this.desc.valueSize)) }));
		// The shape of bpftool's "formatted": { key, value } or { key, values: [{ cpu, value }] }.
		if (this.btf)
			entry.formatted = !this.perCpuMap
				? { key: this.key(k), value: this.value(v) }
				: { key: this.key(k), values: this.perCpu(v).map((c, cpu) => ({ cpu, value: this.value(c) })) };
		return entry;
	}

	/** One entry as text: `key <k> value <v>`, or a line per CPU. */
	textEntry(k: Buffer, v: Buffer): string {
		if (!this.perCpuMap) return `key ${plainText(this.key(k))} value ${plainText(this.value(v))}\n`;
		const lines = this.perCpu(v).map((c, cpu) => `    value (CPU ${cpu}): ${plainText(this.value(c))}\n`);
		return `key ${plainText(this.key(k))}\n${lines.join('')}`;
	}
}

function describe(d: MapDescriptor): string {
	return `map '${d.name}' (id ${d.id})`;
}

/** The options of the histogram: `--hist log2|linear|off`, `--min`, `--step`. */
function histSpec(options: Record<string, string | true>): HistSpec | 'off' | undefined {
	const kind = options['--hist'];
	const int = (name: string) => {
		const t = options[name];
		if (typeof t !== 'string') return undefined;
		if (!/^-?\d+$/.test(t)) throw new UsageError(`map dump: ${name} takes an integer, received '${t}'`, 'map');
		return BigInt(t);
	};
	const min = int('--min');
	const step = int('--step');
	if (step !== undefined && step <= 0n)
		throw new UsageError(`map dump: --step must be positive, received ${step}`, 'map');
	if (kind === undefined) {
		if (min !== undefined || step !== undefined)
			throw new UsageError('map dump: --min and --step go with --hist linear', 'map');
		return undefined;
	}
	if (kind === 'off') return 'off';
	if (kind !== 'log2' && kind !== 'linear')
		throw new UsageError(`map dump: --hist takes log2, linear or off, received '${String(kind)}'`, 'map');
	if (kind === 'log2' && (min !== undefined || step !== undefined))
		throw new UsageError('map dump: --min and --step go with --hist linear', 'map');
	return { kind, min, step };
}

/** A histogram of the map: its title (`@hist`, `@hist[42]`) and counts by bucket. */
interface Series {
	title: string;
	key?: Plain;
	counts: bigint[];
}

function asCount(v: Plain): bigint | undefined {
	return typeof v === 'bigint' ? v : typeof v === 'boolean' ? BigInt(v) : undefined;
}

/** Adds up the CPUs of a value that is a count. */
function countOf(f: MapFormat, v: Buffer): bigint | undefined {
	let sum = 0n;
	for (const c of !f.perCpuMap ? [v] : f.perCpu(v)) {
		const n = asCount(f.value(c));
		if (n === undefined) return undefined;
		sum += n;
	}
	return sum;
}

/** Map names that say the map holds counts by bucket (bpftrace's @hist, libbpf-tools' slots). */
const HIST_NAMES = /hist|slots/i;
const HIST_MEMBERS = ['slots', 'hist'];
/** Bucket indexes past this are not a histogram's (a hash map of pids, say). */
const MAX_BUCKETS = 4096;

/**
 * The histograms a map holds, or undefined when it holds none:
 * - values that are a struct with a `slots` or `hist` array of counts
 *   (libbpf-tools' `struct hist`): one histogram per key;
 * - counts by bucket index (an array or hash keyed by the bucket) in a map
 *   whose name says hist/slots, or any such map when `--hist` asks: one.
 */
function histograms(f: MapFormat, entries: [Buffer, Buffer][], forced: boolean): Series[] | undefined {
	const name = `@${f.desc.name}`;
	if (!f.perCpuMap && entries.length > 0) {
		const series: Series[] = [];
		for (const [k, v] of entries) {
			const value = f.value(v);
			if (value === null || typeof value !== 'object' || Array.isArray(value)) break;
			const member = HIST_MEMBERS.find((m) => Array.isArray(value[m]));
			const slots = member === undefined ? undefined : (value[member] as Plain[]).map(asCount);
			if (!slots || slots.some((c) => c === undefined)) break;
			const rest = Object.entries(value).filter(([m]) => m !== member);
			const key = f.key(k);
			const extra = rest.length ? ` ${rest.map(([m, x]) => `${m}: ${plainText(x)}`).join(', ')}` : '';
			series.push({ title: `${name}[${plainText(key)}]${extra}`, key, counts: slots as bigint[] });
		}
		if (series.length === entries.length) return series;
	}
	if (!forced && !HIST_NAMES.test(f.desc.name)) return undefined;
	const counts: bigint[] = [];
	for (const [k, v] of entries) {
		const bucket = asCount(f.key(k));
		const n = countOf(f, v);
		if (bucket === undefined || bucket < 0n || bucket >= BigInt(MAX_BUCKETS) || n === undefined) return undefined;
		counts[Number(bucket)] = (counts[Number(bucket)] ?? 0n) + n;
	}
	for (let i = 0; i < counts.length; i++) counts[i] ??= 0n;
	return [{ title: name, counts }];
}

async function list(args: string[], { segment, io }: Context): Promise<number> {
	const { options, rest: extra } = takeOptions(args, { '--json': 'flag' }, 'map', false);
	if (extra.length) throw new UsageError(`map list: unexpected argument '${extra[0]}'`, 'map');
	const { seg, reg } = await openRegistry(segment);
	try {
		const maps = reg.list().filter((d): d is MapDescriptor => d.kind === 'map');
		if (options['--json'] === true) {
			io.out(
				jsonText(
					maps.map((d) => ({
						id: d.id,
						name: d.name,
						type: shortTypeName(d.typeName),
						keySize: d.keySize,
						valueSize: d.valueSize,
						maxEntries: d.maxEntries,
						flags: d.flags,
						btfId: d.btfId,
						frozen: d.frozen,
					})),
				),
			);
			return 0;
		}
		for (const d of maps) {
			io.out(
				`${d.id}: ${shortTypeName(d.typeName)} name '${d.name}' key ${d.keySize}B value ${d.valueSize}B max_entries ${d.maxEntries}\n`,
			);
		}
	} finally {
		reg.close();
		seg.close();
	}
	return 0;
}

/** The stacks of a stack trace map, one frame a line, named through the ELF symbols of process `pid`. */
async function dumpStacks(map: BpfMap, pid: number | undefined, json: boolean): Promise<string> {
	const { StackTraceMap, Symbolizer } = await import('@bpftime/maps-userspace');
	const stacks = new StackTraceMap(map);
	const sym = pid === undefined ? undefined : new Symbolizer(pid);
	const all = [...stacks.entries()];
	if (json) {
		const frames = (ips: bigint[]) =>
			ips.map((ip) => {
				const f = sym?.symbolize(ip);
				return { address: `0x${ip.toString(16)}`, symbol: f?.symbol, offset: f?.offset?.toString(), module: f?.module };
			});
		return `${JSON.stringify({ id: map.id, name: map.name, type: 'stack_trace', stacks: all.map(([id, ips]) => ({ id, frames: frames(ips) })) }, null, 2)}\n`;
	}
	let out = '';
	for (const [id, ips] of all) {
		out += `stack ${id}:\n`;
		for (const ip of ips) out += `    ${sym ? sym.format(ip) : `0x${ip.toString(16)}`}\n`;
	}
	return `${out}${map.describe()}: ${all.length} ${all.length === 1 ? 'stack' : 'stacks'}\n`;
}

/** One dump of the map: entries, or its histograms. */
function render(f: MapFormat, json: boolean, hist: HistSpec | 'off' | undefined, line = false): string {
	let entries: [Buffer, Buffer][];
	try {
		entries = [...f.map.entries()].map(([k, v]) => [Buffer.from(k), Buffer.from(v)] as [Buffer, Buffer]);
	} catch (e) {
		// Queues and stacks have no keys to walk, as the kernel's get_next_key refuses them.
		if (e instanceof BpftimeError && e.code === 'EINVAL' && f.desc.keySize === 0)
			throw new BpftimeError(
				'EINVAL',
				`${describe(f.desc)}: dump: a ${shortTypeName(f.desc.typeName)} map has no keys to walk (EINVAL); \`bpftime map lookup ${f.desc.id} hex:\` shows the value a pop would take`,
			);
		throw e;
	}
	const series = hist === 'off' ? undefined : histograms(f, entries, hist !== undefined);
	if (hist !== undefined && hist !== 'off' && !series)
		throw new BpftimeError(
			'EINVAL',
			`${describe(f.desc)}: not a histogram: --hist needs integer keys below ${MAX_BUCKETS} (the buckets) with counts as values, or values with a 'slots' array`,
		);
	const spec: HistSpec = hist && hist !== 'off' ? hist : { kind: 'log2' };
	const d = f.desc;
	if (json) {
		return (line ? jsonLine : jsonText)({
			time: line ? new Date().toISOString() : undefined,
			id: d.id,
			name: d.name,
			type: shortTypeName(d.typeName),
			keySize: d.keySize,
			valueSize: d.valueSize,
			btfId: f.btf ? d.btfId : undefined,
			entries: entries.map(([k, v]) => f.jsonEntry(k, v)),
			histograms: series?.map((s) => ({
				key: s.key,
				kind: spec.kind,
				buckets: buckets(s.counts, spec).filter((b: Bucket) => b.count > 0n),
			})),
		});
	}
	if (series) {
		return series.map((s) => `${s.title}:\n${drawHist(s.counts, spec)}\n`).join('');
	}
	let out = '';
	for (const [k, v] of entries) out += f.textEntry(k, v);
	return `${out}${describe(d)}: ${entries.length} ${entries.length === 1 ? 'entry' : 'entries'}\n`;
}

function positiveNumber(text: string | true | undefined, name: string): number | undefined {
	if (text === undefined) return undefined;
	const n = Number(text);
	if (typeof text !== 'string' || !/^\d+(\.\d+)?$/.test(text) || !(n > 0))
		throw new UsageError(`map dump: ${name} takes a positive number, received '${String(text)}'`, 'map');
	return n;
}

/** Redraws `frame()` every `seconds` until SIGINT/SIGTERM or `count` frames: in place on a terminal. */
async function watch(
	ctx: Context,
	seconds: number,
	count: number | undefined,
	frame: () => string | Promise<string>,
	stream = false,
): Promise<void> {
	let stop = false;
	let wake: (() => void) | undefined;
	const onSignal = () => {
		stop = true;
		wake?.();
	};
	process.on('SIGINT', onSignal);
	process.on('SIGTERM', onSignal);
	let lines = 0;
	try {
		for (let n = 0; !stop && (count === undefined || n < count); n++) {
			if (n > 0) {
				await new Promise<void>((resolve) => {
					const timer = setTimeout(resolve, seconds * 1000);
					wake = () => {
						clearTimeout(timer);
						resolve();
					};
				});
				if (stop) break;
			}
			if (stream) {
				// --json: one JSON document a line (JSON Lines), each with its time, never redrawn.
				ctx.io.out(await frame());
				continue;
			}
			const text = `${new Date().toTimeString().slice(0, 8)}\n${await frame()}`;
			// On a terminal: back to the first line of the previous frame (CSI n F) and clear to the
			// end (CSI J); a frame taller than the screen scrolled out of reach, so home and clear
			// the screen instead, as watch(1) does.
			// A terminal of unknown size (rows 0) gets the in-place redraw.
			const rows = process.stdout.rows || Number.POSITIVE_INFINITY;
			if (ctx.io.tty && lines > 0) ctx.io.out(lines < rows ? `\x1b[${lines}F\x1b[J` : '\x1b[H\x1b[2J');
			else if (n > 0) ctx.io.out('\n');
			ctx.io.out(text);
			lines = text.split('\n').length - 1;
		}
	} finally {
		process.off('SIGINT', onSignal);
		process.off('SIGTERM', onSignal);
	}
}

async function dump(args: string[], ctx: Context): Promise<number> {
	const { options, rest: names } = takeOptions(
		args,
		{
			'--json': 'flag',
			'--pid': 'value',
			'--hist': 'value',
			'--min': 'value',
			'--step': 'value',
			'--watch': 'value',
			'--count': 'value',
		},
		'map',
		false,
	);
	if (names.length === 0) throw new UsageError('map dump: missing the map name or id', 'map');
	if (names.length > 1) throw new UsageError(`map dump: one map at a time, received ${names.join(' ')}`, 'map');
	const pidText = options['--pid'];
	const pid = typeof pidText === 'string' ? Number(pidText) : undefined;
	if (pid !== undefined && !(Number.isInteger(pid) && pid > 0))
		throw new UsageError(`map dump: --pid takes a process id, received '${pidText}'`, 'map');
	const hist = histSpec(options);
	const every = positiveNumber(options['--watch'], '--watch');
	const countText = options['--count'];
	if (countText !== undefined && (typeof countText !== 'string' || !/^[1-9]\d*$/.test(countText)))
		throw new UsageError(`map dump: --count takes a positive integer, received '${String(countText)}'`, 'map');
	if (countText !== undefined && every === undefined)
		throw new UsageError('map dump: --count goes with --watch', 'map');
	const count = countText === undefined ? undefined : Number(countText);
	const json = options['--json'] === true;
	const { seg, reg } = await openRegistry(ctx.segment);
	try {
		const d = findHandler(reg, 'map', names[0] as string);
		if (d.type === MapType.StackTrace) {
			const map = reg.map(d.id);
			const frame = () => dumpStacks(map, pid, json);
			if (every === undefined) ctx.io.out(await frame());
			else if (json) await watch(ctx, every, count, async () => jsonLine(JSON.parse(await frame())), true);
			else await watch(ctx, every, count, frame);
			return 0;
		}
		const f = new MapFormat(reg, d, await btfParser());
		if (every === undefined) ctx.io.out(render(f, json, hist));
		else await watch(ctx, every, count, () => render(f, json, hist, json), json);
		return 0;
	} finally {
		reg.close();
		seg.close();
	}
}

/** `map lookup|update|delete <map> <key> …`: the map, its format, and the key. */
async function withEntry<T>(
	ctx: Context,
	sub: string,
	args: string[],
	spec: Record<string, 'value' | 'flag'>,
	operands: number,
	body: (f: MapFormat, key: Buffer, rest: string[], options: Record<string, string | true>) => T,
): Promise<T> {
	const { options, rest } = takeOptions(args, spec, 'map', false);
	const need = ['the map name or id', 'the key', 'the value'].slice(0, operands);
	if (rest.length < operands) throw new UsageError(`map ${sub}: missing ${need[rest.length]}`, 'map');
	if (rest.length > operands) throw new UsageError(`map ${sub}: unexpected argument '${rest[operands]}'`, 'map');
	const { seg, reg } = await openRegistry(ctx.segment);
	try {
		const d = findHandler(reg, 'map', rest[0] as string);
		const f = new MapFormat(reg, d, await btfParser());
		let key: Buffer;
		try {
			key = f.parseKey(rest[1] as string);
		} catch (e) {
			if (e instanceof BpftimeError) throw new BpftimeError(e.code, `${describe(d)}: ${sub}: ${e.message}`);
			throw e;
		}
		return body(f, key, rest.slice(2), options);
	} finally {
		reg.close();
		seg.close();
	}
}

async function lookup(args: string[], ctx: Context): Promise<number> {
	return withEntry(ctx, 'lookup', args, { '--json': 'flag' }, 2, (f, key, _rest, options) => {
		const v = f.map.lookup(key);
		if (v === undefined)
			throw new BpftimeError(
				'ENOENT',
				`${describe(f.desc)}: lookup key ${plainText(f.key(key))}: no such entry (ENOENT); \`bpftime map dump ${f.desc.id}\` lists the keys`,
			);
		ctx.io.out(options['--json'] === true ? jsonText(f.jsonEntry(key, v)) : f.textEntry(key, v));
		return 0;
	});
}

/** What --json says of a changed entry: the map and the key. */
function changed(f: MapFormat, key: Buffer) {
	return { id: f.desc.id, name: f.desc.name, key: rawText(key), formatted: f.btf ? { key: f.key(key) } : undefined };
}

const FLAG_NAMES: Record<string, number> = {
	any: UpdateFlags.Any,
	noexist: UpdateFlags.NoExist,
	exist: UpdateFlags.Exist,
};

async function update(args: string[], ctx: Context): Promise<number> {
	const spec = { '--flags': 'value', '--json': 'flag' } as const;
	const flagText = takeOptions(args, spec, 'map', false).options['--flags'] ?? 'any';
	const flags = typeof flagText === 'string' ? FLAG_NAMES[flagText] : undefined;
	if (flags === undefined)
		throw new UsageError(`map update: --flags takes any, noexist or exist, received '${String(flagText)}'`, 'map');
	return withEntry(ctx, 'update', args, spec, 3, (f, key, [valueText], options) => {
		let value: Buffer;
		try {
			value = f.parseValue(valueText as string);
		} catch (e) {
			if (e instanceof BpftimeError) throw new BpftimeError(e.code, `${describe(f.desc)}: update: ${e.message}`);
			throw e;
		}
		try {
			f.map.update(key, value, flags);
		} catch (e) {
			if (!(e instanceof BpftimeError)) throw e;
			const hint: Record<string, string> = {
				EEXIST: 'the key exists and --flags noexist was given',
				ENOENT: 'the key does not exist and --flags exist was given',
				E2BIG: `the map is full (max_entries ${f.desc.maxEntries}); delete entries first`,
				EPERM: 'the map is frozen or read-only for user space',
			};
			throw new BpftimeError(
				e.code,
				`${describe(f.desc)}: update key ${plainText(f.key(key))}: ${e.code}${hint[e.code] ? `: ${hint[e.code]}` : ` (${e.message})`}`,
			);
		}
		if (options['--json'] === true) ctx.io.out(jsonText({ ...changed(f, key), updated: true }));
		else ctx.io.out(`${describe(f.desc)}: key ${plainText(f.key(key))} updated\n`);
		return 0;
	});
}

async function del(args: string[], ctx: Context): Promise<number> {
	return withEntry(ctx, 'delete', args, { '--json': 'flag' }, 2, (f, key, _rest, options) => {
		let deleted: boolean;
		try {
			deleted = f.map.delete(key);
		} catch (e) {
			if (e instanceof BpftimeError && e.code === 'EINVAL' && f.desc.keySize === 0)
				throw new BpftimeError(
					'EINVAL',
					`${describe(f.desc)}: delete: EINVAL: a ${shortTypeName(f.desc.typeName)} map has no keys to delete; its programs pop values with bpf_map_pop_elem()`,
				);
			if (e instanceof BpftimeError && e.code === 'EINVAL')
				throw new BpftimeError(
					'EINVAL',
					`${describe(f.desc)}: delete: EINVAL: the entries of a map of type ${shortTypeName(f.desc.typeName)} cannot be deleted (every key exists); \`bpftime map update\` sets one to 0`,
				);
			throw e;
		}
		if (!deleted)
			throw new BpftimeError(
				'ENOENT',
				`${describe(f.desc)}: delete key ${plainText(f.key(key))}: no such entry (ENOENT)`,
			);
		if (options['--json'] === true) ctx.io.out(jsonText({ ...changed(f, key), deleted: true }));
		else ctx.io.out(`${describe(f.desc)}: key ${plainText(f.key(key))} deleted\n`);
		return 0;
	});
}

/** The subcommands of `bpftime map`. */
const subcommands = new Map([
	['list', list],
	['dump', dump],
	['lookup', lookup],
	['update', update],
	['delete', del],
]);

export const map: Command = {
	name: 'map',
	overview: [
		['map list [--json]', 'list the maps of the registry'],
		['map dump <name|id>', 'print every entry of a map, or its histogram'],
		['map lookup <map> <key>', 'print one entry'],
		['map update <map> <key> <value>', 'write one entry'],
		['map delete <map> <key>', 'remove one entry'],
	],
	usage: `Usage: bpftime map list [--json]
       bpftime map dump <name|id> [--json] [--pid <pid>] [--hist log2|linear|off
                        [--min <n>] [--step <n>]] [--watch <seconds> [--count <n>]]
       bpftime map lookup <name|id> <key> [--json]
       bpftime map update <name|id> <key> <value> [--flags any|noexist|exist] [--json]
       bpftime map delete <name|id> <key> [--json]

list    one line per map: id, type, name, key and value sizes, max entries
dump    every entry of the map, one per line: "key <k> value <v>". Keys and
        values are formatted from the BTF the object carried (structs as
        {member: value}, arrays, enums by name, char arrays as strings);
        without BTF, values of 1, 2, 4 or 8 bytes are little-endian unsigned
        integers, others hex bytes. A per-CPU map prints one value per CPU.
        --json prints one JSON document: each entry's raw "key" and "value"
        ("values" per CPU), and "formatted" from BTF as bpftool prints it.
        A stack trace map prints each stack, one frame a line; with --pid,
        each frame is named from the ELF symbols of that process (the one
        that recorded them): "function+0x1f (/path/to/module)".
lookup  the entry of one key; exit 1 with ENOENT when there is none
update  writes one entry (a per-CPU map gets the value on every CPU)
delete  removes one entry; exit 1 with ENOENT when there is none

Keys and values on the command line: an integer (42, 0x2a, -1) for a key or
value of 1, 2, 4 or 8 bytes, the name of a value of its BTF enum, its bytes
as hex:0a0b0c0d (any size), or, when the map has BTF, JSON as dump --json
shows it ('{"pid": 1, "comm": "sh", "st": "DONE"}'; members left out are 0).

Histograms: a map of counts by bucket (an array or hash keyed by the bucket
index, named like hist or slots), or one whose values hold a 'slots' array
(libbpf-tools' struct hist), is drawn as bpftrace draws hist(): bucket i of a
log2 histogram counts [2^i, 2^(i+1)) (bucket 0 also 0). --hist log2 or
linear draws any map of counts; a linear histogram's bucket i counts
[min + i*step, min + (i+1)*step) (--min, default 0; --step, default 1);
--hist off prints the entries instead.

--watch <seconds> redraws the dump every <seconds> (in place on a terminal)
until Ctrl-C, or <n> times with --count; with --json it writes one JSON
document a line (JSON Lines), each with its "time".

Examples:
  bpftime map dump malloc_calls
  bpftime map dump hist --watch 1
  bpftime map update counts 7 0x10 --flags noexist
  bpftime map lookup counts 7 --json
  bpftime map update events 1 '{"pid": 42, "comm": "bash"}'
`,
	async run(args, ctx) {
		const [sub, ...rest] = args;
		if (sub === undefined)
			throw new UsageError('map: missing the subcommand (list, dump, lookup, update, delete)', 'map');
		const run = subcommands.get(sub);
		if (!run) throw new UsageError(`map: unknown subcommand '${sub}'`, 'map');
		return run(rest, ctx);
	},
};
