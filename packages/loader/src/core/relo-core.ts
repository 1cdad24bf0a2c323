// CO-RE ("compile once, run everywhere") relocations, with the semantics of
// libbpf's src/relo_core.c: a record of .BTF.ext names an instruction, a
// local BTF type and an access string ("0:1:2"); the same access is found in
// the target BTF (the running kernel's, or one the user gives) by member
// names, and the instruction's offset, immediate or size is rewritten to what
// the target says. A relocation that cannot be satisfied poisons the
// instruction (`call 0xbad2310`), so that only a program that reaches it
// fails, as libbpf does.

import { BpftimeError } from '@bpftime/common';
import {
	BTF_INT_SIGNED,
	type Btf,
	BtfKind,
	type BtfStructType,
	type BtfType,
	btfKindName,
	MAX_RESOLVE_DEPTH,
} from '../btf/btf.js';
import { type CoreRelo, CoreReloKind, coreReloKindName } from '../btf/ext.js';
import {
	BPF_ALU,
	BPF_ALU64,
	BPF_CALL_INSN,
	BPF_K,
	BPF_LD,
	BPF_LDX,
	BPF_ST,
	BPF_STX,
	dstReg,
	INSN_SIZE,
	imm,
	insnClass,
	isLdImm64,
	memSize,
	offField,
	opcode,
	POISON_CALL_IMM,
	setImm,
	setOff,
	sizeBits,
	srcReg,
} from '../insn.js';

/** BPF_CORE_SPEC_MAX_LEN */
const SPEC_MAX_LEN = 64;

export function isFieldBased(kind: number): boolean {
	return kind >= CoreReloKind.FieldByteOffset && kind <= CoreReloKind.FieldRshiftU64;
}

export function isTypeBased(kind: number): boolean {
	return (
		kind === CoreReloKind.TypeIdLocal ||
		kind === CoreReloKind.TypeIdTarget ||
		kind === CoreReloKind.TypeExists ||
		kind === CoreReloKind.TypeSize ||
		kind === CoreReloKind.TypeMatches
	);
}

export function isEnumvalBased(kind: number): boolean {
	return kind === CoreReloKind.EnumvalExists || kind === CoreReloKind.EnumvalValue;
}

/** One step of an access: a named member (`name`), or an array index (`name` undefined). */
export interface CoreAccessor {
	/** The struct/union holding the member, or the array's element type. */
	typeId: number;
	idx: number;
	name: string | undefined;
}

/** libbpf struct bpf_core_spec */
export interface CoreSpec {
	btf: Btf;
	rootTypeId: number;
	kind: number;
	spec: CoreAccessor[];
	raw: number[];
	bitOffset: number;
}

export interface CoreResult {
	origVal: bigint;
	newVal: bigint;
	poison: boolean;
	validate: boolean;
	failMemszAdjust: boolean;
	origSz: number;
	newSz: number;
	origTypeId: number;
	newTypeId: number;
}

export interface CoreCandidate {
	btf: Btf;
	id: number;
}

function err(code: string, message: string): BpftimeError {
	return new BpftimeError(code, message);
}

/** libbpf bpf_core_is_flavor_sep() / bpf_core_essential_name_len(): `task_struct___v2` → `task_struct`. */
export function essentialNameLen(name: string): number {
	for (let i = name.length - 5; i >= 0; i--) {
		if (name[i] !== '_' && name[i + 1] === '_' && name[i + 2] === '_' && name[i + 3] === '_' && name[i + 4] !== '_')
			return i + 1;
	}
	return name.length;
}

export function essentialName(name: string): string {
	return name.slice(0, essentialNameLen(name));
}

function kindCoreCompat(a: BtfType, b: BtfType): boolean {
	const enumish = (k: number) => k === BtfKind.Enum || k === BtfKind.Enum64;
	return a.kind === b.kind || (enumish(a.kind) && enumish(b.kind));
}

function isComposite(t: BtfType | undefined): t is BtfStructType {
	return t !== undefined && (t.kind === BtfKind.Struct || t.kind === BtfKind.Union);
}

function isAnyEnum(t: BtfType | undefined): boolean {
	return t !== undefined && (t.kind === BtfKind.Enum || t.kind === BtfKind.Enum64);
}

function skip(btf: Btf, id: number): { id: number; type: BtfType | undefined } {
	return btf.skipModsAndTypedefs(id);
}

function resolveSizeOr(btf: Btf, id: number, what: string): number {
	try {
		return btf.resolveSize(id);
	} catch (e) {
		throw err('EINVAL', `${what}: cannot determine the size of type [${id}]: ${(e as Error).message}`);
	}
}

/** libbpf is_flex_arr(): a zero-length array as the last member of its struct. */
function isFlexArr(btf: Btf, acc: CoreAccessor | undefined, nelems: number): boolean {
	if (!acc || acc.name === undefined || nelems > 0) return false;
	const t = btf.tryType(acc.typeId);
	return isComposite(t) && acc.idx === t.members.length - 1;
}

/** libbpf bpf_core_parse_spec(): reads an access string against the local BTF. */
export function parseSpec(btf: Btf, relo: CoreRelo, where: string): CoreSpec {
	const specStr = relo.accessStr;
	const spec: CoreSpec = { btf, rootTypeId: relo.typeId, kind: relo.kind, spec: [], raw: [], bitOffset: 0 };
	const bad = (why: string) => err('EINVAL', `${where}: bad access string '${specStr}' for [${relo.typeId}]: ${why}`);
	if (specStr === '' || specStr.startsWith(':')) throw bad('empty');
	if (isTypeBased(relo.kind)) {
		if (specStr !== '0') throw bad('type-based relocations take "0"');
		return spec;
	}
	for (const part of specStr.split(':')) {
		if (!/^[0-9]+$/.test(part)) throw bad(`'${part}' is not an index`);
		if (spec.raw.length === SPEC_MAX_LEN)
			throw err('E2BIG', `${where}: access string '${specStr}' is longer than ${SPEC_MAX_LEN}`);
		const n = Number(part);
		if (n > 0x7fffffff) throw bad(`index ${part} is out of range`);
		spec.raw.push(n);
	}
	let { id, type: t } = skip(btf, relo.typeId);
	if (!t) throw bad('the root type is void');
	const first = spec.raw[0] as number;
	spec.spec.push({ typeId: id, idx: first, name: undefined });

	if (isEnumvalBased(relo.kind)) {
		if (!isAnyEnum(t) || spec.raw.length > 1 || first >= (t as { values: unknown[] }).values.length) {
			throw bad(`not an enumerator of ${btfKindName(t.kind)} [${id}]`);
		}
		(spec.spec[0] as CoreAccessor).name = (t as { values: { name: string }[] }).values[first]?.name;
		return spec;
	}
	if (!isFieldBased(relo.kind)) throw err('EOPNOTSUPP', `${where}: unrecognized CO-RE relocation kind ${relo.kind}`);

	spec.bitOffset = first * resolveSizeOr(btf, id, where) * 8;
	for (let i = 1; i < spec.raw.length; i++) {
		const r = skip(btf, id);
		t = r.type;
		id = r.id;
		if (!t) throw bad(`step ${i} reaches void`);
		const access = spec.raw[i] as number;
		if (isComposite(t)) {
			const m = t.members[access];
			if (!m) throw bad(`${btfKindName(t.kind)} [${id}] has no member #${access}`);
			spec.bitOffset += m.bitOffset;
			if (m.name !== '') spec.spec.push({ typeId: id, idx: access, name: m.name });
			id = m.type;
		} else if (t.kind === BtfKind.Array) {
			const flex = isFlexArr(btf, spec.spec[spec.spec.length - 1], t.nelems);
			const el = skip(btf, t.type);
			if (!el.type) throw bad(`array [${id}] of void`);
			if (!flex && access >= t.nelems) throw bad(`index ${access} past the ${t.nelems} elements of [${id}]`);
			id = el.id;
			spec.spec.push({ typeId: id, idx: access, name: undefined });
			spec.bitOffset += access * resolveSizeOr(btf, id, where) * 8;
		} else {
			throw err(
				'EINVAL',
				`${where}: relo for [${relo.typeId}] ${specStr} (at idx ${i}) captures type [${id}] of unexpected kind ${btfKindName(t.kind)}`,
			);
		}
	}
	return spec;
}

/** libbpf __bpf_core_types_are_compat() */
export function typesAreCompat(
	local: Btf,
	localId: number,
	targ: Btf,
	targId: number,
	level = MAX_RESOLVE_DEPTH,
): boolean {
	const lt0 = local.tryType(localId);
	const tt0 = targ.tryType(targId);
	if (lt0 && tt0 && !kindCoreCompat(lt0, tt0)) return false;
	let lid = localId;
	let tid = targId;
	for (let depth = 0; depth < MAX_RESOLVE_DEPTH; depth++) {
		const l = skip(local, lid);
		const t = skip(targ, tid);
		lid = l.id;
		tid = t.id;
		if (!l.type || !t.type) return !l.type && !t.type;
		if (!kindCoreCompat(l.type, t.type)) return false;
		switch (l.type.kind) {
			case BtfKind.Struct:
			case BtfKind.Union:
			case BtfKind.Enum:
			case BtfKind.Enum64:
			case BtfKind.Fwd:
				return true;
			case BtfKind.Int:
				return l.type.bitOffset === 0 && (t.type as { bitOffset: number }).bitOffset === 0;
			case BtfKind.Ptr:
				lid = l.type.type;
				tid = (t.type as { type: number }).type;
				continue;
			case BtfKind.Array:
				lid = l.type.type;
				tid = (t.type as { type: number }).type;
				continue;
			case BtfKind.FuncProto: {
				const tp = t.type as Extract<BtfType, { kind: typeof BtfKind.FuncProto }>;
				if (l.type.params.length !== tp.params.length) return false;
				for (let i = 0; i < l.type.params.length; i++) {
					if (level <= 0) throw err('EINVAL', `CO-RE: function prototypes nest deeper than ${MAX_RESOLVE_DEPTH}`);
					const lp = skip(local, (l.type.params[i] as { type: number }).type).id;
					const tpid = skip(targ, (tp.params[i] as { type: number }).type).id;
					if (!typesAreCompat(local, lp, targ, tpid, level - 1)) return false;
				}
				lid = skip(local, l.type.returnType).id;
				tid = skip(targ, tp.returnType).id;
				continue;
			}
			default:
				return false;
		}
	}
	throw err('EINVAL', `CO-RE: type [${localId}] nests deeper than ${MAX_RESOLVE_DEPTH}`);
}

/** libbpf bpf_core_names_match() */
function namesMatch(localName: string, targName: string): boolean {
	if (targName === '') return localName === '';
	const tl = essentialNameLen(targName);
	const ll = essentialNameLen(localName);
	return tl === ll && localName.slice(0, ll) === targName.slice(0, tl);
}

/** libbpf __bpf_core_types_match(): the stricter relation of bpf_core_type_matches(). */
export function typesMatch(
	local: Btf,
	localId: number,
	targ: Btf,
	targId: number,
	behindPtr = false,
	level = MAX_RESOLVE_DEPTH,
): boolean {
	if (level <= 0) throw err('EINVAL', `CO-RE: type [${localId}] nests deeper than ${MAX_RESOLVE_DEPTH}`);
	let lid = localId;
	let tid = targId;
	let behind = behindPtr;
	for (let depth = 0; depth < MAX_RESOLVE_DEPTH; depth++) {
		const l = skip(local, lid);
		const t = skip(targ, tid);
		if (!l.type || !t.type) return !l.type && !t.type;
		const lt = l.type;
		const tt = t.type;
		if (!namesMatch(lt.name, tt.name)) return false;
		switch (lt.kind) {
			case BtfKind.Fwd: {
				if (behind) {
					if (tt.kind === BtfKind.Fwd) return lt.union === tt.union;
					return (tt.kind === BtfKind.Struct && !lt.union) || (tt.kind === BtfKind.Union && lt.union);
				}
				return tt.kind === BtfKind.Fwd && lt.union === tt.union;
			}
			case BtfKind.Enum:
			case BtfKind.Enum64: {
				if (tt.kind !== BtfKind.Enum && tt.kind !== BtfKind.Enum64) return false;
				if (lt.size !== tt.size || lt.values.length > tt.values.length) return false;
				return lt.values.every((lv) => tt.values.some((tv) => namesMatch(lv.name, tv.name)));
			}
			case BtfKind.Struct:
			case BtfKind.Union: {
				if (behind) {
					if (lt.kind === tt.kind) return true;
					if (tt.kind !== BtfKind.Fwd) return false;
					return (lt.kind === BtfKind.Union) === tt.union;
				}
				if (lt.kind !== tt.kind) return false;
				const tm = (tt as BtfStructType).members;
				if (lt.members.length > tm.length) return false;
				for (const lm of lt.members) {
					let matched = false;
					for (const m of tm) {
						if (!namesMatch(lm.name, m.name)) continue;
						if (typesMatch(local, lm.type, targ, m.type, behind, level - 1)) {
							matched = true;
							break;
						}
					}
					if (!matched) return false;
				}
				return true;
			}
			case BtfKind.Int: {
				if (tt.kind !== BtfKind.Int) return false;
				return lt.size === tt.size && (lt.encoding & BTF_INT_SIGNED) === (tt.encoding & BTF_INT_SIGNED);
			}
			case BtfKind.Ptr:
				if (tt.kind !== BtfKind.Ptr) return false;
				behind = true;
				lid = lt.type;
				tid = tt.type;
				continue;
			case BtfKind.Array:
				if (tt.kind !== BtfKind.Array || lt.nelems !== tt.nelems) return false;
				lid = lt.type;
				tid = tt.type;
				continue;
			case BtfKind.FuncProto: {
				if (tt.kind !== BtfKind.FuncProto || lt.params.length !== tt.params.length) return false;
				for (let i = 0; i < lt.params.length; i++) {
					if (
						!typesMatch(
							local,
							(lt.params[i] as { type: number }).type,
							targ,
							(tt.params[i] as { type: number }).type,
							behind,
							level - 1,
						)
					) {
						return false;
					}
				}
				lid = lt.returnType;
				tid = tt.returnType;
				continue;
			}
			default:
				return false;
		}
	}
	throw err('EINVAL', `CO-RE: type [${localId}] nests deeper than ${MAX_RESOLVE_DEPTH}`);
}

/** libbpf bpf_core_fields_are_compat() */
function fieldsAreCompat(local: Btf, localId: number, targ: Btf, targId: number): boolean {
	let lid = localId;
	let tid = targId;
	for (let depth = 0; depth < MAX_RESOLVE_DEPTH; depth++) {
		const l = skip(local, lid);
		const t = skip(targ, tid);
		if (!l.type || !t.type) return false;
		if (isComposite(l.type) && isComposite(t.type)) return true;
		if (!kindCoreCompat(l.type, t.type)) return false;
		switch (l.type.kind) {
			case BtfKind.Ptr:
			case BtfKind.Float:
				return true;
			case BtfKind.Fwd:
			case BtfKind.Enum:
			case BtfKind.Enum64: {
				const ll = essentialNameLen(l.type.name);
				const tl = essentialNameLen(t.type.name);
				return ll === 0 || tl === 0 || (ll === tl && l.type.name.slice(0, ll) === t.type.name.slice(0, tl));
			}
			case BtfKind.Int:
				return l.type.bitOffset === 0 && (t.type as { bitOffset: number }).bitOffset === 0;
			case BtfKind.Array:
				lid = l.type.type;
				tid = (t.type as { type: number }).type;
				continue;
			default:
				return false;
		}
	}
	throw err('EINVAL', `CO-RE: field type [${localId}] nests deeper than ${MAX_RESOLVE_DEPTH}`);
}

/**
 * libbpf bpf_core_match_member(): finds the local member's name in the
 * target struct, descending into anonymous members. Returns the target's
 * member type through `next`, or false.
 */
function matchMember(
	local: Btf,
	localAcc: CoreAccessor,
	targ: Btf,
	targId: number,
	spec: CoreSpec,
	next: { id: number },
): boolean {
	const { id: tid, type: tt } = skip(targ, targId);
	if (!isComposite(tt)) return false;
	const lt = local.type(localAcc.typeId) as BtfStructType;
	const lm = lt.members[localAcc.idx];
	if (!lm) return false;
	for (let i = 0; i < tt.members.length; i++) {
		const m = tt.members[i] as { name: string; type: number; bitOffset: number };
		if (spec.raw.length === SPEC_MAX_LEN)
			throw err('E2BIG', `CO-RE: access into [${targId}] deeper than ${SPEC_MAX_LEN}`);
		spec.bitOffset += m.bitOffset;
		spec.raw.push(i);
		if (m.name === '') {
			if (matchMember(local, localAcc, targ, m.type, spec, next)) return true;
		} else if (m.name === lm.name) {
			spec.spec.push({ typeId: tid, idx: i, name: m.name });
			next.id = m.type;
			if (fieldsAreCompat(local, lm.type, targ, m.type)) return true;
			spec.spec.pop();
			return false;
		}
		spec.bitOffset -= m.bitOffset;
		spec.raw.pop();
	}
	return false;
}

/** libbpf bpf_core_spec_match(): the local access applied to one target candidate. */
export function specMatch(local: CoreSpec, targ: Btf, targId: number): CoreSpec | undefined {
	const ts: CoreSpec = { btf: targ, rootTypeId: targId, kind: local.kind, spec: [], raw: [], bitOffset: 0 };
	if (isTypeBased(local.kind)) {
		const ok =
			local.kind === CoreReloKind.TypeMatches
				? typesMatch(local.btf, local.rootTypeId, targ, targId)
				: typesAreCompat(local.btf, local.rootTypeId, targ, targId);
		return ok ? ts : undefined;
	}
	const la0 = local.spec[0] as CoreAccessor;
	if (isEnumvalBased(local.kind)) {
		const { id, type: t } = skip(targ, targId);
		if (!t || (t.kind !== BtfKind.Enum && t.kind !== BtfKind.Enum64)) return undefined;
		const want = essentialName(la0.name ?? '');
		const i = t.values.findIndex((v) => essentialName(v.name) === want);
		if (i < 0) return undefined;
		ts.spec.push({ typeId: id, idx: i, name: t.values[i]?.name });
		ts.raw.push(i);
		return ts;
	}
	let tid = targId;
	for (let i = 0; i < local.spec.length; i++) {
		const la = local.spec[i] as CoreAccessor;
		const r = skip(targ, tid);
		if (!r.type) return undefined;
		tid = r.id;
		if (la.name !== undefined) {
			const next = { id: 0 };
			if (!matchMember(local.btf, la, targ, tid, ts, next)) return undefined;
			tid = next.id;
		} else {
			if (i > 0) {
				if (r.type.kind !== BtfKind.Array) return undefined;
				const flex = isFlexArr(targ, ts.spec[ts.spec.length - 1], r.type.nelems);
				if (!flex && la.idx >= r.type.nelems) return undefined;
				const el = skip(targ, r.type.type);
				if (!el.type) return undefined;
				tid = el.id;
			}
			if (ts.raw.length === SPEC_MAX_LEN)
				throw err('E2BIG', `CO-RE: access into [${targId}] deeper than ${SPEC_MAX_LEN}`);
			ts.spec.push({ typeId: tid, idx: la.idx, name: undefined });
			ts.raw.push(la.idx);
			ts.bitOffset += la.idx * resolveSizeOr(targ, tid, 'CO-RE target') * 8;
		}
	}
	return ts;
}

/** Thrown inside the calculation to ask for the instruction to be poisoned (libbpf's -EUCLEAN). */
const POISON = Symbol('poison');

interface FieldValue {
	val: bigint;
	fieldSz: number;
	typeId: number;
	validate: boolean;
}

/** libbpf bpf_core_calc_field_relo() */
function calcFieldRelo(where: string, relo: CoreRelo, spec: CoreSpec | undefined): FieldValue | typeof POISON {
	const out: FieldValue = { val: 0n, fieldSz: 0, typeId: 0, validate: true };
	if (relo.kind === CoreReloKind.FieldExists) {
		out.val = spec ? 1n : 0n;
		return out;
	}
	if (!spec) return POISON;
	const acc = spec.spec[spec.spec.length - 1] as CoreAccessor;
	const t0 = acc.name === undefined ? undefined : (spec.btf.type(acc.typeId) as BtfStructType).members[acc.idx];
	// Only a bitfield may start inside a byte (the kernel's btf_struct_check_member(): "Member is not byte aligned").
	if (spec.bitOffset % 8 !== 0 && !(t0 && t0.bitfieldSize > 0)) {
		throw err(
			'EINVAL',
			`${where}: field at bit offset ${spec.bitOffset} of [${spec.rootTypeId}] is not byte aligned and not a bitfield`,
		);
	}
	if (acc.name === undefined) {
		// a[n]: the element itself is the field.
		if (relo.kind === CoreReloKind.FieldByteOffset) {
			out.val = BigInt(spec.bitOffset / 8);
			out.fieldSz = resolveSizeOr(spec.btf, acc.typeId, where);
			out.typeId = acc.typeId;
		} else if (relo.kind === CoreReloKind.FieldByteSize) {
			out.val = BigInt(resolveSizeOr(spec.btf, acc.typeId, where));
		} else {
			throw err(
				'EINVAL',
				`${where}: relo ${coreReloKindName(relo.kind)} at insn #${relo.insnIdx} can't be applied to array access`,
			);
		}
		return out;
	}
	const t = spec.btf.type(acc.typeId) as BtfStructType;
	const m = t.members[acc.idx] as { type: number; bitfieldSize: number };
	const mt = skip(spec.btf, m.type);
	const fieldTypeId = mt.id;
	const bitOff = spec.bitOffset;
	let bitSz = m.bitfieldSize;
	const bitfield = bitSz > 0;
	let byteSz: number;
	let byteOff: number;
	if (bitfield) {
		const sized = mt.type as { size?: number } | undefined;
		byteSz = sized?.size ?? 0;
		if (byteSz <= 0) throw err('EINVAL', `${where}: bitfield of type [${fieldTypeId}] has no size`);
		byteOff = Math.floor(bitOff / 8 / byteSz) * byteSz;
		// The smallest load that holds the whole bitfield.
		while (bitOff + bitSz - byteOff * 8 > byteSz * 8) {
			if (byteSz >= 8)
				throw err(
					'E2BIG',
					`${where}: relo ${coreReloKindName(relo.kind)} at insn #${relo.insnIdx} can't be satisfied for bitfield`,
				);
			byteSz *= 2;
			byteOff = Math.floor(bitOff / 8 / byteSz) * byteSz;
		}
	} else {
		byteSz = resolveSizeOr(spec.btf, fieldTypeId, where);
		byteOff = bitOff / 8;
		bitSz = byteSz * 8;
	}
	// For bitfields the compiler's choices may differ from ours: only signedness and right shift are unambiguous.
	out.validate = !bitfield;
	switch (relo.kind) {
		case CoreReloKind.FieldByteOffset:
			out.val = BigInt(byteOff);
			if (!bitfield) {
				out.fieldSz = byteSz;
				out.typeId = fieldTypeId;
			}
			break;
		case CoreReloKind.FieldByteSize:
			out.val = BigInt(byteSz);
			break;
		case CoreReloKind.FieldSigned: {
			const ft = mt.type;
			const signed =
				(ft !== undefined && (ft.kind === BtfKind.Enum || ft.kind === BtfKind.Enum64) && ft.signed) ||
				(ft !== undefined && ft.kind === BtfKind.Int && (ft.encoding & BTF_INT_SIGNED) !== 0);
			out.val = signed ? 1n : 0n;
			out.validate = true;
			break;
		}
		case CoreReloKind.FieldLshiftU64:
			out.val = BigInt(64 - (bitOff + bitSz - byteOff * 8));
			break;
		case CoreReloKind.FieldRshiftU64:
			out.val = BigInt(64 - bitSz);
			out.validate = true;
			break;
		default:
			throw err('EOPNOTSUPP', `${where}: unrecognized CO-RE relocation ${coreReloKindName(relo.kind)} (${relo.kind})`);
	}
	return out;
}

/** libbpf bpf_core_calc_type_relo() */
function calcTypeRelo(where: string, relo: CoreRelo, spec: CoreSpec | undefined): { val: bigint; validate: boolean } {
	if (!spec) return { val: 0n, validate: true };
	switch (relo.kind) {
		case CoreReloKind.TypeIdTarget:
			// A type id embedded in an instruction may change when objects are linked: never validated.
			return { val: BigInt(spec.rootTypeId), validate: false };
		case CoreReloKind.TypeExists:
		case CoreReloKind.TypeMatches:
			return { val: 1n, validate: true };
		case CoreReloKind.TypeSize:
			return { val: BigInt(resolveSizeOr(spec.btf, spec.rootTypeId, where)), validate: true };
		default:
			throw err('EOPNOTSUPP', `${where}: unrecognized CO-RE relocation ${coreReloKindName(relo.kind)} (${relo.kind})`);
	}
}

/** libbpf bpf_core_calc_enumval_relo() */
function calcEnumvalRelo(where: string, relo: CoreRelo, spec: CoreSpec | undefined): bigint | typeof POISON {
	if (relo.kind === CoreReloKind.EnumvalExists) return spec ? 1n : 0n;
	if (relo.kind !== CoreReloKind.EnumvalValue)
		throw err('EOPNOTSUPP', `${where}: unrecognized CO-RE relocation kind ${relo.kind}`);
	if (!spec) return POISON;
	const acc = spec.spec[0] as CoreAccessor;
	const t = spec.btf.type(acc.typeId) as { values: { value: bigint }[] };
	// ENUM values are s32 and reach the u64 result sign-extended, as in C.
	return BigInt.asUintN(64, (t.values[acc.idx] as { value: bigint }).value);
}

/** libbpf bpf_core_calc_relo(): the values for the local spec and one target spec (or none). */
function calcRelo(where: string, relo: CoreRelo, local: CoreSpec, targ: CoreSpec | undefined): CoreResult {
	const res: CoreResult = {
		origVal: 0n,
		newVal: 0n,
		poison: false,
		validate: true,
		failMemszAdjust: false,
		origSz: 0,
		newSz: 0,
		origTypeId: 0,
		newTypeId: 0,
	};
	if (isFieldBased(relo.kind)) {
		const o = calcFieldRelo(where, relo, local);
		const n = calcFieldRelo(where, relo, targ);
		if (o === POISON || n === POISON) {
			res.poison = true;
			return res;
		}
		res.origVal = o.val;
		res.origSz = o.fieldSz;
		res.origTypeId = o.typeId;
		res.validate = o.validate;
		res.newVal = n.val;
		res.newSz = n.fieldSz;
		res.newTypeId = n.typeId;
		if (relo.kind === CoreReloKind.FieldByteOffset && res.origSz !== res.newSz && targ) {
			// Loading a field of another size is only right for pointers (a
			// 32-bit kernel's) and unsigned integers (zero extension).
			const ot = local.btf.tryType(res.origTypeId);
			const nt = targ.btf.tryType(res.newTypeId);
			const bothPtr = ot?.kind === BtfKind.Ptr && nt?.kind === BtfKind.Ptr;
			const bothUnsigned =
				ot?.kind === BtfKind.Int &&
				nt?.kind === BtfKind.Int &&
				(ot.encoding & BTF_INT_SIGNED) === 0 &&
				(nt.encoding & BTF_INT_SIGNED) === 0;
			if (!bothPtr && !bothUnsigned) res.failMemszAdjust = true;
		}
	} else if (isTypeBased(relo.kind)) {
		const o = calcTypeRelo(where, relo, local);
		const n = calcTypeRelo(where, relo, targ);
		res.origVal = o.val;
		res.validate = o.validate;
		res.newVal = n.val;
	} else if (isEnumvalBased(relo.kind)) {
		const o = calcEnumvalRelo(where, relo, local);
		const n = calcEnumvalRelo(where, relo, targ);
		if (o === POISON || n === POISON) {
			res.poison = true;
			return res;
		}
		res.origVal = o;
		res.newVal = n;
	} else {
		throw err(
			'EOPNOTSUPP',
			`${where}: unrecognized CO-RE relocation ${coreReloKindName(relo.kind)} (${relo.kind}) at insn #${relo.insnIdx}`,
		);
	}
	return res;
}

/** Candidates by essential name, per target BTF (libbpf's cand cache, built once per BTF). */
const essentialIndexes = new WeakMap<Btf, Map<string, number[]>>();

function essentialIndex(btf: Btf): Map<string, number[]> {
	let index = essentialIndexes.get(btf);
	if (!index) {
		index = new Map();
		for (const [name, ids] of btf.names()) {
			const ess = essentialName(name);
			const list = index.get(ess);
			if (list) list.push(...ids);
			else index.set(ess, [...ids]);
		}
		for (const list of index.values()) list.sort((a, b) => a - b);
		essentialIndexes.set(btf, index);
	}
	return index;
}

/** libbpf bpf_core_find_cands() + bpf_core_add_cands(): same kind, same essential name. */
export function findCandidates(local: Btf, localId: number, targ: Btf): CoreCandidate[] {
	const lt = local.type(localId);
	const ess = essentialName(lt.name);
	return (essentialIndex(targ).get(ess) ?? [])
		.filter((id) => kindCoreCompat(targ.type(id), lt))
		.map((id) => ({ btf: targ, id }));
}

/**
 * libbpf bpf_core_calc_relo_insn(): matches the local spec against every
 * candidate; all matches must agree. `cands` is pruned to the matching ones,
 * as libbpf prunes its cache entry.
 */
export function calcReloInsn(
	where: string,
	relo: CoreRelo,
	local: Btf,
	cands: CoreCandidate[] | undefined,
): { res: CoreResult; local: CoreSpec; targ: CoreSpec | undefined } {
	const lt = local.tryType(relo.typeId);
	if (!lt) throw err('EINVAL', `${where}: local type [${relo.typeId}] not found`);
	let localSpec: CoreSpec;
	try {
		localSpec = parseSpec(local, relo, where);
	} catch (e) {
		const be = e as BpftimeError;
		throw err(
			be.code ?? 'EINVAL',
			`${where}: parsing [${relo.typeId}] ${btfKindName(lt.kind)} ${lt.name === '' ? '<anon>' : lt.name} + ${relo.accessStr} failed: ${be.message.replace(`${where}: `, '')}`,
		);
	}
	if (relo.kind === CoreReloKind.TypeIdLocal) {
		return {
			res: {
				origVal: BigInt(relo.typeId),
				newVal: BigInt(relo.typeId),
				poison: false,
				validate: false,
				failMemszAdjust: false,
				origSz: 0,
				newSz: 0,
				origTypeId: 0,
				newTypeId: 0,
			},
			local: localSpec,
			targ: undefined,
		};
	}
	if (lt.name === '') {
		throw err(
			'EOPNOTSUPP',
			`${where}: <${coreReloKindName(relo.kind)}> (${relo.kind}) relocation doesn't support anonymous types`,
		);
	}
	const list = cands ?? [];
	let best: { res: CoreResult; spec: CoreSpec } | undefined;
	const kept: CoreCandidate[] = [];
	for (const c of list) {
		const cs = specMatch(localSpec, c.btf, c.id);
		if (!cs) continue;
		const cr = calcRelo(where, relo, localSpec, cs);
		if (!best) {
			best = { res: cr, spec: cs };
		} else if (cs.bitOffset !== best.spec.bitOffset) {
			throw err('EINVAL', `${where}: field offset ambiguity: ${cs.bitOffset} != ${best.spec.bitOffset}`);
		} else if (cr.poison !== best.res.poison || cr.newVal !== best.res.newVal) {
			throw err(
				'EINVAL',
				`${where}: relocation decision ambiguity: ${cr.poison ? 'failure' : 'success'} ${cr.newVal} != ${best.res.poison ? 'failure' : 'success'} ${best.res.newVal}`,
			);
		}
		kept.push(c);
	}
	if (cands && kept.length > 0) cands.splice(0, cands.length, ...kept);
	if (!best) return { res: calcRelo(where, relo, localSpec, undefined), local: localSpec, targ: undefined };
	return { res: best.res, local: localSpec, targ: best.spec };
}

/** libbpf bpf_core_poison_insn(): an invalid helper call, which fails only if reached. */
function poisonInsn(code: Buffer, i: number): void {
	code.fill(0, i * INSN_SIZE, (i + 1) * INSN_SIZE);
	code[i * INSN_SIZE] = BPF_CALL_INSN;
	setImm(code, i, POISON_CALL_IMM);
}

/** libbpf bpf_core_patch_insn(): rewrites instruction `i` of `code` with the result. */
export function patchInsn(where: string, code: Buffer, i: number, res: CoreResult): void {
	const count = code.length / INSN_SIZE;
	if (i < 0 || i >= count) throw err('EINVAL', `${where}: bad insn index ${i} (the program has ${count} instructions)`);
	const op = opcode(code, i);
	const cls = insnClass(op);
	const poison = () => {
		if (isLdImm64(code, i) && i + 1 < count) poisonInsn(code, i + 1);
		poisonInsn(code, i);
	};
	if (res.poison) {
		poison();
		return;
	}
	const { origVal, newVal } = res;
	switch (cls) {
		case BPF_ALU:
		case BPF_ALU64: {
			if ((op & 0x08) !== BPF_K)
				throw err('EINVAL', `${where}: insn #${i} (ALU/ALU64) has a register source, expected an immediate`);
			const cur = BigInt.asUintN(64, BigInt(imm(code, i)));
			if (res.validate && cur !== origVal) {
				throw err(
					'EINVAL',
					`${where}: unexpected insn #${i} (ALU/ALU64) value: got ${imm(code, i) >>> 0}, exp ${origVal} -> ${newVal}`,
				);
			}
			setImm(code, i, newVal);
			return;
		}
		case BPF_LDX:
		case BPF_ST:
		case BPF_STX: {
			const off = offField(code, i);
			if (res.validate && BigInt(off) !== origVal) {
				throw err(
					'EINVAL',
					`${where}: unexpected insn #${i} (LDX/ST/STX) value: got ${off}, exp ${origVal} -> ${newVal}`,
				);
			}
			if (newVal > 0x7fffn) throw err('ERANGE', `${where}: insn #${i} (LDX/ST/STX) value too big: ${newVal}`);
			if (res.failMemszAdjust) {
				// libbpf warns "accesses field incorrectly" and poisons: a load of another size would read a wrong value.
				poison();
				return;
			}
			setOff(code, i, Number(newVal));
			if (res.newSz !== res.origSz) {
				const cur = memSize(op);
				if (cur !== res.origSz)
					throw err('EINVAL', `${where}: insn #${i} (LDX/ST/STX) unexpected mem size: got ${cur}, exp ${res.origSz}`);
				const bits = sizeBits(res.newSz);
				if (bits < 0) throw err('EINVAL', `${where}: insn #${i} (LDX/ST/STX) invalid new mem size: ${res.newSz}`);
				code[i * INSN_SIZE] = (op & 0xe7) | bits;
			}
			return;
		}
		case BPF_LD: {
			const second = i + 1;
			if (
				!isLdImm64(code, i) ||
				second >= count ||
				srcReg(code, i) !== 0 ||
				offField(code, i) !== 0 ||
				opcode(code, second) !== 0 ||
				dstReg(code, second) !== 0 ||
				srcReg(code, second) !== 0 ||
				offField(code, second) !== 0
			) {
				throw err('EINVAL', `${where}: insn #${i} (LDIMM64) has unexpected form`);
			}
			const cur = BigInt(imm(code, i) >>> 0) | (BigInt(imm(code, second) >>> 0) << 32n);
			if (res.validate && cur !== origVal) {
				throw err('EINVAL', `${where}: unexpected insn #${i} (LDIMM64) value: got ${cur}, exp ${origVal} -> ${newVal}`);
			}
			setImm(code, i, BigInt.asUintN(32, newVal));
			setImm(code, second, BigInt.asUintN(32, newVal >> 32n));
			return;
		}
		default:
			throw err(
				'EINVAL',
				`${where}: trying to relocate unrecognized insn #${i}, code:0x${op.toString(16)}, src:0x${srcReg(code, i).toString(16)}, dst:0x${dstReg(code, i).toString(16)}, off:0x${(offField(code, i) & 0xffff).toString(16)}, imm:0x${(imm(code, i) >>> 0).toString(16)}`,
			);
	}
}

/** A short spelling of a spec for the objdump view: `[7] struct task_struct.pid (0:9) @ 2456`. */
export function formatSpec(spec: CoreSpec): string {
	const root = spec.btf.tryType(spec.rootTypeId);
	const head = `[${spec.rootTypeId}] ${root ? spec.btf.format(spec.rootTypeId) : 'void'}`;
	if (isTypeBased(spec.kind)) return head;
	if (isEnumvalBased(spec.kind)) return `${head}::${spec.spec[0]?.name ?? '?'}`;
	let path = '';
	spec.spec.forEach((a, i) => {
		if (a.name !== undefined) path += `.${a.name}`;
		else if (i > 0) path += `[${a.idx}]`;
	});
	return `${head}${path} (${spec.raw.join(':')}) @ byte ${spec.bitOffset / 8}`;
}
