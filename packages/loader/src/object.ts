// BpfObject: an eBPF object file (clang -target bpf -g -O2) opened and
// prepared as libbpf's bpf_object__open() + bpf_object__relocate() would,
// then loaded into a registry and attached.
//
//   const obj = BpfObject.open('prog.bpf.o');
//   obj.setRodata('target_pid', 1234);
//   await obj.load(registry);
//   await obj.attachAll({ binary: '/usr/bin/victim' });

import { readFileSync, statSync } from 'node:fs';
import { basename } from 'node:path';
import { BpftimeError, expectString, expectU32 } from '@bpftime/common';
import { findFuncOffset, resolveBinaryPath } from './attach/uprobe.js';
import { findUsdtProbes, type UsdtProbe } from './attach/usdt.js';
import { BTF_INT_BOOL, BTF_INT_SIGNED, Btf, BtfKind } from './btf/btf.js';
import { type BtfExt, type LineInfo, parseBtfExt } from './btf/ext.js';
import { hex, malformed } from './bytes.js';
import { type AppliedCoreRelo, applyCoreRelocations, coreTarget, type TargetBtfSource } from './core/apply.js';
import { type DescribeOptions, describeObject } from './describe.js';
import { EM_BPF, ET_REL, SHT_PROGBITS, SHT_REL, SHT_SYMTAB } from './elf/constants.js';
import { ElfFile, type ElfSection, type ElfSymbol } from './elf/elf-file.js';
import { INSN_SIZE } from './insn.js';
import { BPF_OBJ_NAME_LEN, isMapInMap, MapType, ProgFlags, ProgType } from './kernel.js';
import {
	collectMapSlots,
	dataMap,
	dataSectionKind,
	fixupDatasecs,
	type MapSources,
	type ObjectMapSpec,
	parseBtfMaps,
	parseLegacyMaps,
} from './maps.js';
import { collectFuncs, type Func, isCodeSection, type ObjectProgSpec } from './programs.js';
import { isRegistryLike, type RegistryLike, registryTarget } from './registry-target.js';
import {
	collectProgRelocs,
	linkProgram,
	markPseudoFuncs,
	type RelocContext,
	resolveMapReferences,
} from './relocate.js';
import { type AttachPoint, findSecDef, parseAttachPoint, SecFlags } from './sections.js';
import type { LinkRequest, LoadTarget, MapCreateRequest, PerfEventRequest } from './target.js';

export interface OpenOptions {
	/**
	 * The object's name (libbpf obj->name), which prefixes the names of its
	 * global data maps (`<name>.rodata`). Default: the file name up to its
	 * first '.', or `object` for a Buffer.
	 */
	name?: string;
	/**
	 * Target BTF for CO-RE relocations: a path to a raw BTF file or to an ELF
	 * file with a .BTF section, its bytes, or a parsed `Btf`. Default:
	 * /sys/kernel/btf/vmlinux, read only when the object has CO-RE
	 * relocations that need a target.
	 */
	targetBtf?: TargetBtfSource;
}

export interface LoadOptions {
	/** Load only these programs (libbpf bpf_program__set_autoload()); default: all. */
	programs?: string[];
}

/** A uprobe/usdt/tracepoint target given at attach time instead of the SEC name's. */
export type AttachTarget =
	| { kind: 'uprobe'; binary: string; func?: string; offset?: bigint | number; retprobe?: boolean }
	| { kind: 'usdt'; binary: string; provider: string; name: string }
	| { kind: 'tracepoint'; category: string; name: string }
	| { kind: 'raw_tracepoint'; name: string };

export interface AttachOptions {
	/** Only events of this process (-1, the default: every process). */
	pid?: number;
	/** The BPF cookie the program reads with bpf_get_attach_cookie(); a u64. */
	cookie?: bigint;
	/** For `uprobe/<func>` sections that name no binary. */
	binary?: string;
}

/** A map created in the registry. */
export interface LoadedMap {
	readonly name: string;
	readonly id: number;
	readonly spec: ObjectMapSpec;
}

/** A program loaded into the registry. */
export interface LoadedProgram {
	readonly name: string;
	readonly id: number;
	readonly spec: ObjectProgSpec;
}

export interface LoadedObject {
	readonly maps: ReadonlyMap<string, LoadedMap>;
	readonly programs: ReadonlyMap<string, LoadedProgram>;
}

/** A program attached to an event: a link in the registry and the perf events it owns. */
export class Link implements Disposable {
	readonly program: string;
	/** What it is attached to, in words: `uprobe /usr/bin/bash:readline`. */
	readonly target: string;
	readonly id: number;
	readonly perfEventIds: readonly number[];
	#release: ((id: number) => void) | undefined;
	#extraLinks: readonly number[];

	/** @internal */
	constructor(
		program: string,
		target: string,
		ids: { links: number[]; perfEvents: number[] },
		release: (id: number) => void,
	) {
		this.program = program;
		this.target = target;
		this.id = ids.links[0] as number;
		this.#extraLinks = ids.links.slice(1);
		this.perfEventIds = ids.perfEvents;
		this.#release = release;
	}

	/** Every link id (a USDT probe with several call sites has one per site). */
	get linkIds(): readonly number[] {
		return [this.id, ...this.#extraLinks];
	}

	get closed(): boolean {
		return this.#release === undefined;
	}

	/** Detaches: releases the links, then their perf events. */
	close(): void {
		const release = this.#release;
		if (!release) return;
		this.#release = undefined;
		releaseAll([...[...this.linkIds].reverse(), ...[...this.perfEventIds].reverse()], release);
	}

	[Symbol.dispose](): void {
		this.close();
	}
}

interface Parsed {
	elf: ElfFile;
	btf: Btf | undefined;
	ext: BtfExt | undefined;
	license: string;
	kernelVersion: number;
	maps: ObjectMapSpec[];
	programs: ObjectProgSpec[];
	core: AppliedCoreRelo[];
}

function objectNameOf(path: string): string {
	const base = basename(path);
	const dot = base.indexOf('.');
	return dot < 0 ? base : base.slice(0, dot);
}

/** The whole of libbpf's bpf_object__open() and relocation, on bytes. */
function parseObject(buf: Buffer, objName: string, targetBtf: TargetBtfSource | undefined): Parsed {
	const elf = ElfFile.parse(buf, 'elf');
	if (elf.header.type !== ET_REL || (elf.header.machine !== 0 && elf.header.machine !== EM_BPF)) {
		throw malformed(
			`elf: not an eBPF object file: e_type ${elf.header.type} (expected ET_REL 1), e_machine ${elf.header.machine} (expected EM_BPF ${EM_BPF})`,
		);
	}
	const symtabs = elf.sections.filter((s) => s.type === SHT_SYMTAB);
	if (symtabs.length === 0) throw malformed('elf: the object has no symbol table');
	if (symtabs.length > 1) throw malformed('elf: multiple symbol tables');
	const symtab = symtabs[0] as ElfSection;
	const symbols = elf.symbols(symtab);

	let license = '';
	let kernelVersion = 0;
	let btf: Btf | undefined;
	let ext: BtfExt | undefined;
	let legacyMaps: ElfSection | undefined;
	let btfMaps: ElfSection | undefined;
	const btfSec = elf.sectionByName('.BTF');
	if (btfSec) {
		if (btfSec.type !== SHT_PROGBITS)
			throw malformed(`elf: section '.BTF' has type ${btfSec.type}, expected SHT_PROGBITS`);
		btf = Btf.parse(btfSec.data, 'BTF');
	}
	const extSec = elf.sectionByName('.BTF.ext');
	if (extSec && btf) ext = parseBtfExt(extSec.data, btf);

	for (const s of elf.sections) {
		if (s.name === 'license') {
			const nul = s.data.indexOf(0);
			license = s.data.toString('latin1', 0, Math.min(nul < 0 ? s.data.length : nul, 63));
		} else if (s.name === 'version') {
			if (s.size !== 4 || s.data.length !== 4) throw malformed(`elf: invalid kver section size ${s.size}, expected 4`);
			kernelVersion = s.data.readUInt32LE(0);
		} else if (s.name === 'maps') {
			legacyMaps = s;
		} else if (s.name === '.maps') {
			btfMaps = s;
		} else if (s.name === '.kconfig' || s.name === '.ksyms') {
			throw new BpftimeError(
				'EOPNOTSUPP',
				`elf: section '${s.name}': externs (__kconfig, __ksym) are not supported: bpftime has no kernel symbols or kernel config`,
			);
		}
	}

	const src: MapSources = { elf, symbols, btf, objName };
	fixupDatasecs(src);
	const maps: ObjectMapSpec[] = [];
	if (legacyMaps) maps.push(...parseLegacyMaps(src, legacyMaps));
	if (btfMaps) maps.push(...parseBtfMaps(src, btfMaps));
	const dataMapBySection = new Map<number, number>();
	for (const s of elf.sections) {
		const kind = dataSectionKind(s);
		if (!kind || s.size === 0) continue;
		dataMapBySection.set(s.index, maps.length);
		maps.push(dataMap(src, s, kind));
	}
	const names = new Set<string>();
	for (const m of maps) {
		if (names.has(m.name)) throw malformed(`map '${m.name}': defined twice`);
		names.add(m.name);
	}

	const text = elf.sections.find((s) => s.name === '.text' && isCodeSection(s));
	const textIdx = text ? text.index : -1;
	const funcs: Func[] = [];
	for (const s of elf.sections) if (isCodeSection(s)) funcs.push(...collectFuncs(s, symbols, textIdx));
	funcs.sort((a, b) => a.secIdx - b.secIdx || a.secInsnOff - b.secInsnOff);
	const isSubprog = (f: Func) => f.secIdx === textIdx && funcs.length > 1;

	const ctx: RelocContext = {
		elf,
		symbols,
		textIdx,
		mapSections: new Set([legacyMaps?.index, btfMaps?.index].filter((i): i is number => i !== undefined)),
		maps,
		dataMapBySection,
		ext,
	};
	for (const rel of elf.sections) {
		if (rel.type !== SHT_REL) continue;
		const target = elf.sections[rel.info];
		if (!target || rel.info === 0)
			throw malformed(`elf: relo section #${rel.index} '${rel.name}': bad target section index ${rel.info}`);
		const forCode = isCodeSection(target);
		const forMaps = btfMaps !== undefined && target.index === btfMaps.index;
		if (!forCode && !forMaps) continue;
		if (rel.link !== symtab.index) {
			throw malformed(
				`elf: relo section '${rel.name}' uses section #${rel.link} as its symbol table, expected #${symtab.index}`,
			);
		}
		if (forCode) {
			collectProgRelocs(
				ctx,
				rel,
				target,
				funcs.filter((f) => f.secIdx === target.index),
			);
		} else {
			collectMapSlots(src, target, rel, maps, (name, shndx, offset) =>
				funcs.some(
					(f) => f.name === name && f.secIdx === shndx && BigInt(f.secInsnOff * INSN_SIZE) === offset && !isSubprog(f),
				),
			);
		}
	}

	let core: AppliedCoreRelo[] = [];
	if (btf && ext && ext.coreRelos.size > 0) {
		const counts = new Map(elf.sections.filter(isCodeSection).map((s) => [s.name, s.size / INSN_SIZE] as const));
		core = applyCoreRelocations(funcs, btf, ext, coreTarget(targetBtf), (name) => counts.get(name));
	}
	markPseudoFuncs(funcs);

	const programs: ObjectProgSpec[] = [];
	for (const f of funcs) {
		if (isSubprog(f)) continue;
		const def = findSecDef(f.secName);
		const parsed = def ? parseAttachPoint(f.secName, def) : { point: undefined };
		const linked = linkProgram(f, funcs, ctx, btf, ext);
		programs.push({
			name: f.name,
			section: f.secName,
			type: def?.progType ?? ProgType.Unspec,
			expectedAttachType: def?.expectedAttachType ?? 0,
			sleepable: def ? (def.flags & SecFlags.Sleepable) !== 0 : false,
			attachPoint: parsed.point,
			attachError: 'error' in parsed ? parsed.error : undefined,
			license,
			kernelVersion,
			instructions: linked.instructions,
			insnCount: linked.instructions.length / INSN_SIZE,
			mapReferences: linked.mapReferences,
			relocations: linked.relocations,
			funcInfo: linked.funcInfo,
			lineInfo: linked.lineInfo,
			subprograms: linked.subprograms,
		});
	}
	return { elf, btf, ext, license, kernelVersion, maps, programs, core };
}

/**
 * Map types whose values the kernel does not describe with BTF: libbpf's
 * bpf_object__create_map() passes no btf_key/value_type_id for them.
 */
const NO_BTF_TYPES: ReadonlySet<number> = new Set([
	MapType.PerfEventArray,
	MapType.CgroupArray,
	MapType.StackTrace,
	MapType.ArrayOfMaps,
	MapType.HashOfMaps,
	MapType.Devmap,
	MapType.DevmapHash,
	MapType.Cpumap,
	MapType.Xskmap,
	MapType.Sockmap,
	MapType.Sockhash,
	MapType.Queue,
	MapType.Stack,
]);

/** The registry attributes of a map, as libbpf's bpf_object__create_map() fills them. */
export function mapCreateRequest(m: ObjectMapSpec, innerMapId?: number, btfId?: number): MapCreateRequest {
	const noBtf = NO_BTF_TYPES.has(m.type);
	let maxEntries = m.maxEntries;
	// libbpf map_set_def_max_entries(): a perf event array of 0 entries gets one per possible CPU.
	if (m.type === MapType.PerfEventArray && maxEntries === 0) maxEntries = possibleCpus();
	return {
		name: m.kernelName,
		type: m.type,
		keySize: m.keySize,
		valueSize: m.valueSize,
		maxEntries,
		flags: m.flags,
		numaNode: m.numaNode,
		mapExtra: m.mapExtra,
		innerMapId,
		pinning: m.pinning,
		btfId,
		btfKeyTypeId: noBtf ? 0 : m.keyTypeId,
		btfValueTypeId: noBtf ? 0 : m.valueTypeId,
	};
}

let cpuCount: number | undefined;

/** libbpf_num_possible_cpus(): the CPUs of /sys/devices/system/cpu/possible (`0-3,6`). */
export function possibleCpus(): number {
	if (cpuCount !== undefined) return cpuCount;
	let n = 0;
	try {
		const text = readFileSync('/sys/devices/system/cpu/possible', 'utf8').trim();
		for (const part of text.split(',')) {
			const [a, b] = part.split('-').map(Number);
			if (a === undefined || Number.isNaN(a)) continue;
			n += b === undefined || Number.isNaN(b) ? 1 : b - a + 1;
		}
	} catch {
		n = 0;
	}
	cpuCount = n > 0 ? n : 1;
	return cpuCount;
}

function notFound(message: string): never {
	throw new BpftimeError('ENOENT', message);
}

/** Records of little-endian u32 fields, one row each, packed as the kernel's arrays of them are. */
function u32Records<T>(rows: readonly T[], fields: (row: T) => readonly number[]): Buffer {
	const out: Buffer[] = [];
	for (const row of rows) for (const f of fields(row)) out.push(u32le(f));
	return Buffer.concat(out);
}

/** struct bpf_func_info[] of a relocated program: insn_off (in instructions), type_id. */
function funcInfoRecords(p: ObjectProgSpec): Buffer {
	return u32Records(p.funcInfo, (f) => [f.insnIdx, f.typeId]);
}

/** struct bpf_line_info[] of a relocated program. */
function lineInfoRecords(p: ObjectProgSpec): Buffer {
	return u32Records(p.lineInfo, (l) => [l.insnIdx, l.fileNameOff, l.lineOff, l.lineCol]);
}

function u32le(n: number): Buffer {
	const b = Buffer.alloc(4);
	b.writeUInt32LE(n >>> 0);
	return b;
}

/**
 * Releases every id, in the order given, even when some release fails (the
 * target keeps what it could not release, and says why); then throws the
 * first failure.
 */
function releaseAll(ids: readonly number[], release: (id: number) => void): void {
	let first: unknown;
	for (const id of ids) {
		try {
			release(id);
		} catch (e) {
			first ??= targetError(`release of id ${id}`, e);
		}
	}
	if (first !== undefined) throw first;
}

/** Wraps an error from the registry so that its message names our object and the operation. */
function targetError(what: string, e: unknown): BpftimeError {
	const message = (e as Error)?.message ?? String(e);
	// The registry already names the object and the operation the same way
	// ("map 'x': create: ENOMEM"): said once.
	const text = message.startsWith(`${what}: `) ? message : `${what}: ${message}`;
	if (e instanceof BpftimeError) return new BpftimeError(e.code, text, { cause: e });
	const code = (e as { code?: unknown })?.code;
	return new BpftimeError(typeof code === 'string' ? code : 'EIO', text, { cause: e });
}

/** Syscall tracepoints are what bpftime intercepts in user space. */
const SYSCALL_TRACEPOINT = /^sys_(enter|exit)_[a-z0-9_]+$/;

/**
 * An eBPF object file, opened. Its `maps` and `programs` are plain specs;
 * `load()` creates them in a registry, `attach()`/`attachAll()` create the
 * perf events and links, `close()` releases everything it created.
 */
/**
 * The largest object file open() reads: far above what clang makes of any eBPF program (a 1M-instruction
 * program is 8 MiB), far below what would exhaust a process.
 */
const MAX_OBJECT_BYTES = 256 * 2 ** 20;

export class BpfObject implements Disposable {
	readonly name: string;
	/** The path it was opened from, or undefined for a Buffer. */
	readonly path: string | undefined;
	readonly license: string;
	readonly kernelVersion: number;
	/** The object's BTF, or undefined when it was built without -g. */
	readonly btf: Btf | undefined;
	/** The CO-RE relocations applied at open. */
	readonly coreRelocations: readonly AppliedCoreRelo[];
	readonly #maps: ObjectMapSpec[];
	readonly #programs: ObjectProgSpec[];
	#target: LoadTarget | undefined;
	#loaded: { maps: Map<string, LoadedMap>; programs: Map<string, LoadedProgram>; ids: number[] } | undefined;
	#links: Link[] = [];
	#closed = false;

	private constructor(name: string, path: string | undefined, p: Parsed) {
		this.name = name;
		this.path = path;
		this.license = p.license;
		this.kernelVersion = p.kernelVersion;
		this.btf = p.btf;
		this.coreRelocations = p.core;
		this.#maps = p.maps;
		this.#programs = p.programs;
	}

	/**
	 * Opens an object from a path or its bytes: parses ELF, BTF and BTF.ext,
	 * finds maps and programs, applies every relocation (CO-RE included).
	 * Throws BpftimeError: EINVAL for a malformed file, EOPNOTSUPP for what
	 * bpftime cannot do, ENOENT for a missing file or target BTF.
	 */
	static open(pathOrBuffer: string | Buffer | Uint8Array, options: OpenOptions = {}): BpfObject {
		let buf: Buffer;
		let path: string | undefined;
		if (typeof pathOrBuffer === 'string') {
			path = pathOrBuffer;
			try {
				// A device or a FIFO would be read without end (/dev/zero), a huge file whole.
				const st = statSync(path);
				if (!st.isFile()) throw new BpftimeError('EINVAL', `object '${path}': not a regular file`);
				if (st.size > MAX_OBJECT_BYTES)
					throw new BpftimeError(
						'E2BIG',
						`object '${path}': ${st.size} bytes, more than the ${MAX_OBJECT_BYTES} an object file may have`,
					);
				buf = readFileSync(path);
			} catch (e) {
				if (e instanceof BpftimeError) throw e;
				throw new BpftimeError((e as NodeJS.ErrnoException).code ?? 'EIO', `object '${path}': ${(e as Error).message}`);
			}
		} else if (pathOrBuffer instanceof Uint8Array) {
			buf = Buffer.isBuffer(pathOrBuffer)
				? pathOrBuffer
				: Buffer.from(pathOrBuffer.buffer, pathOrBuffer.byteOffset, pathOrBuffer.byteLength);
		} else {
			throw new BpftimeError(
				'EINVAL',
				`Expected a path or a Buffer for pathOrBuffer but received ${typeof pathOrBuffer}`,
			);
		}
		const name = options.name !== undefined ? expectString(options.name, 'name') : path ? objectNameOf(path) : 'object';
		try {
			return new BpfObject(name, path, parseObject(buf, name, options.targetBtf));
		} catch (e) {
			// The parser names the object by its short name; the user
			// needs the file.
			if (path !== undefined && e instanceof BpftimeError && !e.message.includes(path))
				throw new BpftimeError(e.code, `${path}: ${e.message}`, { cause: e });
			throw e;
		}
	}

	/** Maps in libbpf's order: legacy, BTF-defined, then global data. */
	get maps(): readonly ObjectMapSpec[] {
		return this.#maps;
	}

	/** Entry programs, by section then offset (sub-programs are inside them). */
	get programs(): readonly ObjectProgSpec[] {
		return this.#programs;
	}

	/** The map of that name (libbpf's name: `counts`, `obj.rodata`, `.rodata.cfg`). Throws ENOENT. */
	map(name: string): ObjectMapSpec {
		const m =
			this.#maps.find((x) => x.name === name) ??
			(name.startsWith('.') ? this.#maps.find((x) => x.section === name && x.kind !== 'btf') : undefined);
		if (!m)
			throw new BpftimeError(
				'ENOENT',
				`map '${name}': not found in object '${this.name}' (maps: ${this.#maps.map((x) => x.name).join(', ') || 'none'})`,
			);
		return m;
	}

	/** The program of that name. Throws ENOENT. */
	program(name: string): ObjectProgSpec {
		const p = this.#programs.find((x) => x.name === name);
		if (!p)
			throw new BpftimeError(
				'ENOENT',
				`prog '${name}': not found in object '${this.name}' (programs: ${this.#programs.map((x) => x.name).join(', ') || 'none'})`,
			);
		return p;
	}

	/** The source line an instruction of a program comes from, when the object has line info. */
	sourceLine(program: string, insnIdx: number): LineInfo | undefined {
		const p = this.program(program);
		let best: LineInfo | undefined;
		for (const li of p.lineInfo) if (li.insnIdx <= insnIdx && (!best || li.insnIdx >= best.insnIdx)) best = li;
		return best;
	}

	/**
	 * Sets a `const volatile` global before load. `value`: a Buffer of the
	 * variable's size, a number or bigint for an integer or enum (range
	 * checked), a boolean for a bool, a string for a char array (NUL added).
	 * Throws ENOENT for an unknown variable, EINVAL for a value that does
	 * not fit, EBUSY after load (the map is frozen).
	 */
	setRodata(name: string, value: Buffer | Uint8Array | number | bigint | boolean | string): void {
		expectString(name, 'name');
		this.#checkOpen();
		const rodata = this.#maps.filter((m) => m.kind === 'rodata');
		let map: ObjectMapSpec | undefined;
		let v: ObjectMapSpec['variables'][number] | undefined;
		for (const m of rodata) {
			v = m.variables.find((x) => x.name === name);
			if (v) {
				map = m;
				break;
			}
		}
		if (!map || !v || !map.contents) {
			const known = rodata.flatMap((m) => m.variables.map((x) => x.name));
			throw new BpftimeError(
				'ENOENT',
				`rodata '${name}': no such variable in the read-only data of '${this.name}' (variables: ${known.join(', ') || 'none'})`,
			);
		}
		if (this.#loaded)
			throw new BpftimeError('EBUSY', `rodata '${name}': the object is loaded and '${map.name}' is frozen`);
		map.contents.set(encodeValue(this.btf, name, v, value), v.offset);
	}

	/** The current bytes of a read-only global (what `setRodata` wrote, or the initial value). */
	rodata(name: string): Buffer {
		for (const m of this.#maps) {
			if (m.kind !== 'rodata' || !m.contents) continue;
			const v = m.variables.find((x) => x.name === name);
			if (v) return Buffer.from(m.contents.subarray(v.offset, v.offset + v.size));
		}
		throw new BpftimeError('ENOENT', `rodata '${name}': no such variable in the read-only data of '${this.name}'`);
	}

	/** The objdump-like view: maps, programs, relocations, disassembly with source lines. */
	describe(options: DescribeOptions = {}): string {
		return describeObject(
			{
				name: this.path ? basename(this.path) : this.name,
				license: this.license,
				kernelVersion: this.kernelVersion,
				btfTypes: this.btf?.count ?? 0,
				maps: this.#maps,
				programs: this.#programs,
				core: this.coreRelocations,
			},
			options,
		);
	}

	/** What `load()` created, or undefined before. */
	get loaded(): LoadedObject | undefined {
		return this.#loaded;
	}

	#checkOpen(): void {
		if (this.#closed) throw new BpftimeError('EBADF', `object '${this.name}': closed`);
	}

	/**
	 * Creates the maps (global data initialised, `.rodata` frozen, map-in-map
	 * slots filled) and loads the programs into `target`, in libbpf's order.
	 * All or nothing: on any failure, everything created so far is released
	 * and the error names the map or program that failed.
	 *
	 * `target` is a registry of @bpftime/handlers (adapted by
	 * `registryTarget()`) or any other LoadTarget (the kernel, a recorder).
	 */
	async load(to: LoadTarget | RegistryLike, options: LoadOptions = {}): Promise<LoadedObject> {
		const target: LoadTarget = isRegistryLike(to) ? registryTarget(to) : to;
		this.#checkOpen();
		if (this.#loaded) throw new BpftimeError('EBUSY', `object '${this.name}': already loaded`);
		const wanted = options.programs;
		if (wanted) for (const n of wanted) this.program(expectString(n, 'programs[]'));
		const created: number[] = [];
		const mapIds: number[] = [];
		const maps = new Map<string, LoadedMap>();
		const programs = new Map<string, LoadedProgram>();
		const call = async <T>(what: string, fn: () => T | Promise<T>): Promise<T> => {
			try {
				return await fn();
			} catch (e) {
				throw targetError(what, e);
			}
		};
		// Writes the initial slots (`values = { … }`) of the maps `holds` picks:
		// slot -> the id of the map or program `idOf` names (it throws when
		// there is none).
		const initSlots = async (
			holds: (m: ObjectMapSpec) => boolean,
			kind: 'map' | 'prog',
			idOf: (m: ObjectMapSpec, slot: number, ref: string) => number,
		): Promise<void> => {
			for (const [i, m] of this.#maps.entries()) {
				if (!holds(m)) continue;
				for (const [slot, ref] of m.initialSlots.entries()) {
					if (ref === undefined) continue;
					const id = idOf(m, slot, ref);
					await call(`map '${m.name}': initialize slot [${slot}] to ${kind} '${ref}'`, () =>
						target.updateMap(mapIds[i] as number, u32le(slot), u32le(id)),
					);
				}
			}
		};
		// libbpf retries a map without BTF when the kernel refuses its BTF types.
		const createMap = async (what: string, req: MapCreateRequest): Promise<number> => {
			try {
				return await target.createMap(req);
			} catch (e) {
				if (req.btfId === undefined || (req.btfKeyTypeId === 0 && req.btfValueTypeId === 0)) throw targetError(what, e);
				const plain = { ...req, btfId: undefined, btfKeyTypeId: 0, btfValueTypeId: 0 };
				return await call(what, () => target.createMap(plain));
			}
		};
		// One transaction in the registry: a loader killed part-way has its
		// objects released by the next opener.
		target.beginLoad?.();
		try {
			let btfId: number | undefined;
			const btf = this.btf;
			if (btf && target.loadBtf) {
				const load = target.loadBtf.bind(target);
				btfId = await call(`object '${this.name}': BTF load`, () => load(btf.bytes()));
				created.push(btfId);
			}
			for (const [i, m] of this.#maps.entries()) {
				let inner: number | undefined;
				if (isMapInMap(m.type)) {
					if (!m.innerMap)
						throw new BpftimeError(
							'EINVAL',
							`map '${m.name}': map-in-map needs its inner map defined with __array(values, …)`,
						);
					inner = await createMap(`map '${m.innerMap.name}': create`, mapCreateRequest(m.innerMap, undefined, btfId));
					created.push(inner);
				}
				const id = await createMap(`map '${m.name}': create`, mapCreateRequest(m, inner, btfId));
				created.push(id);
				mapIds[i] = id;
				maps.set(m.name, { name: m.name, id, spec: m });
				if (inner !== undefined) {
					// libbpf destroys the inner template once the outer map holds its shape. The
					// bpftime registry keeps a template while an outer map names it (its
					// inner_map_id, which JSON export writes) and answers EBUSY: the template then
					// stays, and goes with the object.
					const innerId = inner;
					try {
						target.release(innerId);
						created.splice(created.indexOf(innerId), 1);
					} catch (e) {
						if (!(e instanceof BpftimeError && e.code === 'EBUSY'))
							throw targetError(`map '${m.name}': release inner template`, e);
					}
				}
				if (m.contents) {
					const contents = m.contents;
					await call(`map '${m.name}': set initial value`, () => target.updateMap(id, u32le(0), contents));
					if (m.kind === 'rodata') await call(`map '${m.name}': freeze`, () => target.freezeMap(id));
				}
			}
			await initSlots(
				(m) => isMapInMap(m.type),
				'map',
				(m, slot, ref) =>
					maps.get(ref)?.id ??
					notFound(`map '${m.name}': slot [${slot}] refers to map '${ref}', which is not in the object`),
			);
			for (const p of this.#programs) {
				if (wanted && !wanted.includes(p.name)) continue;
				if (p.type === ProgType.Unspec) {
					throw new BpftimeError(
						'EINVAL',
						`prog '${p.name}': missing BPF prog type, check ELF section name '${p.section}'`,
					);
				}
				const ids = new Set<number>();
				const insns = resolveMapReferences(p.instructions, p.mapReferences, (index, name) => {
					const id = mapIds[index];
					if (id === undefined) throw new BpftimeError('ENOENT', `prog '${p.name}': map '${name}' was not created`);
					ids.add(id);
					return id;
				});
				const id = await call(`prog '${p.name}': load`, () =>
					target.loadProgram({
						name: p.name.slice(0, BPF_OBJ_NAME_LEN - 1),
						type: p.type,
						expectedAttachType: p.expectedAttachType,
						instructions: insns,
						license: p.license,
						kernelVersion: p.kernelVersion,
						flags: p.sleepable ? ProgFlags.Sleepable : 0,
						mapIds: [...ids],
						btfId,
						funcInfo: btfId === undefined ? Buffer.alloc(0) : funcInfoRecords(p),
						lineInfo: btfId === undefined ? Buffer.alloc(0) : lineInfoRecords(p),
					}),
				);
				created.push(id);
				programs.set(p.name, { name: p.name, id, spec: p });
			}
			await initSlots(
				(m) => m.type === MapType.ProgArray,
				'prog',
				(m, slot, ref) =>
					programs.get(ref)?.id ??
					notFound(`map '${m.name}': failed to initialize slot [${slot}] to prog '${ref}': not loaded`),
			);
		} catch (e) {
			for (const id of created.reverse()) {
				try {
					target.release(id);
				} catch {
					// The original error says what failed; a failed release of an id
					// being rolled back adds nothing the caller can act on.
				}
			}
			throw e;
		} finally {
			target.endLoad?.();
		}
		this.#target = target;
		this.#loaded = { maps, programs, ids: created };
		return this.#loaded;
	}

	/**
	 * Attaches a loaded program: to `target`, or else to the point its SEC
	 * name gives. Creates the perf event(s) and the link; on failure, nothing.
	 * kprobes and other kernel-only programs are refused with EOPNOTSUPP.
	 */
	async attach(program: string | ObjectProgSpec, target?: AttachTarget, options: AttachOptions = {}): Promise<Link> {
		this.#checkOpen();
		const name = typeof program === 'string' ? program : program.name;
		const spec = this.program(name);
		const loadedProg = this.#loaded?.programs.get(name);
		const reg = this.#target;
		if (!loadedProg || !reg)
			throw new BpftimeError('EINVAL', `prog '${name}': can't attach BPF program w/o FD (did you load it?)`);
		const pid = options.pid === undefined ? -1 : options.pid === -1 ? -1 : expectU32(options.pid, 'pid');
		const cookie = options.cookie ?? 0n;
		const def = findSecDef(spec.section);
		if (def && (def.family === 'kprobe' || def.family === 'kernel' || def.family === 'none')) {
			throw new BpftimeError(
				'EOPNOTSUPP',
				def.family === 'kprobe'
					? `prog '${name}': SEC("${spec.section}") attaches to kernel functions; bpftime runs eBPF in user space: use uprobe/ or tracepoint/syscalls/ instead`
					: `prog '${name}': SEC("${spec.section}") is a kernel-only program type; bpftime attaches uprobes, uretprobes, USDT, syscall tracepoints and raw syscall tracepoints`,
			);
		}
		// Checked after the program type, so that a kernel-only program is refused for what it is.
		const point = target ? pointOf(target) : this.#pointFor(spec, options.binary);
		const created = { links: [] as number[], perfEvents: [] as number[] };
		const undo = () => {
			for (const id of [...created.links].reverse()) reg.release(id);
			for (const id of [...created.perfEvents].reverse()) reg.release(id);
		};
		const call = async <T>(what: string, fn: () => T | Promise<T>): Promise<T> => {
			try {
				return await fn();
			} catch (e) {
				throw targetError(`prog '${name}': ${what}`, e);
			}
		};
		const perfLink = async (req: PerfEventRequest, linkCookie: bigint) => {
			const pe = await call('create perf event', () => reg.createPerfEvent(req));
			created.perfEvents.push(pe);
			const linkReq: LinkRequest = { kind: 'perf_event', prog: loadedProg.id, perfEvent: pe, cookie: linkCookie };
			created.links.push(await call('create link', () => reg.createLink(linkReq)));
		};
		let label: string;
		try {
			switch (point.kind) {
				case 'uprobe': {
					if (point.binary === undefined) {
						throw new BpftimeError(
							'EINVAL',
							`prog '${name}': section '${spec.section}' names no binary: pass { binary } to attach or attachAll`,
						);
					}
					const path = resolveBinaryPath(point.binary, `prog '${name}'`);
					const offset =
						point.func === undefined ? point.offset : findFuncOffset(path, point.func, `prog '${name}'`) + point.offset;
					label = `${point.retprobe ? 'uretprobe' : 'uprobe'} ${path}:${point.func ?? ''}${point.func ? (point.offset ? `+${hex(point.offset)}` : '') : hex(point.offset)}`;
					await perfLink({ kind: 'uprobe', path, offset, retprobe: point.retprobe, pid, refCtrOffset: 0n }, cookie);
					break;
				}
				case 'usdt': {
					const path = resolveBinaryPath(point.binary, `prog '${name}'`);
					const probes: UsdtProbe[] = findUsdtProbes(path, point.provider, point.name, `prog '${name}'`);
					label = `usdt ${path}:${point.provider}:${point.name} (${probes.length} site${probes.length === 1 ? '' : 's'})`;
					for (const probe of probes) {
						await perfLink(
							{ kind: 'uprobe', path, offset: probe.offset, retprobe: false, pid, refCtrOffset: probe.semaphoreOffset },
							cookie,
						);
					}
					break;
				}
				case 'tracepoint': {
					if (point.category !== 'syscalls' || !SYSCALL_TRACEPOINT.test(point.name)) {
						throw new BpftimeError(
							'EOPNOTSUPP',
							`prog '${name}': tracepoint '${point.category}/${point.name}' is a kernel event; bpftime supports syscalls/sys_enter_<name> and syscalls/sys_exit_<name>`,
						);
					}
					label = `tracepoint ${point.category}/${point.name}`;
					await perfLink({ kind: 'tracepoint', category: point.category, name: point.name, pid }, cookie);
					break;
				}
				case 'raw_tracepoint': {
					if (point.name !== 'sys_enter' && point.name !== 'sys_exit') {
						throw new BpftimeError(
							'EOPNOTSUPP',
							`prog '${name}': raw tracepoint '${point.name}' is a kernel event; bpftime supports sys_enter and sys_exit`,
						);
					}
					label = `raw_tracepoint ${point.name}`;
					const linkReq: LinkRequest = { kind: 'raw_tracepoint', prog: loadedProg.id, name: point.name };
					created.links.push(await call('create link', () => reg.createLink(linkReq)));
					break;
				}
				case 'kprobe':
					throw new BpftimeError(
						'EOPNOTSUPP',
						`prog '${name}': kprobes attach to kernel functions; bpftime runs eBPF in user space: use uprobe/ instead`,
					);
			}
		} catch (e) {
			undo();
			throw e;
		}
		const link = new Link(name, label, created, (id) => reg.release(id));
		this.#links.push(link);
		return link;
	}

	#pointFor(spec: ObjectProgSpec, binary: string | undefined): AttachPoint {
		if (spec.attachError) throw new BpftimeError('EINVAL', `prog '${spec.name}': ${spec.attachError}`);
		if (!spec.attachPoint) {
			throw new BpftimeError(
				'EINVAL',
				`prog '${spec.name}': SEC("${spec.section}") gives no attach target; pass one to attach()`,
			);
		}
		const p = spec.attachPoint;
		if (p.kind === 'uprobe' && p.binary === undefined && binary !== undefined) return { ...p, binary };
		return p;
	}

	/**
	 * Attaches every loaded program whose SEC name gives a target, as
	 * libbpf's skeleton attach does (programs like `SEC("uprobe")` are
	 * skipped). `binary` serves `uprobe/<func>` sections; `pid` filters.
	 * All or nothing: on failure the links made so far are closed.
	 */
	async attachAll(options: { binary?: string; pid?: number; cookie?: bigint } = {}): Promise<Link[]> {
		this.#checkOpen();
		if (!this.#loaded) throw new BpftimeError('EINVAL', `object '${this.name}': attachAll before load`);
		const links: Link[] = [];
		try {
			for (const p of this.#programs) {
				if (!this.#loaded.programs.has(p.name)) continue;
				if (!p.attachPoint && !p.attachError) continue;
				links.push(await this.attach(p.name, undefined, options));
			}
		} catch (e) {
			for (const l of links.reverse()) {
				l.close();
				this.#links.splice(this.#links.indexOf(l), 1);
			}
			throw e;
		}
		return links;
	}

	/** The links made by attach()/attachAll() and not closed. */
	get links(): readonly Link[] {
		return this.#links.filter((l) => !l.closed);
	}

	/**
	 * Detaches every link, then releases the programs and maps this object
	 * created in the registry (reverse order). The specs stay readable.
	 */
	close(): void {
		if (this.#closed) return;
		this.#closed = true;
		let first: unknown;
		for (const l of this.#links.reverse()) {
			try {
				l.close();
			} catch (e) {
				first ??= e;
			}
		}
		this.#links = [];
		const reg = this.#target;
		try {
			if (reg && this.#loaded) releaseAll([...this.#loaded.ids].reverse(), (id) => reg.release(id));
		} catch (e) {
			first ??= e;
		}
		if (first !== undefined) throw first;
	}

	[Symbol.dispose](): void {
		this.close();
	}
}

function pointOf(t: AttachTarget): AttachPoint {
	switch (t.kind) {
		case 'uprobe': {
			const offset = t.offset === undefined ? 0n : BigInt(t.offset);
			return {
				kind: 'uprobe',
				retprobe: t.retprobe ?? false,
				binary: expectString(t.binary, 'binary'),
				func: t.func,
				offset,
			};
		}
		case 'usdt':
			return { kind: 'usdt', binary: t.binary, provider: t.provider, name: t.name };
		case 'tracepoint':
			return { kind: 'tracepoint', category: t.category, name: t.name };
		case 'raw_tracepoint':
			return { kind: 'raw_tracepoint', name: t.name };
		default:
			throw new BpftimeError(
				'EINVAL',
				`Expected an attach target of kind uprobe, usdt, tracepoint or raw_tracepoint but received ${JSON.stringify((t as { kind?: unknown }).kind)}`,
			);
	}
}

/** Encodes a setRodata value for variable `v` from its BTF type. */
function encodeValue(
	btf: Btf | undefined,
	name: string,
	v: { size: number; typeId: number },
	value: Buffer | Uint8Array | number | bigint | boolean | string,
): Buffer {
	const where = `rodata '${name}'`;
	if (value instanceof Uint8Array) {
		if (value.length !== v.size)
			throw new BpftimeError('EINVAL', `${where}: Expected ${v.size} bytes but received ${value.length}`);
		return Buffer.from(value);
	}
	const t = btf && v.typeId ? btf.skipModsAndTypedefs(v.typeId).type : undefined;
	if (typeof value === 'string') {
		const el = t?.kind === BtfKind.Array ? btf?.skipModsAndTypedefs(t.type).type : undefined;
		if (t && !(el?.kind === BtfKind.Int && el.size === 1))
			throw new BpftimeError(
				'EINVAL',
				`${where}: a string needs a char array, the variable is ${btf?.format(v.typeId)}`,
			);
		const bytes = Buffer.from(value, 'utf8');
		if (bytes.length + 1 > v.size)
			throw new BpftimeError(
				'EINVAL',
				`${where}: '${value}' needs ${bytes.length + 1} bytes with its NUL, the variable has ${v.size}`,
			);
		const out = Buffer.alloc(v.size);
		bytes.copy(out);
		return out;
	}
	let signed = false;
	if (t) {
		if (t.kind === BtfKind.Int) signed = (t.encoding & BTF_INT_SIGNED) !== 0;
		else if (t.kind === BtfKind.Enum || t.kind === BtfKind.Enum64) signed = t.signed;
		else
			throw new BpftimeError(
				'EINVAL',
				`${where}: a ${typeof value} needs an integer, enum or bool variable, it is ${btf?.format(v.typeId)}; pass a Buffer of ${v.size} bytes`,
			);
	}
	if (typeof value === 'boolean') {
		if (t && !(t.kind === BtfKind.Int && (t.encoding & BTF_INT_BOOL) !== 0) && v.size !== 1) {
			throw new BpftimeError('EINVAL', `${where}: a boolean needs a bool variable, it is ${btf?.format(v.typeId)}`);
		}
		value = value ? 1n : 0n;
	}
	if (typeof value === 'number') {
		if (!Number.isSafeInteger(value))
			throw new BpftimeError('EINVAL', `${where}: Expected an integer but received ${value} (number)`);
		value = BigInt(value);
	}
	if (typeof value !== 'bigint')
		throw new BpftimeError('EINVAL', `${where}: unsupported value of type ${typeof value}`);
	if (![1, 2, 4, 8].includes(v.size))
		throw new BpftimeError('EINVAL', `${where}: the variable has ${v.size} bytes; pass a Buffer`);
	const bits = BigInt(v.size * 8);
	const min = t ? (signed ? -(1n << (bits - 1n)) : 0n) : -(1n << (bits - 1n));
	const max = t ? (signed ? (1n << (bits - 1n)) - 1n : (1n << bits) - 1n) : (1n << bits) - 1n;
	if (value < min || value > max) {
		throw new BpftimeError(
			'EINVAL',
			`${where}: ${value} does not fit in ${t ? btf?.format(v.typeId) : `${v.size} bytes`} [${min}, ${max}]`,
		);
	}
	const out = Buffer.alloc(8);
	out.writeBigUInt64LE(BigInt.asUintN(64, value));
	return out.subarray(0, v.size);
}

export type { ElfSymbol };
