// What only the handlers tests need (raw instructions, an empty BTF blob,
// node fixtures under test/fixtures); the rest comes from
// @bpftime/test-support.
import { Segment } from '@bpftime/shm';
import * as support from '@bpftime/test-support';
import { Registry, type RegistryOptions } from '../src/index.js';

export { damagedCopies, errorOf, importOrRefuse, uniqueSegmentName as uniqueName } from '@bpftime/test-support';

/** A fresh segment and registry, both gone when the test ends. */
export function freshRegistry(tag: string, options: RegistryOptions & { sizeMb?: number } = {}) {
	return support.freshRegistry({ Segment, Registry }, tag, options);
}

export const { runChild } = support.nodeFixtures(new URL('./fixtures/', import.meta.url));

/** Raw eBPF instructions from (opcode, dst, src, off, imm) tuples. */
export function insns(...list: [number, number, number, number, number][]): Buffer {
	const b = Buffer.alloc(list.length * 8);
	list.forEach(([code, dst, src, off, imm], i) => {
		b.writeUInt8(code, i * 8);
		b.writeUInt8((src << 4) | dst, i * 8 + 1);
		b.writeInt16LE(off, i * 8 + 2);
		b.writeInt32LE(imm, i * 8 + 4);
	});
	return b;
}

/** r0 = imm; exit */
export const returnImm = (imm: number): Buffer => insns([0xb7, 0, 0, 0, imm], [0x95, 0, 0, 0, 0]);

/** A BTF blob with a valid header and no types (what the kernel's btf_parse_hdr accepts). */
export function emptyBtf(): Buffer {
	const b = Buffer.alloc(24 + 1);
	b.writeUInt16LE(0xeb9f, 0); // magic
	b.writeUInt8(1, 2); // version
	b.writeUInt32LE(24, 4); // hdr_len
	b.writeUInt32LE(0, 8); // type_off
	b.writeUInt32LE(0, 12); // type_len
	b.writeUInt32LE(0, 16); // str_off
	b.writeUInt32LE(1, 20); // str_len: the empty string
	return b;
}
