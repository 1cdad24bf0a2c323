// Applies the CO-RE records of .BTF.ext to the functions of an object, as
// libbpf's bpf_object__relocate_core() does: per ELF section, per record,
// on the function that holds the instruction, before sub-programs are
// appended (so every entry program that appends a sub-program gets its
// relocated copy).

import { readFileSync } from 'node:fs';
import { BpftimeError } from '@bpftime/common';
import { Btf, btfKindName } from '../btf/btf.js';
import { atSourceLine, type BtfExt, type CoreRelo, CoreReloKind, coreReloKindName, sourceLineOf } from '../btf/ext.js';
import { malformed } from '../bytes.js';
import { SHT_PROGBITS } from '../elf/constants.js';
import { ElfFile } from '../elf/elf-file.js';
import type { Func } from '../programs.js';
import {
	type CoreCandidate,
	type CoreResult,
	calcReloInsn,
	findCandidates,
	formatSpec,
	patchInsn,
} from './relo-core.js';

/** Where the running kernel publishes its BTF. */
export const VMLINUX_BTF_PATH = '/sys/kernel/btf/vmlinux';

/** A target BTF: parsed, raw bytes (BTF or an ELF file with .BTF), or a path to either. */
export type TargetBtfSource = Btf | Buffer | string;

/** One CO-RE relocation as applied, for the objdump view. */
export interface AppliedCoreRelo {
	func: string;
	/** Index inside the function (before sub-programs are appended). */
	insnIdx: number;
	kind: string;
	local: string;
	target: string | undefined;
	result: CoreResult;
}

/** Reads a BTF from raw bytes or from the .BTF section of an ELF file (vmlinux, a .o). */
export function loadBtf(source: TargetBtfSource, what: string): Btf {
	if (source instanceof Btf) return source;
	let buf: Buffer;
	if (typeof source === 'string') {
		try {
			buf = readFileSync(source);
		} catch (e) {
			const code = (e as NodeJS.ErrnoException).code ?? 'EIO';
			throw new BpftimeError(code, `${what}: cannot read '${source}': ${(e as Error).message}`);
		}
	} else {
		buf = source;
	}
	if (buf.length >= 4 && buf.readUInt32BE(0) === 0x7f454c46) {
		const elf = ElfFile.parse(buf, what);
		const sec = elf.sectionByName('.BTF');
		if (!sec || sec.type !== SHT_PROGBITS) throw malformed(`${what}: ELF file has no .BTF section`);
		return Btf.parse(sec.data, what);
	}
	return Btf.parse(buf, what);
}

/**
 * The running kernel's BTF, parsed once per process (about 0.3 s and a few
 * MiB for ~130k types): it cannot change while the kernel runs, and the
 * candidate index CO-RE builds on it is kept with it.
 */
let vmlinux: Btf | undefined;
function runningKernelBtf(): Btf {
	vmlinux ??= loadBtf(VMLINUX_BTF_PATH, 'vmlinux BTF');
	return vmlinux;
}

export interface CoreTarget {
	/** Called once, only if a record needs a target; throws when none is available. */
	get(): Btf;
}

/** The target BTF chosen by the options, loaded on first use. */
export function coreTarget(source: TargetBtfSource | undefined): CoreTarget {
	let btf: Btf | undefined;
	return {
		get() {
			if (btf) return btf;
			if (source !== undefined) {
				btf = loadBtf(source, 'target BTF');
				return btf;
			}
			try {
				btf = runningKernelBtf();
			} catch (e) {
				const be = e as BpftimeError;
				if (be.code === 'ENOENT') {
					throw new BpftimeError(
						'ENOENT',
						`CO-RE: the object has CO-RE relocations, and ${VMLINUX_BTF_PATH} does not exist: pass the target's BTF with the targetBtf option (a raw BTF file or an ELF file with a .BTF section)`,
					);
				}
				throw e;
			}
			return btf;
		},
	};
}

/** Applies every CO-RE record to `funcs` (all functions of the object). */
export function applyCoreRelocations(
	funcs: Func[],
	btf: Btf,
	ext: BtfExt,
	target: CoreTarget,
	sectionInsnCount: (secName: string) => number | undefined,
): AppliedCoreRelo[] {
	const applied: AppliedCoreRelo[] = [];
	const cache = new Map<number, CoreCandidate[]>();
	for (const [secName, relos] of ext.coreRelos) {
		const count = sectionInsnCount(secName);
		if (count === undefined) throw malformed(`sec '${secName}': CO-RE relocations for a section that holds no code`);
		const secFuncs = funcs.filter((f) => f.secName === secName);
		const insnCount: number = count;
		const applyOne = (relo: CoreRelo, i: number): void => {
			if (relo.insnIdx >= insnCount) {
				throw malformed(
					`sec '${secName}': CO-RE relo #${i}: bad insn index ${relo.insnIdx} (the section has ${insnCount} instructions)`,
				);
			}
			const func = secFuncs.find((f) => relo.insnIdx >= f.secInsnOff && relo.insnIdx < f.secInsnOff + f.secInsnCnt);
			// libbpf skips records of code no function covers (a weak function the linker dropped).
			if (!func) return;
			const insnIdx = relo.insnIdx - func.secInsnOff;
			const where = `prog '${func.name}': relo #${i}`;
			if (relo.kind > CoreReloKind.TypeMatches) {
				throw new BpftimeError(
					'EOPNOTSUPP',
					`${where}: unrecognized CO-RE relocation kind ${relo.kind} at insn #${insnIdx}`,
				);
			}
			let cands: CoreCandidate[] | undefined;
			if (relo.kind !== CoreReloKind.TypeIdLocal) {
				const lt = btf.tryType(relo.typeId);
				if (!lt) throw malformed(`${where}: local type [${relo.typeId}] not found`);
				if (lt.name === '') {
					throw new BpftimeError(
						'EINVAL',
						`${where}: target candidate search failed for [${relo.typeId}] ${btfKindName(lt.kind)} <anon>: anonymous types cannot be relocated`,
					);
				}
				cands = cache.get(relo.typeId);
				if (!cands) {
					cands = findCandidates(btf, relo.typeId, target.get());
					cache.set(relo.typeId, cands);
				}
			}
			const { res, local, targ } = calcReloInsn(where, { ...relo, insnIdx }, btf, cands);
			patchInsn(where, func.insns, insnIdx, res);
			applied.push({
				func: func.name,
				insnIdx,
				kind: coreReloKindName(relo.kind),
				local: formatSpec(local),
				target: targ ? formatSpec(targ) : undefined,
				result: res,
			});
		};
		relos.forEach((relo: CoreRelo, i) => {
			try {
				applyOne(relo, i);
			} catch (e) {
				throw relo.insnIdx < count ? atSourceLine(e, sourceLineOf(ext, secName, relo.insnIdx)) : e;
			}
		});
	}
	return applied;
}
