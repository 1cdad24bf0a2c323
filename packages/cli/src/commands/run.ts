// bpftime run <prog.bpf.o | id>: runs one program in this process, on the
// interpreter, the JIT or LLVM, with a context from a file or hex, and prints r0,
// what it changed in its maps and the time per run (upstream's
// `bpftimetool run`). An object file is loaded into a private segment that
// is removed afterwards; an id names a program of the registry, whose maps
// (shared with every attached process) it then changes for real.
import { existsSync, readFileSync, statSync } from 'node:fs';
import { BpftimeError } from '@bpftime/common';
import type { MapDescriptor, Registry } from '@bpftime/handlers';
import type { Btf } from '@bpftime/loader';
import type { Segment } from '@bpftime/shm';
import { type Command, type Context, takeOptions, UsageError } from '../command.js';
import { decodeBtf, plainText, rawValue } from '../format/btf-value.js';
import { openObject } from '../open-object.js';
import { openRegistry, registryModules } from '../registry.js';
import { btfParser, registryBtf } from '../registry-view.js';
import { type Backend, requireBackend, VM_OPTION_SPEC, vmOptions } from '../vm-options.js';

const MAX_REPEAT = 100_000_000;

/**
 * Bytes the verifier lets a program of `progType` read through r1: the
 * registry's context_size() (handlers/native/src/prog/helper_args.cpp).
 * A shorter context is padded with zeros to it, so that a program reading
 * its pt_regs reads zeros rather than memory past the Buffer.
 */
function contextSize(progType: number): number {
	switch (progType) {
		case 5: // BPF_PROG_TYPE_TRACEPOINT: common fields, id, args[6]
			return 64;
		case 17: // BPF_PROG_TYPE_RAW_TRACEPOINT
		case 24: // BPF_PROG_TYPE_RAW_TRACEPOINT_WRITABLE
			return 12 * 8;
		default:
			return 168; // struct pt_regs, x86-64
	}
}

/** --ctx: a file's bytes, else hex bytes (`01 02 ff`, `0102ff`, `0x0102ff`). */
export function parseContext(text: string): Buffer {
	if (existsSync(text)) {
		if (!statSync(text).isFile()) throw new UsageError(`run: --ctx: '${text}' is not a regular file`, 'run');
		try {
			return readFileSync(text);
		} catch (e) {
			const err = e as NodeJS.ErrnoException;
			throw new BpftimeError(err.code ?? 'EIO', `--ctx '${text}': ${err.message}`);
		}
	}
	const digits = text.replace(/^0x/i, '').replace(/[\s,:]/g, '');
	if (digits.length === 0 || !/^[0-9a-f]*$/i.test(digits) || digits.length % 2 !== 0)
		throw new UsageError(
			`run: --ctx: '${text}' is neither a file nor hex bytes (an even number of hex digits: 01 02 ff)`,
			'run',
		);
	return Buffer.from(digits, 'hex');
}

/** How the keys and values of one map print: from its BTF, as `map dump` prints them, else numbers or hex. */
interface MapText {
	key(b: Buffer): string;
	value(b: Buffer): string;
}

function mapText(d: MapDescriptor, btf: Btf | undefined): MapText {
	const decode = (typeId: number, b: Buffer): string => {
		if (btf && typeId !== 0) {
			try {
				return plainText(decodeBtf(btf, typeId, b));
			} catch {
				// A type that does not fit the bytes: the bytes.
			}
		}
		return plainText(rawValue(b));
	};
	// A per-CPU value is one value per CPU, each round_up(value_size, 8) bytes (bpf_map_value_size).
	const stride = Math.ceil(d.valueSize / 8) * 8;
	const perCpu = d.userValueSize !== d.valueSize && stride > 0;
	return {
		key: (b) => decode(d.btfKeyTypeId, b),
		value: (b) => {
			if (!perCpu) return decode(d.btfValueTypeId, b);
			const cpus: string[] = [];
			for (let off = 0; off + stride <= b.length; off += stride)
				cpus.push(decode(d.btfValueTypeId, b.subarray(off, off + d.valueSize)));
			return `[${cpus.join(', ')}]`;
		},
	};
}

interface Snapshot {
	id: number;
	name: string;
	entries: Map<string, Buffer>;
	text: MapText;
}

interface MapChange {
	key: string;
	before: string | null;
	after: string | null;
}

/**
 * Every entry of the maps `ids`; maps that cannot be iterated (ring buffers,
 * perf event arrays) are left out. `btf` parses the registry's BTF objects.
 */
function snapshot(reg: Registry, ids: readonly number[], btf: typeof Btf): Snapshot[] {
	const out: Snapshot[] = [];
	const cache = new Map<number, Btf | null>();
	for (const id of ids) {
		const d = reg.get(id);
		if (d?.kind !== 'map') continue;
		try {
			const m = reg.map(id);
			const entries = new Map<string, Buffer>();
			for (const [k, v] of m.entries()) entries.set(k.toString('hex'), Buffer.from(v));
			out.push({ id, name: d.name, entries, text: mapText(d, registryBtf(reg, btf, d.btfId, cache)) });
		} catch (e) {
			if (!(e instanceof BpftimeError)) throw e;
		}
	}
	return out;
}

function diff(before: Snapshot, after: Snapshot): MapChange[] {
	const changes: MapChange[] = [];
	const { text } = after;
	const key = (hex: string) => text.key(Buffer.from(hex, 'hex'));
	for (const [k, v] of after.entries) {
		const old = before.entries.get(k);
		if (!old) changes.push({ key: key(k), before: null, after: text.value(v) });
		else if (!old.equals(v)) changes.push({ key: key(k), before: text.value(old), after: text.value(v) });
	}
	for (const [k, v] of before.entries)
		if (!after.entries.has(k)) changes.push({ key: key(k), before: text.value(v), after: null });
	return changes;
}

function formatR0(r0: bigint): string {
	const signed = BigInt.asIntN(64, r0);
	return `${r0} (0x${r0.toString(16)}${signed < 0n ? `, signed ${signed}` : ''})`;
}

/** A duration in ns as people read it: 41 ns, 3.2 µs, 12.5 ms, 1.20 s. */
function formatNs(ns: number): string {
	if (ns < 1000) return `${ns.toFixed(ns < 10 ? 1 : 0)} ns`;
	if (ns < 1e6) return `${(ns / 1e3).toFixed(1)} µs`;
	if (ns < 1e9) return `${(ns / 1e6).toFixed(1)} ms`;
	return `${(ns / 1e9).toFixed(2)} s`;
}

function parseRepeat(text: string | true | undefined): number {
	if (text === undefined) return 1;
	const n = typeof text === 'string' && /^\d{1,9}$/.test(text) ? Number(text) : Number.NaN;
	if (!(n >= 1 && n <= MAX_REPEAT))
		throw new UsageError(`run: --repeat: expected a count from 1 to ${MAX_REPEAT} but received '${text}'`, 'run');
	return n;
}

async function runIn(
	reg: Registry,
	progId: number,
	ctxIn: Buffer | undefined,
	repeat: number,
	backend: Backend | undefined,
	json: boolean,
	{ io }: Context,
): Promise<number> {
	const d = reg.get(progId);
	if (!d) throw new BpftimeError('ENOENT', `prog id ${progId}: no such program in the registry`);
	if (d.kind !== 'prog') throw new BpftimeError('EINVAL', `id ${progId}: is a ${d.kind}, not a program`);
	const prog = reg.prog(progId);
	const size = contextSize(d.type);
	const ctx = Buffer.alloc(Math.max(size, ctxIn?.length ?? 0));
	ctxIn?.copy(ctx);
	const btf = await btfParser();
	const before = snapshot(reg, d.mapIds, btf);
	const inst = prog.instantiate(backend === undefined ? {} : { backend });
	let r0 = 0n;
	const t0 = process.hrtime.bigint();
	for (let i = 0; i < repeat; i++) r0 = prog.run(ctx, { backend: inst.backend });
	const elapsed = Number(process.hrtime.bigint() - t0);
	const after = snapshot(reg, d.mapIds, btf);
	const maps = after
		.map((a) => {
			const b = before.find((s) => s.id === a.id) ?? { ...a, entries: new Map() };
			return { id: a.id, name: a.name, changes: diff(b, a) };
		})
		.filter((m) => m.changes.length > 0);
	const perRun = elapsed / repeat;
	if (json) {
		io.out(
			`${JSON.stringify(
				{
					prog: { id: progId, name: d.name, type: d.typeName },
					backend: inst.backend,
					r0: r0.toString(),
					runs: repeat,
					nsPerRun: Math.round(perRun),
					compileTimeNs: inst.compileTimeNs.toString(),
					maps,
				},
				null,
				2,
			)}\n`,
		);
		return 0;
	}
	io.out(`prog '${d.name}' (id ${progId}) on ${inst.backend}: r0 = ${formatR0(r0)}\n`);
	io.out(
		`${repeat} ${repeat === 1 ? 'run' : 'runs'}: ${formatNs(perRun)} per run` +
			`${inst.compileTimeNs > 0n ? ` (compiled in ${formatNs(Number(inst.compileTimeNs))})` : ''}\n`,
	);
	if (maps.length === 0) io.out('maps: none changed\n');
	for (const m of maps) {
		io.out(
			`map '${m.name}' (id ${m.id}): ${m.changes.length} ${m.changes.length === 1 ? 'entry' : 'entries'} changed\n`,
		);
		for (const c of m.changes) {
			if (c.before === null) io.out(`  + key ${c.key} value ${c.after}\n`);
			else if (c.after === null) io.out(`  - key ${c.key} value ${c.before}\n`);
			else io.out(`  ~ key ${c.key} value ${c.before} -> ${c.after}\n`);
		}
	}
	return 0;
}

export const run: Command = {
	name: 'run',
	overview: [
		[
			'run <prog.bpf.o|id> [options]',
			'run a program once or --repeat N times in this\nprocess; print r0, the map entries it changed\nand the time per run',
		],
	],
	usage: `Usage: bpftime run <prog.bpf.o> [--program <name>] [options]
       bpftime run <id> [options]

Runs one program here, on the interpreter, the JIT or LLVM, and prints r0,
every map entry the runs added, changed or deleted (formatted from the map's
BTF, as \`map dump\` prints them), and the time per run. An object file is
loaded into a private segment, removed afterwards; an id names a program of
the registry (\`bpftime load\`), and its runs change the registry's maps for
every process that uses them.

The program's context (r1; r2 is its length) is --ctx, padded with zeros to
the size the program type may read (168 bytes of pt_regs for a uprobe, 64
for a tracepoint); the runs share one context, so writes to it carry over.

Options:
  --program <name>     the program of the object to run (needed when it
                       has several)
  --ctx <file|hex>     the context: a file's bytes, or hex bytes
                       ("01 02 ff", "0102ff"); default: zeros
  --repeat <n>         run n times (default 1); the time is per run,
                       including the call from Node
  --vm <backend>       interpreter, jit or llvm (default: BPFTIME_VM_NAME,
                       else jit)
  --shm-size <MiB>     size of the private segment for an object file
  --json               print one JSON document: prog, backend, r0 (a
                       decimal string), runs, nsPerRun, compileTimeNs, maps
                       [{ id, name, changes: [{ key, before, after }] }]

Example:
  bpftime run malloc.bpf.o --repeat 100000 --vm interpreter
  bpftime run prog.bpf.o --program on_enter --ctx ctx.bin
  bpftime run 3 --ctx "01 00 00 00 2a 00 00 00" --json
`,
	async run(args, ctx) {
		const { options, rest } = takeOptions(
			args,
			{ '--program': 'value', '--ctx': 'value', '--repeat': 'value', '--json': 'flag', ...VM_OPTION_SPEC },
			'run',
			false,
		);
		if (rest.length === 0) throw new UsageError('run: missing the object file or program id', 'run');
		if (rest.length > 1) throw new UsageError(`run: unexpected argument '${rest[1]}'`, 'run');
		const target = rest[0] as string;
		const vm = vmOptions(options, 'run');
		if (vm.verbose) throw new UsageError('run: --verbose is for load and start', 'run');
		const repeat = parseRepeat(options['--repeat']);
		const ctxIn = typeof options['--ctx'] === 'string' ? parseContext(options['--ctx']) : undefined;
		const program = typeof options['--program'] === 'string' ? options['--program'] : undefined;
		const json = options['--json'] === true;
		await requireBackend(vm.backend);

		if (/^\d+$/.test(target) && !existsSync(target)) {
			if (program !== undefined) throw new UsageError('run: --program names a program of an object file', 'run');
			if (vm.shmSizeMb !== undefined) throw new UsageError('run: --shm-size is for object files', 'run');
			const id = Number(target);
			const { seg, reg } = await openRegistry(ctx.segment);
			try {
				if (!Number.isSafeInteger(id) || id >= reg.capacity)
					throw new BpftimeError('ENOENT', `prog id ${target}: no such program in the registry`);
				return await runIn(reg, id, ctxIn, repeat, vm.backend, json, ctx);
			} finally {
				reg.close();
				seg.close();
			}
		}

		const { Registry, Segment } = await registryModules();
		const obj = await openObject(target);
		const names = obj.programs.map((p) => p.name);
		let chosen = program;
		if (chosen === undefined) {
			if (names.length === 0) throw new BpftimeError('ENOENT', `object '${target}': has no program`);
			if (names.length > 1)
				throw new UsageError(
					`run: '${target}' has ${names.length} programs (${names.join(', ')}); choose one with --program`,
					'run',
				);
			chosen = names[0] as string;
		} else if (!names.includes(chosen)) {
			throw new BpftimeError(
				'ENOENT',
				`program '${chosen}': no such program in '${target}' (programs: ${names.join(', ') || 'none'})`,
			);
		}
		// A private segment: nothing of this run reaches the registry other processes see.
		const name = `bpftime_run_${process.pid}_${Date.now().toString(36)}`;
		let seg: Segment | undefined;
		let reg: Registry | undefined;
		try {
			seg = Segment.create({ name, ...(vm.shmSizeMb === undefined ? {} : { sizeMb: vm.shmSizeMb }) });
			reg = Registry.create(seg);
			const loaded = await obj.load(reg, { programs: [chosen] });
			const id = loaded.programs.get(chosen)?.id as number;
			return await runIn(reg, id, ctxIn, repeat, vm.backend, json, ctx);
		} finally {
			obj.close();
			reg?.close();
			seg?.close();
			if (Segment.exists({ name })) Segment.remove({ name });
		}
	},
};
