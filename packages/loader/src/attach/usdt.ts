// USDT probe sites (SystemTap SDT notes, as <sys/sdt.h> emits them), found
// as libbpf's usdt.c collect_usdt_targets() finds them: each note of type 3
// named "stapsdt" in .note.stapsdt gives the probe's address, the link-time
// address of .stapsdt.base and the semaphore's address, then provider, name
// and argument spec. Addresses become file offsets through the PT_LOAD
// segment that holds them, which is what a uprobe and its ref_ctr_offset take.

import { BpftimeError } from '@bpftime/common';
import { ByteView } from '../bytes.js';
import { PT_LOAD, SHT_NOTE } from '../elf/constants.js';
import { ElfFile } from '../elf/elf-file.js';

export interface UsdtProbe {
	provider: string;
	name: string;
	/** File offset of the probe's nop. */
	offset: bigint;
	/** File offset of its semaphore, 0 when it has none. */
	semaphoreOffset: bigint;
	/** The argument spec as written by the compiler (`-4@%eax 8@-8(%rbp)`). */
	args: string;
}

const SDT_NOTE_TYPE = 3;

/** Every site of `provider:name` in the ELF file at `path`; throws ENOENT when there is none. */
export function findUsdtProbes(path: string, provider: string, name: string, what: string): UsdtProbe[] {
	const elf = ElfFile.read(path, what);
	const notes = elf.sections.find((s) => s.name === '.note.stapsdt' && s.type === SHT_NOTE);
	if (!notes) throw new BpftimeError('ENOENT', `${what}: usdt: no USDT notes section (.note.stapsdt) in '${path}'`);
	const base = elf.sectionByName('.stapsdt.base');
	const toOffset = (addr: bigint, kind: string): bigint => {
		const seg = elf.segments.find((s) => s.type === PT_LOAD && addr >= s.vaddr && addr < s.vaddr + s.memsz);
		if (!seg)
			throw new BpftimeError(
				'EINVAL',
				`${what}: usdt '${provider}:${name}': ${kind} address 0x${addr.toString(16)} is in no PT_LOAD segment of '${path}'`,
			);
		return addr - seg.vaddr + seg.offset;
	};
	const out: UsdtProbe[] = [];
	for (const note of elf.notes(notes)) {
		if (note.name !== 'stapsdt' || note.type !== SDT_NOTE_TYPE) continue;
		const v = new ByteView(note.desc, `${what}: usdt note in '${path}'`);
		const loc = v.u64(0, 'pc');
		const noteBase = v.u64(8, 'base');
		const sema = v.u64(16, 'semaphore');
		const prov = v.cstr(24, 'provider');
		const probeName = v.cstr(24 + Buffer.byteLength(prov) + 1, 'name');
		if (prov !== provider || probeName !== name) continue;
		const argsAt = 24 + Buffer.byteLength(prov) + 1 + Buffer.byteLength(probeName) + 1;
		const args = argsAt < note.desc.length ? v.cstr(argsAt, 'args') : '';
		// Prelink may move the binary: .stapsdt.base tells by how much.
		const ip = base && noteBase !== 0n ? loc + (base.addr - noteBase) : loc;
		out.push({
			provider: prov,
			name: probeName,
			offset: toOffset(ip, 'probe'),
			semaphoreOffset: sema === 0n ? 0n : toOffset(sema, 'semaphore'),
			args,
		});
	}
	if (out.length === 0) throw new BpftimeError('ENOENT', `${what}: usdt: no probe '${provider}:${name}' in '${path}'`);
	return out;
}
