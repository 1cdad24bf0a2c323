// StackTraceMap: a typed view of BPF_MAP_TYPE_STACK_TRACE: the stacks that
// bpf_get_stackid stored, by id, as addresses (bigint) or symbolised.
//
//   const stacks = new StackTraceMap(reg.mapByName('stacks'));
//   const frames = stacks.get(id);                  // bigint[] | undefined
//   const sym = new Symbolizer(targetPid);          // the process that ran the program
//   for (const ip of frames ?? []) console.log(sym.format(ip));
import { type BpfMap, MapType } from '@bpftime/handlers';
import type { Frame, Symbolizer } from './symbols.js';
import { checkMap, u32Buffer } from './view.js';

export class StackTraceMap {
	readonly map: BpfMap;
	/** Frames per stack: value_size / 8. */
	readonly depth: number;

	constructor(map: BpfMap) {
		checkMap('StackTraceMap', map, MapType.StackTrace, 4);
		this.map = map;
		this.depth = map.valueSize / 8;
	}

	/** The addresses of stack `id`, innermost first, or undefined. */
	get(id: number): bigint[] | undefined {
		const v = this.map.lookup(u32Buffer(id, 'stack id'));
		if (!v) return undefined;
		const out: bigint[] = [];
		for (let i = 0; i < this.depth; i++) {
			const ip = v.readBigUInt64LE(i * 8);
			if (ip === 0n) break;
			out.push(ip);
		}
		return out;
	}

	/** Stack `id` symbolised through `symbolizer` (made for the process that recorded it). */
	frames(id: number, symbolizer: Symbolizer): Frame[] | undefined {
		return this.get(id)?.map((ip) => symbolizer.symbolize(ip));
	}

	delete(id: number): boolean {
		return this.map.delete(u32Buffer(id, 'stack id'));
	}

	/** [id, addresses] of every stored stack. */
	*entries(): IterableIterator<[number, bigint[]]> {
		for (let k = this.map.nextKey(); k; k = this.map.nextKey(k)) {
			const id = k.readUInt32LE(0);
			const s = this.get(id);
			if (s) yield [id, s];
		}
	}
}
