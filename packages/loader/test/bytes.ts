// Hand-made and hand-edited binaries for the bad-input tests: raw BTF built
// record by record, and in-place edits of real objects located through
// their section headers (read here directly from the ELF64 layout).

/** Raw BTF from records (each: name, info, size/type, then extra u32s) and a string table. */
export function rawBtf(
	types: { name?: string; kind: number; vlen?: number; kflag?: boolean; sizeOrType: number; extra?: number[] }[],
): Buffer {
	const strs: string[] = [''];
	const strOff = (s: string | undefined): number => {
		if (!s) return 0;
		let off = 0;
		for (const x of strs) {
			if (x === s) return off;
			off += Buffer.byteLength(x) + 1;
		}
		strs.push(s);
		return off;
	};
	const words: number[] = [];
	for (const t of types) {
		words.push(
			strOff(t.name),
			((t.kflag ? 1 : 0) << 31) | (t.kind << 24) | (t.vlen ?? 0),
			t.sizeOrType,
			...(t.extra ?? []),
		);
	}
	const typeBytes = Buffer.alloc(words.length * 4);
	for (const [i, w] of words.entries()) typeBytes.writeUInt32LE(w >>> 0, i * 4);
	const strBytes = Buffer.from(`${strs.join('\0')}\0`, 'latin1');
	const hdr = Buffer.alloc(24);
	hdr.writeUInt16LE(0xeb9f, 0);
	hdr[2] = 1;
	hdr.writeUInt32LE(24, 4);
	hdr.writeUInt32LE(0, 8);
	hdr.writeUInt32LE(typeBytes.length, 12);
	hdr.writeUInt32LE(typeBytes.length, 16);
	hdr.writeUInt32LE(strBytes.length, 20);
	return Buffer.concat([hdr, typeBytes, strBytes]);
}

export interface RawSection {
	index: number;
	name: string;
	type: number;
	/** Where its header is in the file. */
	header: number;
	offset: number;
	size: number;
	link: number;
	info: number;
}

/** The section headers of an ELF64 little-endian file, names resolved. */
export function sections(buf: Buffer): RawSection[] {
	const shoff = Number(buf.readBigUInt64LE(40));
	const shnum = buf.readUInt16LE(60);
	const shstrndx = buf.readUInt16LE(62);
	const raw = [];
	for (let i = 0; i < shnum; i++) {
		const h = shoff + i * 64;
		raw.push({
			index: i,
			nameOff: buf.readUInt32LE(h),
			type: buf.readUInt32LE(h + 4),
			header: h,
			offset: Number(buf.readBigUInt64LE(h + 24)),
			size: Number(buf.readBigUInt64LE(h + 32)),
			link: buf.readUInt32LE(h + 40),
			info: buf.readUInt32LE(h + 44),
		});
	}
	const names = raw[shstrndx] as { offset: number };
	return raw.map(({ nameOff, ...s }) => ({
		...s,
		name: buf.toString('latin1', names.offset + nameOff, buf.indexOf(0, names.offset + nameOff)),
	}));
}

export function section(buf: Buffer, name: string): RawSection {
	const s = sections(buf).find((x) => x.name === name);
	if (!s) throw new Error(`test: no section ${name}`);
	return s;
}
