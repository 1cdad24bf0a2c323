// Queue: a typed view of a BPF_MAP_TYPE_QUEUE map.
import { type BpfMap, type Codec, MapType } from '@bpftime/handlers';
import { ValueList } from './value-list.js';
import { expectType } from './view-checks.js';

/**
 * BPF_MAP_TYPE_QUEUE: first in, first out. Programs use bpf_map_push_elem, bpf_map_pop_elem and
 * bpf_map_peek_elem.
 *
 *   const q = new Queue(reg.createMap({ type: MapType.Queue, name: 'q', keySize: 0, valueSize: 8,
 *     maxEntries: 64 }), u64);
 *   q.push(1n).push(2n); q.pop(); // 1n
 */
export class Queue<V> extends ValueList<V> {
	constructor(map: BpfMap, value: Codec<V>) {
		expectType(map, MapType.Queue, 'Queue', 'BPF_MAP_TYPE_QUEUE');
		super(map, value);
	}
}
