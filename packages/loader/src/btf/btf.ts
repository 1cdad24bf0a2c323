// BTF, the BPF Type Format (kernel Documentation/bpf/btf.rst): the type
// section of an object file (.BTF) or of the kernel (/sys/kernel/btf/vmlinux).
//
// Parsing checks the whole section once, as the kernel's btf_check_all_metas()
// and libbpf's btf_sanity_check() do: header, string table, every type record,
// every referenced type id and string offset. Types are then decoded on
// demand (vmlinux has ~150k of them) and cached.
//
//   const btf = Btf.parse(readFileSync('/sys/kernel/btf/vmlinux'));
//   const id = btf.findByName('task_struct', BtfKind.Struct)[0];
//   btf.memberOffset(id, 'pid'); // bit offset

import { BpftimeError } from '@bpftime/common';
import { ByteView, hex, malformed } from '../bytes.js';

export const BTF_MAGIC = 0xeb9f;

/** BTF_KIND_* of include/uapi/linux/btf.h */
export const BtfKind = {
	Unknown: 0,
	Int: 1,
	Ptr: 2,
	Array: 3,
	Struct: 4,
	Union: 5,
	Enum: 6,
	Fwd: 7,
	Typedef: 8,
	Volatile: 9,
	Const: 10,
	Restrict: 11,
	Func: 12,
	FuncProto: 13,
	Var: 14,
	Datasec: 15,
	Float: 16,
	DeclTag: 17,
	TypeTag: 18,
	Enum64: 19,
} as const;
export type BtfKind = (typeof BtfKind)[keyof typeof BtfKind];

const KIND_NAMES = [
	'UNKN',
	'INT',
	'PTR',
	'ARRAY',
	'STRUCT',
	'UNION',
	'ENUM',
	'FWD',
	'TYPEDEF',
	'VOLATILE',
	'CONST',
	'RESTRICT',
	'FUNC',
	'FUNC_PROTO',
	'VAR',
	'DATASEC',
	'FLOAT',
	'DECL_TAG',
	'TYPE_TAG',
	'ENUM64',
];

/** The kernel's name of a kind (`STRUCT`), as bpftool prints it. */
export function btfKindName(kind: number): string {
	return KIND_NAMES[kind] ?? `kind ${kind}`;
}

/** BTF_INT_SIGNED, BTF_INT_CHAR, BTF_INT_BOOL */
export const BTF_INT_SIGNED = 1;
export const BTF_INT_CHAR = 2;
export const BTF_INT_BOOL = 4;

/** BTF_VAR_STATIC, BTF_VAR_GLOBAL_ALLOCATED, BTF_VAR_GLOBAL_EXTERN */
export const BTF_VAR_STATIC = 0;
export const BTF_VAR_GLOBAL_ALLOCATED = 1;
export const BTF_VAR_GLOBAL_EXTERN = 2;

export interface BtfMember {
	name: string;
	type: number;
	/** Bit offset from the start of the struct. */
	bitOffset: number;
	/** Bitfield size in bits; 0 for an ordinary member. */
	bitfieldSize: number;
}

export interface BtfParam {
	name: string;
	type: number;
}

export interface BtfEnumValue {
	name: string;
	/** As stored: signed when the enum's kflag says so (ENUM values are s32, ENUM64 s64/u64). */
	value: bigint;
}

export interface BtfVarSecinfo {
	type: number;
	offset: number;
	size: number;
}

/** One decoded type record. `id` 0 is `void` and has no record. */
export type BtfType =
	| {
			kind: typeof BtfKind.Int;
			id: number;
			name: string;
			size: number;
			encoding: number;
			bitOffset: number;
			bits: number;
	  }
	| { kind: typeof BtfKind.Ptr; id: number; name: string; type: number }
	| { kind: typeof BtfKind.Array; id: number; name: string; type: number; indexType: number; nelems: number }
	| {
			kind: typeof BtfKind.Struct | typeof BtfKind.Union;
			id: number;
			name: string;
			size: number;
			members: BtfMember[];
	  }
	| {
			kind: typeof BtfKind.Enum | typeof BtfKind.Enum64;
			id: number;
			name: string;
			size: number;
			signed: boolean;
			values: BtfEnumValue[];
	  }
	| { kind: typeof BtfKind.Fwd; id: number; name: string; union: boolean }
	| {
			kind:
				| typeof BtfKind.Typedef
				| typeof BtfKind.Volatile
				| typeof BtfKind.Const
				| typeof BtfKind.Restrict
				| typeof BtfKind.TypeTag;
			id: number;
			name: string;
			type: number;
	  }
	| { kind: typeof BtfKind.Func; id: number; name: string; type: number; linkage: number }
	| { kind: typeof BtfKind.FuncProto; id: number; name: string; returnType: number; params: BtfParam[] }
	| { kind: typeof BtfKind.Var; id: number; name: string; type: number; linkage: number }
	| { kind: typeof BtfKind.Datasec; id: number; name: string; size: number; vars: BtfVarSecinfo[] }
	| { kind: typeof BtfKind.Float; id: number; name: string; size: number }
	| { kind: typeof BtfKind.DeclTag; id: number; name: string; type: number; componentIdx: number };

export type BtfStructType = Extract<BtfType, { members: BtfMember[] }>;
export type BtfEnumType = Extract<BtfType, { values: BtfEnumValue[] }>;
export type BtfArrayType = Extract<BtfType, { kind: typeof BtfKind.Array }>;
export type BtfDatasecType = Extract<BtfType, { kind: typeof BtfKind.Datasec }>;
export type BtfVarType = Extract<BtfType, { kind: typeof BtfKind.Var }>;

/** libbpf's MAX_RESOLVE_DEPTH: longer chains of modifiers/typedefs/arrays are treated as loops. */
export const MAX_RESOLVE_DEPTH = 32;

const HEADER_SIZE = 24;

export class Btf {
	readonly view: ByteView;
	readonly strings: ByteView;
	/** Byte offset of each type record in `types`, indexed by id (index 0 unused). */
	readonly #offsets: Uint32Array;
	readonly #typesView: ByteView;
	readonly #cache = new Map<number, BtfType>();
	#byName: Map<string, number[]> | undefined;
	#fixed: Buffer | undefined;
	/** Where this BTF came from, prefixed to errors (`BTF`, `vmlinux BTF`). */
	readonly what: string;

	private constructor(view: ByteView, typesView: ByteView, strings: ByteView, offsets: Uint32Array, what: string) {
		this.view = view;
		this.#typesView = typesView;
		this.strings = strings;
		this.#offsets = offsets;
		this.what = what;
	}

	/** Number of types, `void` (id 0) included: valid ids are 0 .. count-1. */
	get count(): number {
		return this.#offsets.length;
	}

	/** Parses raw BTF (a .BTF section or /sys/kernel/btf/vmlinux). */
	static parse(buf: Buffer, what = 'BTF'): Btf {
		const v = new ByteView(buf, what);
		if (buf.length < HEADER_SIZE) throw malformed(`${what}: header truncated (${buf.length} of ${HEADER_SIZE} bytes)`);
		const magic = v.u16(0, 'magic');
		if (magic !== BTF_MAGIC) {
			if (magic === 0x9feb) throw malformed(`${what}: big-endian BTF is not supported`);
			throw malformed(`${what}: bad magic ${hex(magic)}, expected ${hex(BTF_MAGIC)}`);
		}
		const version = v.u8(2, 'version');
		if (version !== 1) throw malformed(`${what}: unsupported version ${version}`);
		const hdrLen = v.u32(4, 'hdr_len');
		if (hdrLen < HEADER_SIZE) throw malformed(`${what}: hdr_len ${hdrLen} is shorter than the header (${HEADER_SIZE})`);
		v.check(0, hdrLen, 'header (hdr_len)');
		const typeOff = v.u32(8, 'type_off');
		const typeLen = v.u32(12, 'type_len');
		const strOff = v.u32(16, 'str_off');
		const strLen = v.u32(20, 'str_len');
		if (typeOff % 4 !== 0) throw malformed(`${what}: type_off ${typeOff} is not 4-byte aligned`);
		const body = v.slice(hdrLen, buf.length - hdrLen, 'data after the header');
		const typesView = body.slice(typeOff, typeLen, 'type section (type_off, type_len)', `${what}: types`);
		const strings = body.slice(strOff, strLen, 'string section (str_off, str_len)', `${what}: strings`);
		if (typeOff < strOff ? typeOff + typeLen > strOff : strOff + strLen > typeOff) {
			throw malformed(`${what}: type section and string section overlap`);
		}
		if (strLen === 0 || strings.buf[0] !== 0 || strings.buf[strLen - 1] !== 0) {
			throw malformed(`${what}: string section must start and end with NUL`);
		}

		// First pass: find each record and check its size and kind.
		const offsets: number[] = [0];
		let at = 0;
		while (at < typeLen) {
			const id = offsets.length;
			offsets.push(at);
			at += recordSize(typesView, at, id, what);
		}
		const btf = new Btf(v, typesView, strings, Uint32Array.from(offsets), what);
		btf.#checkAll();
		return btf;
	}

	/**
	 * Every id referenced by a type and every name offset must be valid
	 * (libbpf btf_sanity_check()). Reads the raw records without decoding
	 * them, so vmlinux costs one pass over integers. Since the string section
	 * ends with NUL, any offset inside it names a terminated string.
	 */
	#checkAll(): void {
		const v = this.#typesView;
		const strLen = this.strings.length;
		const count = this.count;
		for (let id = 1; id < count; id++) {
			const at = this.#offsets[id] as number;
			const info = v.u32(at + 4, 'info');
			const kind = (info >>> 24) & 0x1f;
			const vlen = info & 0xffff;
			const x = at + 12;
			const fail = (what: string): never => {
				throw malformed(`${this.what}: type [${id}] ${btfKindName(kind)}: ${what}`);
			};
			const name = (off: number, field: string) => {
				if (off >= strLen) fail(`${field} offset ${off} is past the string section (${strLen} bytes)`);
			};
			const ref = (target: number, field: string) => {
				if (target >= count) fail(`${field} refers to type [${target}], past the last type [${count - 1}]`);
			};
			name(v.u32(at, 'name_off'), 'name');
			const sizeOrType = v.u32(at + 8, 'size/type');
			switch (kind) {
				case BtfKind.Ptr:
				case BtfKind.Typedef:
				case BtfKind.Volatile:
				case BtfKind.Const:
				case BtfKind.Restrict:
				case BtfKind.TypeTag:
				case BtfKind.Var:
				case BtfKind.DeclTag:
					ref(sizeOrType, 'type');
					break;
				case BtfKind.Func: {
					ref(sizeOrType, 'type');
					const protoAt = sizeOrType === 0 ? -1 : (this.#offsets[sizeOrType] as number);
					if (protoAt < 0 || ((v.u32(protoAt + 4, 'info') >>> 24) & 0x1f) !== BtfKind.FuncProto) {
						fail(`type [${sizeOrType}] is not a FUNC_PROTO`);
					}
					break;
				}
				case BtfKind.Array:
					ref(v.u32(x, 'type'), 'element type');
					ref(v.u32(x + 4, 'index_type'), 'index type');
					break;
				case BtfKind.Struct:
				case BtfKind.Union:
					for (let i = 0; i < vlen; i++) {
						name(v.u32(x + i * 12, 'name_off'), `member #${i} name`);
						ref(v.u32(x + i * 12 + 4, 'type'), `member #${i}`);
					}
					break;
				case BtfKind.Enum:
					for (let i = 0; i < vlen; i++) name(v.u32(x + i * 8, 'name_off'), `enumerator #${i} name`);
					break;
				case BtfKind.Enum64:
					for (let i = 0; i < vlen; i++) name(v.u32(x + i * 12, 'name_off'), `enumerator #${i} name`);
					break;
				case BtfKind.FuncProto:
					ref(sizeOrType, 'return type');
					for (let i = 0; i < vlen; i++) {
						name(v.u32(x + i * 8, 'name_off'), `parameter #${i} name`);
						ref(v.u32(x + i * 8 + 4, 'type'), `parameter #${i}`);
					}
					break;
				case BtfKind.Datasec:
					for (let i = 0; i < vlen; i++) ref(v.u32(x + i * 12, 'type'), `variable #${i}`);
					break;
			}
		}
		this.#checkLoops();
	}

	/**
	 * Chains of modifiers, typedefs, pointers, arrays and variables must end
	 * (at a struct, an int, void …): the kernel's btf_resolve() refuses a
	 * loop such as `typedef A B; typedef B A;`. One pass, each type visited once.
	 */
	#checkLoops(): void {
		const v = this.#typesView;
		const count = this.count;
		const next = (id: number): number => {
			const at = this.#offsets[id] as number;
			switch ((v.u32(at + 4, 'info') >>> 24) & 0x1f) {
				case BtfKind.Ptr:
				case BtfKind.Typedef:
				case BtfKind.Volatile:
				case BtfKind.Const:
				case BtfKind.Restrict:
				case BtfKind.TypeTag:
				case BtfKind.Var:
				case BtfKind.DeclTag:
					return v.u32(at + 8, 'type');
				case BtfKind.Array:
					return v.u32(at + 12, 'type');
				default:
					return 0;
			}
		};
		const state = new Uint8Array(count); // 0 unseen, 1 on the current chain, 2 known to end
		const chain: number[] = [];
		for (let start = 1; start < count; start++) {
			if (state[start] !== 0) continue;
			let id = start;
			while (id !== 0 && state[id] === 0) {
				state[id] = 1;
				chain.push(id);
				id = next(id);
			}
			if (id !== 0 && state[id] === 1) {
				const from = chain.indexOf(id);
				throw malformed(
					`${this.what}: type [${id}]: reference loop ${[...chain.slice(from), id].map((t) => `[${t}]`).join(' -> ')}`,
				);
			}
			for (const t of chain) state[t] = 2;
			chain.length = 0;
		}
		this.#checkContainment();
	}

	/**
	 * A struct, union or array must not contain itself by value (through
	 * members, elements, typedefs and modifiers; a pointer ends the chain),
	 * as the kernel's btf_struct_resolve() refuses: such a type has no size.
	 * Iterative depth-first search, each type visited once.
	 */
	#checkContainment(): void {
		const v = this.#typesView;
		const count = this.count;
		const children = (id: number): number[] => {
			const at = this.#offsets[id] as number;
			const info = v.u32(at + 4, 'info');
			const kind = (info >>> 24) & 0x1f;
			const vlen = info & 0xffff;
			switch (kind) {
				case BtfKind.Struct:
				case BtfKind.Union: {
					const out: number[] = [];
					for (let i = 0; i < vlen; i++) out.push(v.u32(at + 12 + i * 12 + 4, 'member type'));
					return out;
				}
				case BtfKind.Array:
					return [v.u32(at + 12, 'type')];
				case BtfKind.Typedef:
				case BtfKind.Volatile:
				case BtfKind.Const:
				case BtfKind.Restrict:
				case BtfKind.TypeTag:
					return [v.u32(at + 8, 'type')];
				default:
					return [];
			}
		};
		const state = new Uint8Array(count); // 0 unseen, 1 on the stack, 2 done
		for (let root = 1; root < count; root++) {
			if (state[root] !== 0) continue;
			const stack: { id: number; next: number[] }[] = [{ id: root, next: children(root) }];
			state[root] = 1;
			while (stack.length > 0) {
				const top = stack[stack.length - 1] as { id: number; next: number[] };
				const child = top.next.pop();
				if (child === undefined) {
					state[top.id] = 2;
					stack.pop();
					continue;
				}
				if (child === 0 || state[child] === 2) continue;
				if (state[child] === 1) {
					const from = stack.findIndex((f) => f.id === child);
					const path = [...stack.slice(from).map((f) => f.id), child].map((t) => `[${t}]`).join(' -> ');
					throw malformed(`${this.what}: type [${child}] ${btfKindName(this.#kindOf(child))} contains itself: ${path}`);
				}
				state[child] = 1;
				stack.push({ id: child, next: children(child) });
			}
		}
	}

	#kindOf(id: number): number {
		return (this.#typesView.u32((this.#offsets[id] as number) + 4, 'info') >>> 24) & 0x1f;
	}

	#name(off: number, id: number, field = 'name'): string {
		return this.strings.cstr(off, `type [${id}] ${field} (offset ${off})`);
	}

	/** The string at an offset of the string section (names, line text, file names). */
	str(off: number, field: string): string {
		return this.strings.cstr(off, field);
	}

	/** The decoded type `id`; throws for an id past the end and for 0 (void has no record). */
	type(id: number): BtfType {
		const hit = this.#cache.get(id);
		if (hit) return hit;
		if (!Number.isInteger(id) || id <= 0 || id >= this.count) {
			throw new BpftimeError('ENOENT', `${this.what}: type [${id}] not found (ids are 1..${this.count - 1})`);
		}
		const t = this.#decode(id, this.#offsets[id] as number);
		this.#cache.set(id, t);
		return t;
	}

	/** Like `type()` but returns undefined for void (0) and ids past the end. */
	tryType(id: number): BtfType | undefined {
		if (!Number.isInteger(id) || id <= 0 || id >= this.count) return undefined;
		return this.type(id);
	}

	#decode(id: number, at: number): BtfType {
		const v = this.#typesView;
		const nameOff = v.u32(at, `type [${id}] name_off`);
		const info = v.u32(at + 4, `type [${id}] info`);
		const sizeOrType = v.u32(at + 8, `type [${id}] size/type`);
		const kind = (info >>> 24) & 0x1f;
		const vlen = info & 0xffff;
		const kflag = info >>> 31 === 1;
		const name = this.#name(nameOff, id);
		const x = at + 12;
		switch (kind) {
			case BtfKind.Int: {
				const data = v.u32(x, `type [${id}] INT data`);
				return {
					kind,
					id,
					name,
					size: sizeOrType,
					encoding: (data >>> 24) & 0xf,
					bitOffset: (data >>> 16) & 0xff,
					bits: data & 0xff,
				};
			}
			case BtfKind.Ptr:
			case BtfKind.Typedef:
			case BtfKind.Volatile:
			case BtfKind.Const:
			case BtfKind.Restrict:
			case BtfKind.TypeTag:
				return { kind, id, name, type: sizeOrType };
			case BtfKind.Array:
				return {
					kind,
					id,
					name,
					type: v.u32(x, `type [${id}] ARRAY type`),
					indexType: v.u32(x + 4, `type [${id}] ARRAY index_type`),
					nelems: v.u32(x + 8, `type [${id}] ARRAY nelems`),
				};
			case BtfKind.Struct:
			case BtfKind.Union: {
				const members: BtfMember[] = [];
				for (let i = 0; i < vlen; i++) {
					const m = x + i * 12;
					const off = v.u32(m + 8, `type [${id}] member #${i} offset`);
					members.push({
						name: this.#name(v.u32(m, `type [${id}] member #${i}`), id, `member #${i} name`),
						type: v.u32(m + 4, `type [${id}] member #${i} type`),
						bitOffset: kflag ? off & 0xffffff : off,
						bitfieldSize: kflag ? off >>> 24 : 0,
					});
				}
				return { kind, id, name, size: sizeOrType, members };
			}
			case BtfKind.Enum: {
				const values: BtfEnumValue[] = [];
				for (let i = 0; i < vlen; i++) {
					const e = x + i * 8;
					values.push({
						name: this.#name(v.u32(e, `type [${id}] enumerator #${i}`), id, `enumerator #${i} name`),
						value: kflag ? BigInt(v.i32(e + 4, 'val')) : BigInt(v.u32(e + 4, 'val')),
					});
				}
				return { kind, id, name, size: sizeOrType, signed: kflag, values };
			}
			case BtfKind.Enum64: {
				const values: BtfEnumValue[] = [];
				for (let i = 0; i < vlen; i++) {
					const e = x + i * 12;
					const raw =
						BigInt(v.u32(e + 4, `type [${id}] enumerator #${i} val_lo32`)) |
						(BigInt(v.u32(e + 8, `type [${id}] enumerator #${i} val_hi32`)) << 32n);
					values.push({
						name: this.#name(v.u32(e, `type [${id}] enumerator #${i}`), id, `enumerator #${i} name`),
						value: kflag ? BigInt.asIntN(64, raw) : raw,
					});
				}
				return { kind, id, name, size: sizeOrType, signed: kflag, values };
			}
			case BtfKind.Fwd:
				return { kind, id, name, union: kflag };
			case BtfKind.Func:
				return { kind, id, name, type: sizeOrType, linkage: vlen };
			case BtfKind.FuncProto: {
				const params: BtfParam[] = [];
				for (let i = 0; i < vlen; i++) {
					const p = x + i * 8;
					params.push({
						name: this.#name(v.u32(p, `type [${id}] param #${i}`), id, `param #${i} name`),
						type: v.u32(p + 4, `type [${id}] param #${i} type`),
					});
				}
				return { kind, id, name, returnType: sizeOrType, params };
			}
			case BtfKind.Var:
				return { kind, id, name, type: sizeOrType, linkage: v.u32(x, `type [${id}] VAR linkage`) };
			case BtfKind.Datasec: {
				const vars: BtfVarSecinfo[] = [];
				for (let i = 0; i < vlen; i++) {
					const s = x + i * 12;
					vars.push({
						type: v.u32(s, `type [${id}] var #${i} type`),
						offset: v.u32(s + 4, `type [${id}] var #${i} offset`),
						size: v.u32(s + 8, `type [${id}] var #${i} size`),
					});
				}
				return { kind, id, name, size: sizeOrType, vars };
			}
			case BtfKind.Float:
				return { kind, id, name, size: sizeOrType };
			case BtfKind.DeclTag:
				return { kind, id, name, type: sizeOrType, componentIdx: v.i32(x, `type [${id}] DECL_TAG component_idx`) };
			default:
				throw malformed(`${this.what}: type [${id}]: unknown kind ${kind}`);
		}
	}

	/**
	 * Replaces the size and variable offsets of DATASEC `id`, as libbpf's
	 * btf_fixup_datasec() does: clang writes 0 for both in an object file
	 * and leaves them to the loader, which knows the ELF section's size and
	 * the symbols' values. Only the decoded view changes, not the bytes.
	 */
	fixDatasec(id: number, size: number, vars: BtfVarSecinfo[]): void {
		const t = this.type(id);
		if (t.kind !== BtfKind.Datasec)
			throw malformed(`${this.what}: type [${id}] is ${btfKindName(t.kind)}, not DATASEC`);
		if (vars.length !== t.vars.length) {
			throw malformed(`${this.what}: DATASEC [${id}] has ${t.vars.length} variables, not ${vars.length}`);
		}
		this.#cache.set(id, { ...t, size, vars });
		// The same change in a private copy of the bytes, for bytes().
		if (!this.#fixed) this.#fixed = Buffer.from(this.view.buf);
		const fixed = this.#fixed;
		const at = this.#typesView.buf.byteOffset - this.view.buf.byteOffset + (this.#offsets[id] as number);
		fixed.writeUInt32LE(size >>> 0, at + 8);
		vars.forEach((v, i) => {
			fixed.writeUInt32LE(v.offset >>> 0, at + 12 + i * 12 + 4);
		});
	}

	/**
	 * The raw BTF with the DATASEC fix-ups applied: what a kernel (or any
	 * other consumer of BPF_BTF_LOAD) is given, as libbpf gives it after
	 * btf_finalize_data().
	 */
	bytes(): Buffer {
		return this.#fixed ?? this.view.buf;
	}

	/** Ids of the types with this name (and kind, when given), in id order. */
	findByName(name: string, kind?: number): number[] {
		if (!this.#byName) {
			const index = new Map<string, number[]>();
			const v = this.#typesView;
			for (let id = 1; id < this.count; id++) {
				const n = this.strings.cstr(v.u32(this.#offsets[id] as number, 'name_off'), `type [${id}] name`);
				if (n === '') continue;
				const list = index.get(n);
				if (list) list.push(id);
				else index.set(n, [id]);
			}
			this.#byName = index;
		}
		const ids = this.#byName.get(name) ?? [];
		return kind === undefined ? ids : ids.filter((id) => this.type(id).kind === kind);
	}

	/** Every name in the table (for candidate search by essential name). */
	names(): IterableIterator<[string, number[]]> {
		this.findByName('');
		return (this.#byName as Map<string, number[]>).entries();
	}

	/**
	 * Follows typedefs and CV/type-tag modifiers to the underlying type, as
	 * libbpf's skip_mods_and_typedefs(). Returns the id it stopped at (0 for
	 * void) and that type, or undefined for void.
	 */
	skipModsAndTypedefs(id: number): { id: number; type: BtfType | undefined } {
		let cur = id;
		for (let depth = 0; depth <= MAX_RESOLVE_DEPTH; depth++) {
			const t = this.tryType(cur);
			if (!t) return { id: cur, type: undefined };
			switch (t.kind) {
				case BtfKind.Typedef:
				case BtfKind.Volatile:
				case BtfKind.Const:
				case BtfKind.Restrict:
				case BtfKind.TypeTag:
					cur = t.type;
					continue;
				default:
					return { id: cur, type: t };
			}
		}
		throw this.#loop(id);
	}

	/** Follows typedefs and modifiers only (libbpf skip_mods_and_typedefs without ptr). Throws on void. */
	resolve(id: number, purpose: string): BtfType {
		const r = this.skipModsAndTypedefs(id);
		if (!r.type) throw malformed(`${this.what}: ${purpose}: type [${id}] resolves to void`);
		return r.type;
	}

	#loop(id: number): BpftimeError {
		return malformed(`${this.what}: type [${id}]: reference loop or chain deeper than ${MAX_RESOLVE_DEPTH}`);
	}

	/**
	 * Size in bytes of a type, as libbpf's btf__resolve_size(): through
	 * modifiers and typedefs, arrays multiply. Throws for void, functions,
	 * forward declarations and loops.
	 */
	resolveSize(id: number): number {
		let cur = id;
		let nelems = 1;
		for (let depth = 0; depth < MAX_RESOLVE_DEPTH; depth++) {
			const t = this.tryType(cur);
			if (!t) throw malformed(`${this.what}: type [${id}]: size of void`);
			switch (t.kind) {
				case BtfKind.Int:
				case BtfKind.Struct:
				case BtfKind.Union:
				case BtfKind.Enum:
				case BtfKind.Enum64:
				case BtfKind.Datasec:
				case BtfKind.Float:
					return checkedSize(this, id, t.size * nelems);
				case BtfKind.Ptr:
					return checkedSize(this, id, 8 * nelems);
				case BtfKind.Typedef:
				case BtfKind.Volatile:
				case BtfKind.Const:
				case BtfKind.Restrict:
				case BtfKind.TypeTag:
				case BtfKind.Var:
				case BtfKind.DeclTag:
					cur = t.type;
					break;
				case BtfKind.Array:
					nelems *= t.nelems;
					cur = t.type;
					break;
				default:
					throw malformed(`${this.what}: type [${id}]: ${btfKindName(t.kind)} [${t.id}] has no size`);
			}
		}
		throw this.#loop(id);
	}

	/** A C-like spelling of a type for messages: `struct task_struct *`, `int[16]`. */
	format(id: number): string {
		const parts: string[] = [];
		let suffix = '';
		let cur = id;
		for (let depth = 0; depth < MAX_RESOLVE_DEPTH; depth++) {
			const t = this.tryType(cur);
			if (!t) return `${['void', ...parts].join(' ')}${suffix}`.replace(/ \*/g, ' *');
			switch (t.kind) {
				case BtfKind.Ptr:
					parts.unshift('*');
					cur = t.type;
					continue;
				case BtfKind.Const:
				case BtfKind.Volatile:
				case BtfKind.Restrict:
					parts.unshift(btfKindName(t.kind).toLowerCase());
					cur = t.type;
					continue;
				case BtfKind.TypeTag:
					cur = t.type;
					continue;
				case BtfKind.Array:
					suffix += `[${t.nelems}]`;
					cur = t.type;
					continue;
				default: {
					const base = baseName(t);
					return [base, ...parts].join(' ') + suffix;
				}
			}
		}
		return `<loop at [${id}]>`;
	}
}

function baseName(t: BtfType): string {
	const name = t.name === '' ? '(anon)' : t.name;
	switch (t.kind) {
		case BtfKind.Struct:
			return `struct ${name}`;
		case BtfKind.Union:
			return `union ${name}`;
		case BtfKind.Enum:
		case BtfKind.Enum64:
			return `enum ${name}`;
		case BtfKind.Fwd:
			return `${t.union ? 'union' : 'struct'} ${name}`;
		case BtfKind.FuncProto:
			return 'fn';
		default:
			return name;
	}
}

function checkedSize(btf: Btf, id: number, size: number): number {
	if (size > 0xffffffff) throw malformed(`${btf.what}: type [${id}]: size ${size} does not fit in u32`);
	return size;
}

/** Size of the record at `at` (header + kind-specific data); checks it lies inside the section. */
function recordSize(v: ByteView, at: number, id: number, what: string): number {
	const info = v.u32(at + 4, `type [${id}] info`);
	const kind = (info >>> 24) & 0x1f;
	const vlen = info & 0xffff;
	let extra: number;
	switch (kind) {
		case BtfKind.Int:
		case BtfKind.Var:
		case BtfKind.DeclTag:
			extra = 4;
			break;
		case BtfKind.Ptr:
		case BtfKind.Fwd:
		case BtfKind.Typedef:
		case BtfKind.Volatile:
		case BtfKind.Const:
		case BtfKind.Restrict:
		case BtfKind.Func:
		case BtfKind.Float:
		case BtfKind.TypeTag:
			extra = 0;
			break;
		case BtfKind.Array:
			extra = 12;
			break;
		case BtfKind.Struct:
		case BtfKind.Union:
		case BtfKind.Datasec:
		case BtfKind.Enum64:
			extra = 12 * vlen;
			break;
		case BtfKind.Enum:
		case BtfKind.FuncProto:
			extra = 8 * vlen;
			break;
		default:
			throw malformed(`${what}: type [${id}] at ${hex(at)}: unknown kind ${kind}`);
	}
	v.check(at, 12 + extra, `type [${id}] ${btfKindName(kind)} with vlen ${vlen}`);
	return 12 + extra;
}
