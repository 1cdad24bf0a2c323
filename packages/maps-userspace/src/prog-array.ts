// ProgArray: a typed view of BPF_MAP_TYPE_PROG_ARRAY, the programs that
// bpf_tail_call(ctx, map, index) jumps to.
//
//   const jmp = new ProgArray(reg.createMap({ type: MapType.ProgArray, name: 'jmp',
//                                             keySize: 4, valueSize: 4, maxEntries: 8 }));
//   jmp.set(0, reg.prog(id));     // every program of one type (the first's)
//   jmp.get(0);                   // the program id, or undefined
import { type BpfMap, MapType } from '@bpftime/handlers';
import { checkMap, idOf, u32Buffer } from './view.js';

export class ProgArray {
	readonly map: BpfMap;

	constructor(map: BpfMap) {
		checkMap('ProgArray', map, MapType.ProgArray, 4, 4);
		this.map = map;
	}

	/** Stores a program (BPF_ANY only, as the kernel); EINVAL for a program of another type than the others. */
	set(index: number, prog: number | { id: number }): void {
		this.map.update(u32Buffer(index, 'index'), u32Buffer(idOf(prog), 'prog id'));
	}

	/** The id of the program at index, or undefined. */
	get(index: number): number | undefined {
		return this.map.lookup(u32Buffer(index, 'index'))?.readUInt32LE(0);
	}

	/** Empties the slot; false when it was empty. */
	delete(index: number): boolean {
		return this.map.delete(u32Buffer(index, 'index'));
	}

	/** [index, program id] for every filled slot. */
	*entries(): IterableIterator<[number, number]> {
		for (let i = 0; i < this.map.maxEntries; i++) {
			const id = this.get(i);
			if (id !== undefined) yield [i, id];
		}
	}
}
