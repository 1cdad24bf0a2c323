// Symbolizer: turns code addresses of a running process (the stacks of a
// stack trace map) into module + function + offset, from the ELF symbol
// tables (.symtab, else .dynsym) of the files the process maps, as
// /proc/<pid>/maps lists them. Reads only the ELF headers and symbol
// sections of each file, once per Symbolizer.
import { closeSync, openSync, readFileSync, readSync } from 'node:fs';

export interface Frame {
	address: bigint;
	/** The mapped file, when the address lies in one. */
	module?: string;
	/** The function containing the address (STT_FUNC), when a symbol table names one. */
	symbol?: string;
	/** Bytes after the function's start. */
	offset?: bigint;
}

interface Mapping {
	start: bigint;
	end: bigint;
	fileOffset: bigint;
	path: string;
}

interface Sym {
	value: bigint;
	size: bigint;
	name: string;
}

interface ElfSymbols {
	/** [p_offset, p_vaddr, p_filesz] of each PT_LOAD. */
	loads: [bigint, bigint, bigint][];
	/** Functions by address. */
	funcs: Sym[];
}

function readAt(fd: number, offset: bigint, length: number): Buffer {
	const b = Buffer.alloc(length);
	const n = readSync(fd, b, 0, length, offset);
	return b.subarray(0, n);
}

function readElf(path: string): ElfSymbols | undefined {
	let fd: number;
	try {
		fd = openSync(path, 'r');
	} catch {
		return undefined;
	}
	try {
		const eh = readAt(fd, 0n, 64);
		// ELF64, little-endian only (x86-64).
		if (eh.length < 64 || eh.readUInt32BE(0) !== 0x7f454c46 || eh[4] !== 2 || eh[5] !== 1) return undefined;
		const phoff = eh.readBigUInt64LE(0x20);
		const shoff = eh.readBigUInt64LE(0x28);
		const phentsize = eh.readUInt16LE(0x36);
		const phnum = eh.readUInt16LE(0x38);
		const shentsize = eh.readUInt16LE(0x3a);
		const shnum = eh.readUInt16LE(0x3c);
		const loads: [bigint, bigint, bigint][] = [];
		const ph = readAt(fd, phoff, phentsize * phnum);
		for (let i = 0; i + 56 <= ph.length; i += phentsize)
			if (ph.readUInt32LE(i) === 1)
				loads.push([ph.readBigUInt64LE(i + 8), ph.readBigUInt64LE(i + 16), ph.readBigUInt64LE(i + 32)]);
		const sh = readAt(fd, shoff, shentsize * shnum);
		const section = (i: number) => ({
			type: sh.readUInt32LE(i * shentsize + 4),
			offset: sh.readBigUInt64LE(i * shentsize + 24),
			size: sh.readBigUInt64LE(i * shentsize + 32),
			link: sh.readUInt32LE(i * shentsize + 40),
		});
		const tables = [2, 11]; // SHT_SYMTAB, else SHT_DYNSYM
		const funcs: Sym[] = [];
		for (const type of tables) {
			for (let i = 0; i < shnum && (i + 1) * shentsize <= sh.length; i++) {
				const s = section(i);
				if (s.type !== type) continue;
				const data = readAt(fd, s.offset, Number(s.size));
				const strs = section(s.link);
				const names = readAt(fd, strs.offset, Number(strs.size));
				for (let o = 0; o + 24 <= data.length; o += 24) {
					const info = data[o + 4] as number;
					const value = data.readBigUInt64LE(o + 8);
					if ((info & 0xf) !== 2 || value === 0n) continue; // STT_FUNC
					const at = data.readUInt32LE(o);
					const end = names.indexOf(0, at);
					funcs.push({
						value,
						size: data.readBigUInt64LE(o + 16),
						name: names.toString('utf8', at, end < 0 ? names.length : end),
					});
				}
			}
			if (funcs.length) break;
		}
		funcs.sort((a, b) => (a.value < b.value ? -1 : a.value > b.value ? 1 : 0));
		return { loads, funcs };
	} finally {
		closeSync(fd);
	}
}

export class Symbolizer {
	readonly pid: number;
	readonly #mappings: Mapping[];
	readonly #elves = new Map<string, ElfSymbols | undefined>();

	/** Reads /proc/<pid>/maps now: modules mapped later are not seen. */
	constructor(pid: number = process.pid) {
		this.pid = pid;
		this.#mappings = [];
		for (const line of readFileSync(`/proc/${pid}/maps`, 'utf8').split('\n')) {
			// start-end perms offset dev inode path
			const m = /^([0-9a-f]+)-([0-9a-f]+) \S+ ([0-9a-f]+) \S+ \d+\s+(\/.*)$/.exec(line);
			if (!m) continue;
			this.#mappings.push({
				start: BigInt(`0x${m[1]}`),
				end: BigInt(`0x${m[2]}`),
				fileOffset: BigInt(`0x${m[3]}`),
				path: m[4] as string,
			});
		}
	}

	symbolize(address: bigint): Frame {
		const map = this.#mappings.find((m) => address >= m.start && address < m.end);
		if (!map) return { address };
		const frame: Frame = { address, module: map.path };
		let elf = this.#elves.get(map.path);
		if (!this.#elves.has(map.path)) {
			elf = readElf(map.path);
			this.#elves.set(map.path, elf);
		}
		if (!elf) return frame;
		const fileOffset = address - map.start + map.fileOffset;
		const load = elf.loads.find(([off, , size]) => fileOffset >= off && fileOffset < off + size);
		if (!load) return frame;
		const vaddr = fileOffset - load[0] + load[1];
		// The last function starting at or before vaddr.
		let lo = 0;
		let hi = elf.funcs.length - 1;
		let best = -1;
		while (lo <= hi) {
			const mid = (lo + hi) >> 1;
			if ((elf.funcs[mid] as Sym).value <= vaddr) {
				best = mid;
				lo = mid + 1;
			} else hi = mid - 1;
		}
		if (best < 0) return frame;
		const f = elf.funcs[best] as Sym;
		if (f.size !== 0n && vaddr >= f.value + f.size) return frame;
		return { ...frame, symbol: f.name, offset: vaddr - f.value };
	}

	/** "symbol+0x1f (module)", or the address in hex. */
	format(address: bigint): string {
		const f = this.symbolize(address);
		const at = `0x${address.toString(16)}`;
		if (f.symbol) return `${f.symbol}+0x${(f.offset ?? 0n).toString(16)} (${f.module})`;
		return f.module ? `${at} (${f.module})` : at;
	}
}
