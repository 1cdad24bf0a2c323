// Map definitions of an object file, found as libbpf finds them:
//   - BTF-defined maps: variables of the `.maps` section whose BTF type is a
//     struct of `__uint(type, …)`, `__type(key, …)`, `__array(values, …)`
//     fields (libbpf parse_btf_map_def());
//   - legacy `struct bpf_map_def` records in a `maps` section (libbpf 0.x
//     bpf_object__init_user_maps(); libbpf 1.x refuses them, bpftime keeps
//     loading them);
//   - global data: `.data`, `.rodata`, `.bss` and the `.data.*`/`.rodata.*`
//     sub-sections become one-entry array maps whose value is the section
//     (libbpf bpf_object__init_global_data_maps()).
// Order is libbpf's: legacy, then BTF-defined in DATASEC order, then global
// data in section order.

import { BpftimeError } from '@bpftime/common';
import {
	BTF_VAR_GLOBAL_ALLOCATED,
	BTF_VAR_GLOBAL_EXTERN,
	BTF_VAR_STATIC,
	type Btf,
	BtfKind,
	type BtfStructType,
	btfKindName,
} from './btf/btf.js';
import { malformed } from './bytes.js';
import { SHT_NOBITS, STB_GLOBAL, STB_WEAK, STT_OBJECT, STT_SECTION } from './elf/constants.js';
import type { ElfFile, ElfSection, ElfSymbol } from './elf/elf-file.js';
import { BPF_OBJ_NAME_LEN, isMapInMap, MapFlags, MapType, mapTypeName } from './kernel.js';
import type { FilledMapSpec } from './target.js';

/** How a map came to be in the object. */
export type MapKind = 'btf' | 'legacy' | 'data' | 'rodata' | 'bss';

/** LIBBPF_PIN_NONE / LIBBPF_PIN_BY_NAME */
export type MapPinning = 'none' | 'by-name';

/** A global variable inside a data map (from the section's BTF DATASEC, else its ELF symbol). */
export interface GlobalVariable {
	name: string;
	offset: number;
	size: number;
	/** BTF type of the variable, 0 without BTF. */
	typeId: number;
}

/**
 * A map as the object declares it: plain data, nothing created. Sizes and
 * counts are u32 (numbers); `mapExtra` is a u64 (bigint). A `MapSpec` (the
 * one @bpftime/handlers' `createMap()` takes) with every attribute filled in
 * and what the object file adds; give `kernelName` as the name to a registry.
 */
export interface ObjectMapSpec extends FilledMapSpec {
	/** The name users know it by (libbpf bpf_map__name()): the variable, or `<obj>.rodata`, `.rodata.cfg` … */
	name: string;
	/** The name given to the registry: at most 15 characters, as the kernel keeps. */
	kernelName: string;
	kind: MapKind;
	/** ELF section the map comes from. */
	section: string;
	pinning: MapPinning;
	/** BTF ids of key and value in the object's BTF; 0 when absent. */
	keyTypeId: number;
	valueTypeId: number;
	/** For map-in-map: the inner map's definition (libbpf `<name>.inner`). */
	innerMap: ObjectMapSpec | undefined;
	/**
	 * Initial slots from `values = { … }`: for a map-in-map the names of the
	 * inner maps, for a prog array the names of the programs; index = key.
	 */
	initialSlots: (string | undefined)[];
	/** Global data: the value of key 0 (zeros for .bss). Undefined for other maps. */
	contents: Buffer | undefined;
	/** Global data: the variables in it. */
	variables: GlobalVariable[];
	/** Offset of the definition in its section (maps) — relocations point here. */
	sectionOffset: number;
}

/** What the parsers need from the object being opened. */
export interface MapSources {
	elf: ElfFile;
	symbols: ElfSymbol[];
	btf: Btf | undefined;
	/** libbpf's obj->name: the file name up to its first '.'. */
	objName: string;
}

/** libbpf internal_map_name(): `<obj prefix><section>` in at most 15 characters. */
export function internalMapName(objName: string, section: string): string {
	const sfxLen = Math.max(7, section.length);
	const pfxLen =
		section.indexOf('.', 1) >= 0 ? 0 : Math.max(0, Math.min(BPF_OBJ_NAME_LEN - sfxLen - 1, objName.length));
	const raw = (objName.slice(0, pfxLen) + section.slice(0, sfxLen)).slice(0, BPF_OBJ_NAME_LEN - 1);
	return raw.replace(/[^A-Za-z0-9_.]/g, '_');
}

function emptySpec(name: string, kind: MapKind, section: string, sectionOffset: number): ObjectMapSpec {
	return {
		name,
		kernelName: name.slice(0, BPF_OBJ_NAME_LEN - 1),
		kind,
		section,
		type: MapType.Unspec,
		keySize: 0,
		valueSize: 0,
		maxEntries: 0,
		flags: 0,
		numaNode: 0,
		mapExtra: 0n,
		pinning: 'none',
		keyTypeId: 0,
		valueTypeId: 0,
		innerMap: undefined,
		initialSlots: [],
		contents: undefined,
		variables: [],
		sectionOffset,
	};
}

/** Kind of global data a section holds, as libbpf bpf_object__elf_collect() classifies it. */
export function dataSectionKind(s: ElfSection): 'data' | 'rodata' | 'bss' | undefined {
	if (s.type === SHT_NOBITS) return s.name === '.bss' ? 'bss' : undefined;
	if (s.name === '.data' || s.name.startsWith('.data.')) return 'data';
	if (s.name === '.rodata' || s.name.startsWith('.rodata.')) return 'rodata';
	return undefined;
}

// --- legacy `maps` section ----------------------------------------------------

/** sizeof(struct bpf_map_def): type, key_size, value_size, max_entries, map_flags */
const LEGACY_DEF_SIZE = 20;

export function parseLegacyMaps(src: MapSources, sec: ElfSection): ObjectMapSpec[] {
	const syms = src.symbols.filter((s) => s.shndx === sec.index && s.type !== STT_SECTION);
	if (syms.length === 0) return [];
	if (sec.size === 0 || sec.size % syms.length !== 0) {
		throw malformed(
			`elf: unable to determine legacy map definition size in 'maps' (${sec.size} bytes, ${syms.length} symbols)`,
		);
	}
	if (sec.data.length !== sec.size) throw malformed(`elf: legacy 'maps' section holds no data (SHT_NOBITS)`);
	const defSize = sec.size / syms.length;
	const out: ObjectMapSpec[] = [];
	for (const sym of syms) {
		const off = Number(sym.value);
		if (sym.value + BigInt(defSize) > BigInt(sec.size)) {
			throw malformed(
				`map '${sym.name}': corrupted 'maps' section: definition at ${off} runs past its end (${sec.size})`,
			);
		}
		const def = sec.data.subarray(off, off + defSize);
		const field = (i: number) => (i * 4 + 4 <= defSize ? def.readUInt32LE(i * 4) : 0);
		for (let b = LEGACY_DEF_SIZE; b < defSize; b++) {
			if (def[b] !== 0)
				throw new BpftimeError(
					'EINVAL',
					`map '${sym.name}': legacy definition has unrecognized, non-zero options at byte ${b}`,
				);
		}
		const spec = emptySpec(sym.name, 'legacy', sec.name, off);
		spec.type = field(0);
		spec.keySize = field(1);
		spec.valueSize = field(2);
		spec.maxEntries = field(3);
		spec.flags = field(4);
		out.push(spec);
	}
	return out;
}

// --- BTF-defined maps in `.maps` ---------------------------------------------

interface BtfMapDef extends FilledMapSpec {
	pinning: number;
	keyTypeId: number;
	valueTypeId: number;
	inner: BtfMapDef | undefined;
}

/** `__uint(name, N)` is `int (*name)[N]`: the value is the array's element count (libbpf get_map_field_int()). */
function mapFieldInt(btf: Btf, mapName: string, fieldName: string, typeId: number): number {
	const t = btf.skipModsAndTypedefs(typeId).type;
	if (!t || t.kind !== BtfKind.Ptr) {
		throw malformed(`map '${mapName}': attr '${fieldName}': expected PTR, got ${t ? btfKindName(t.kind) : 'void'}`);
	}
	const arr = btf.tryType(t.type);
	if (!arr) throw malformed(`map '${mapName}': attr '${fieldName}': type [${t.type}] not found`);
	if (arr.kind !== BtfKind.Array)
		throw malformed(`map '${mapName}': attr '${fieldName}': expected ARRAY, got ${btfKindName(arr.kind)}`);
	return arr.nelems;
}

/** `__type(key, T)` is `T *key`: the pointee gives both size and BTF id. */
function mapFieldType(btf: Btf, mapName: string, fieldName: string, typeId: number): { size: number; typeId: number } {
	const t = btf.tryType(typeId);
	if (!t) throw new BpftimeError('EINVAL', `map '${mapName}': ${fieldName} type [${typeId}] not found`);
	if (t.kind !== BtfKind.Ptr) throw malformed(`map '${mapName}': ${fieldName} spec is not PTR: ${btfKindName(t.kind)}`);
	let size: number;
	try {
		size = btf.resolveSize(t.type);
	} catch (e) {
		throw malformed(
			`map '${mapName}': can't determine ${fieldName} size for type [${t.type}]: ${(e as Error).message}`,
		);
	}
	return { size, typeId: t.type };
}

/** libbpf parse_btf_map_def(); `inner` is false when parsing the inner map of a map-in-map. */
function parseBtfMapDef(btf: Btf, mapName: string, def: BtfStructType, outer: boolean): BtfMapDef {
	const d: BtfMapDef = {
		type: 0,
		keySize: 0,
		valueSize: 0,
		maxEntries: 0,
		flags: 0,
		numaNode: 0,
		mapExtra: 0n,
		pinning: 0,
		keyTypeId: 0,
		valueTypeId: 0,
		inner: undefined,
	};
	const setSize = (which: 'key' | 'value', size: number) => {
		const cur = which === 'key' ? d.keySize : d.valueSize;
		if (cur !== 0 && cur !== size) throw malformed(`map '${mapName}': conflicting ${which} size ${cur} != ${size}`);
		if (which === 'key') d.keySize = size;
		else d.valueSize = size;
	};
	def.members.forEach((m, i) => {
		switch (m.name) {
			case 'type':
				d.type = mapFieldInt(btf, mapName, m.name, m.type);
				break;
			case 'max_entries':
				d.maxEntries = mapFieldInt(btf, mapName, m.name, m.type);
				break;
			case 'map_flags':
				d.flags = mapFieldInt(btf, mapName, m.name, m.type);
				break;
			case 'numa_node':
				d.numaNode = mapFieldInt(btf, mapName, m.name, m.type);
				break;
			case 'map_extra':
				d.mapExtra = BigInt(mapFieldInt(btf, mapName, m.name, m.type));
				break;
			case 'key_size':
				setSize('key', mapFieldInt(btf, mapName, m.name, m.type));
				break;
			case 'value_size':
				setSize('value', mapFieldInt(btf, mapName, m.name, m.type));
				break;
			case 'key': {
				const k = mapFieldType(btf, mapName, 'key', m.type);
				setSize('key', k.size);
				d.keyTypeId = k.typeId;
				break;
			}
			case 'value': {
				const v = mapFieldType(btf, mapName, 'value', m.type);
				setSize('value', v.size);
				d.valueTypeId = v.typeId;
				break;
			}
			case 'values': {
				const mapInMap = isMapInMap(d.type);
				const progArray = d.type === MapType.ProgArray;
				const desc = mapInMap ? 'map-in-map inner' : 'prog-array value';
				if (!outer) throw new BpftimeError('EOPNOTSUPP', `map '${mapName}': multi-level inner maps not supported`);
				if (i !== def.members.length - 1) throw malformed(`map '${mapName}': 'values' member should be last`);
				if (!mapInMap && !progArray)
					throw new BpftimeError('EOPNOTSUPP', `map '${mapName}': should be map-in-map or prog-array`);
				setSize('value', 4);
				const arr = btf.tryType(m.type);
				if (!arr) throw malformed(`map '${mapName}': ${desc} type [${m.type}] not found`);
				if (arr.kind !== BtfKind.Array || arr.nelems !== 0)
					throw malformed(`map '${mapName}': ${desc} spec is not a zero-sized array`);
				const ptr = btf.skipModsAndTypedefs(arr.type).type;
				if (!ptr || ptr.kind !== BtfKind.Ptr) {
					throw malformed(
						`map '${mapName}': ${desc} def is of unexpected kind ${ptr ? btfKindName(ptr.kind) : 'void'}`,
					);
				}
				const target = btf.skipModsAndTypedefs(ptr.type).type;
				if (progArray) {
					if (!target || target.kind !== BtfKind.FuncProto) {
						throw malformed(
							`map '${mapName}': prog-array value def is of unexpected kind ${target ? btfKindName(target.kind) : 'void'}`,
						);
					}
					break;
				}
				if (!target || target.kind !== BtfKind.Struct) {
					throw malformed(
						`map '${mapName}': map-in-map inner def is of unexpected kind ${target ? btfKindName(target.kind) : 'void'}`,
					);
				}
				d.inner = parseBtfMapDef(btf, `${mapName}.inner`, target, false);
				break;
			}
			case 'pinning': {
				if (!outer) throw malformed(`map '${mapName}': inner def can't be pinned`);
				const val = mapFieldInt(btf, mapName, m.name, m.type);
				if (val !== 0 && val !== 1) throw malformed(`map '${mapName}': invalid pinning value ${val}`);
				d.pinning = val;
				break;
			}
			default:
				// libbpf opens objects in strict mode since 1.0: unknown fields are errors.
				throw new BpftimeError('EOPNOTSUPP', `map '${mapName}': unknown field '${m.name}'`);
		}
	});
	if (d.type === MapType.Unspec) throw malformed(`map '${mapName}': map type isn't specified`);
	return d;
}

/** libbpf adjust_ringbuf_sz(): a ring buffer's size must be a power-of-2 multiple of the page size. */
export function adjustRingbufSize(size: number, pageSize = 4096): number {
	if (size === 0) return 0;
	const pages = size / pageSize;
	if (size % pageSize === 0 && (pages & (pages - 1)) === 0) return size;
	for (let mul = 1; mul <= Math.floor(0xffffffff / pageSize); mul *= 2) {
		if (mul * pageSize > size) return mul * pageSize;
	}
	return size;
}

function specFromDef(name: string, section: string, offset: number, d: BtfMapDef): ObjectMapSpec {
	const spec = emptySpec(name, 'btf', section, offset);
	spec.type = d.type;
	spec.keySize = d.keySize;
	spec.valueSize = d.valueSize;
	spec.maxEntries = d.type === MapType.Ringbuf ? adjustRingbufSize(d.maxEntries) : d.maxEntries;
	spec.flags = d.flags;
	spec.numaNode = d.numaNode;
	spec.mapExtra = d.mapExtra;
	spec.pinning = d.pinning === 1 ? 'by-name' : 'none';
	spec.keyTypeId = d.keyTypeId;
	spec.valueTypeId = d.valueTypeId;
	if (d.inner) spec.innerMap = specFromDef(`${name}.inner`, section, offset, d.inner);
	return spec;
}

/** Finds the DATASEC of a section by name in the object's BTF. */
export function findDatasec(btf: Btf | undefined, name: string) {
	if (!btf) return undefined;
	for (const id of btf.findByName(name, BtfKind.Datasec)) {
		const t = btf.type(id);
		if (t.kind === BtfKind.Datasec) return t;
	}
	return undefined;
}

/**
 * libbpf btf_fixup_datasec() for every DATASEC named after a section of the
 * object: its size becomes the section's, and each global variable's offset
 * the value of its ELF symbol (clang leaves both 0 in a .o). Static
 * variables keep the offset clang gave them; DATASECs of sections the file
 * does not have (.kconfig, .ksyms) are left alone.
 */
export function fixupDatasecs(src: MapSources): void {
	const btf = src.btf;
	if (!btf) return;
	for (const sec of src.elf.sections) {
		if (sec.index === 0 || sec.name === '') continue;
		for (const id of btf.findByName(sec.name, BtfKind.Datasec)) {
			const t = btf.type(id);
			if (t.kind !== BtfKind.Datasec) continue;
			const vars = t.vars.map((vi, i) => {
				const v = btf.tryType(vi.type);
				if (!v || v.kind !== BtfKind.Var) {
					throw malformed(`BTF: DATASEC '${sec.name}' [${id}]: entry #${i} is not a VAR (type [${vi.type}])`);
				}
				if (v.linkage === BTF_VAR_STATIC) return vi;
				const sym = src.symbols.find(
					(s) =>
						s.type === STT_OBJECT &&
						(s.bind === STB_GLOBAL || s.bind === STB_WEAK) &&
						s.shndx === sec.index &&
						s.name === v.name,
				);
				if (!sym) {
					if (v.linkage === BTF_VAR_GLOBAL_EXTERN) return vi;
					throw new BpftimeError(
						'ENOENT',
						`BTF: DATASEC '${sec.name}': no ELF symbol for variable '${v.name}' in section '${sec.name}'`,
					);
				}
				if (sym.value > BigInt(sec.size)) {
					throw malformed(
						`BTF: DATASEC '${sec.name}': variable '${v.name}' at ${sym.value} is past the section (${sec.size} bytes)`,
					);
				}
				return { ...vi, offset: Number(sym.value) };
			});
			btf.fixDatasec(id, sec.size, vars);
		}
	}
}

/** libbpf bpf_object__init_user_btf_maps() for the `.maps` section. */
export function parseBtfMaps(src: MapSources, sec: ElfSection): ObjectMapSpec[] {
	const btf = src.btf;
	if (!btf) throw malformed(`elf: '.maps' section needs BTF, and the object has no .BTF section (compile with -g)`);
	const datasec = findDatasec(btf, '.maps');
	if (!datasec) throw malformed(`elf: DATASEC '.maps' not found in BTF`);
	const out: ObjectMapSpec[] = [];
	datasec.vars.forEach((vi, i) => {
		const v = btf.tryType(vi.type);
		const name = v?.name ?? '';
		if (name === '') throw malformed(`map #${i}: empty name`);
		if (vi.offset + vi.size > sec.size)
			throw malformed(
				`map '${name}': BTF data is corrupted (offset ${vi.offset} + size ${vi.size} > section size ${sec.size})`,
			);
		if (!v || v.kind !== BtfKind.Var)
			throw malformed(`map '${name}': unexpected var kind ${v ? btfKindName(v.kind) : 'void'}`);
		if (v.linkage !== BTF_VAR_GLOBAL_ALLOCATED) {
			throw new BpftimeError(
				'EOPNOTSUPP',
				`map '${name}': unsupported map linkage ${v.linkage === 0 ? 'static' : 'extern'}`,
			);
		}
		const def = btf.skipModsAndTypedefs(v.type).type;
		if (!def || def.kind !== BtfKind.Struct)
			throw malformed(`map '${name}': unexpected def kind ${def ? btfKindName(def.kind) : 'void'}`);
		if (def.size > vi.size) throw malformed(`map '${name}': invalid def size ${def.size} > ${vi.size}`);
		out.push(specFromDef(name, sec.name, vi.offset, parseBtfMapDef(btf, name, def, true)));
	});
	return out;
}

/**
 * Fills `initialSlots` from the relocations of `.rel.maps`: each 8-byte
 * pointer in a map's `values` array names an inner map or a program
 * (libbpf bpf_object__collect_map_relos()).
 */
export function collectMapSlots(
	src: MapSources,
	mapsSec: ElfSection,
	relSec: ElfSection,
	maps: ObjectMapSpec[],
	isEntryProgram: (name: string, shndx: number, offset: bigint) => boolean,
): void {
	const btf = src.btf;
	if (!btf) return;
	const datasec = findDatasec(btf, '.maps');
	if (!datasec) return;
	const inSection = maps.filter((m) => m.kind === 'btf' && m.section === mapsSec.name);
	src.elf.relocations(relSec).forEach((r, i) => {
		const sym = src.symbols[r.sym];
		if (!sym) throw malformed(`.maps relo #${i}: symbol #${r.sym} not found`);
		const name = sym.name || '<?>';
		let map: ObjectMapSpec | undefined;
		let vi: { offset: number; size: number } | undefined;
		for (const m of inSection) {
			const secinfo = datasec.vars.find((s) => s.offset === m.sectionOffset);
			if (secinfo && BigInt(secinfo.offset) <= r.offset && r.offset + 8n <= BigInt(secinfo.offset + secinfo.size)) {
				map = m;
				vi = secinfo;
				break;
			}
		}
		if (!map || !vi) throw malformed(`.maps relo #${i}: cannot find map '${name}' at offset ${r.offset}`);
		const mapInMap = isMapInMap(map.type);
		if (mapInMap) {
			if (sym.shndx !== mapsSec.index) throw malformed(`.maps relo #${i}: '${name}' isn't a BTF-defined map`);
			if (map.type === MapType.HashOfMaps && map.keySize !== 4) {
				throw malformed(`.maps relo #${i}: hash-of-maps '${map.name}' should have key size 4`);
			}
			if (!maps.some((m) => m.name === name))
				throw new BpftimeError('ESRCH', `.maps relo #${i}: '${name}' isn't a valid map reference`);
		} else if (map.type === MapType.ProgArray) {
			if (!isEntryProgram(name, sym.shndx, sym.value)) {
				throw new BpftimeError('ESRCH', `.maps relo #${i}: '${name}' isn't an entry-point program`);
			}
		} else {
			throw malformed(
				`.maps relo #${i}: map '${map.name}' of type ${mapTypeName(map.type)} cannot have initial values`,
			);
		}
		const v = btf.type(datasec.vars.find((s) => s.offset === map.sectionOffset)?.type ?? 0);
		const def = v.kind === BtfKind.Var ? btf.skipModsAndTypedefs(v.type).type : undefined;
		const last = def && def.kind === BtfKind.Struct ? def.members[def.members.length - 1] : undefined;
		if (!def || def.kind !== BtfKind.Struct || !last || last.name !== 'values') {
			throw malformed(`.maps relo #${i}: map '${map.name}' has no 'values' member`);
		}
		if (last.bitOffset % 8 !== 0) throw malformed(`map '${map.name}': 'values' is not byte aligned`);
		const memberOff = BigInt(last.bitOffset / 8);
		const rel = r.offset - BigInt(vi.offset);
		if (rel < memberOff || (rel - memberOff) % 8n !== 0n) {
			throw malformed(`.maps relo #${i}: offset ${r.offset} is not a slot of '${map.name}' values`);
		}
		const slot = Number((rel - memberOff) / 8n);
		while (map.initialSlots.length <= slot) map.initialSlots.push(undefined);
		map.initialSlots[slot] = name;
	});
}

// --- global data ---------------------------------------------------------------

/** libbpf bpf_object__init_internal_map() for one data section. */
/**
 * The largest value an array map may have: the kernel's array_map_alloc_check()
 * refuses value_size > KMALLOC_MAX_SIZE (4 MiB on x86-64) with E2BIG.
 */
export const MAX_DATA_SECTION_SIZE = 4 << 20;

export function dataMap(src: MapSources, sec: ElfSection, kind: 'data' | 'rodata' | 'bss'): ObjectMapSpec {
	if (sec.size > MAX_DATA_SECTION_SIZE) {
		throw new BpftimeError(
			'E2BIG',
			`map '${sec.name}': section '${sec.name}' is ${sec.size} bytes, more than an array map value may hold (${MAX_DATA_SECTION_SIZE})`,
		);
	}
	const spec = emptySpec(sec.name, kind, sec.name, 0);
	// libbpf map_uses_real_name(): `.data.*` and `.rodata.*` keep their section name for users.
	spec.kernelName = internalMapName(src.objName, sec.name);
	if (sec.name === '.data' || sec.name === '.rodata' || sec.name === '.bss') spec.name = spec.kernelName;
	spec.type = MapType.Array;
	spec.keySize = 4;
	spec.valueSize = sec.size;
	spec.maxEntries = 1;
	spec.flags = kind === 'rodata' ? MapFlags.RdonlyProg : 0;
	spec.contents = kind === 'bss' ? Buffer.alloc(sec.size) : Buffer.from(sec.data);
	const datasec = findDatasec(src.btf, sec.name);
	if (datasec && src.btf) {
		spec.valueTypeId = datasec.id;
		// libbpf map_is_mmapable(): only a section with a global variable is mapped into user
		// space (a skeleton's view); one of static variables or string literals is not.
		const btf = src.btf;
		if (
			datasec.vars.some((vi) => {
				const v = btf.tryType(vi.type);
				return v?.kind === BtfKind.Var && v.linkage !== BTF_VAR_STATIC;
			})
		) {
			spec.flags |= MapFlags.Mmapable;
		}
		for (const vi of datasec.vars) {
			const v = src.btf.tryType(vi.type);
			if (!v || v.kind !== BtfKind.Var) continue;
			if (vi.offset + vi.size > sec.size) {
				throw malformed(
					`map '${spec.name}': variable '${v.name}' at ${vi.offset}+${vi.size} runs past the section (${sec.size} bytes)`,
				);
			}
			spec.variables.push({ name: v.name, offset: vi.offset, size: vi.size, typeId: v.type });
		}
	} else {
		for (const s of src.symbols) {
			if (s.shndx !== sec.index || s.type !== STT_OBJECT || s.name === '') continue;
			if (s.value + s.size > BigInt(sec.size)) {
				throw malformed(
					`map '${spec.name}': symbol '${s.name}' at ${s.value}+${s.size} runs past the section (${sec.size} bytes)`,
				);
			}
			spec.variables.push({ name: s.name, offset: Number(s.value), size: Number(s.size), typeId: 0 });
		}
	}
	return spec;
}
