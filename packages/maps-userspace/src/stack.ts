// Stack: a typed view of a BPF_MAP_TYPE_STACK map.
import { type BpfMap, type Codec, MapType } from '@bpftime/handlers';
import { ValueList } from './value-list.js';
import { expectType } from './view-checks.js';

/** BPF_MAP_TYPE_STACK: last in, first out; otherwise as `Queue`. */
export class Stack<V> extends ValueList<V> {
	constructor(map: BpfMap, value: Codec<V>) {
		expectType(map, MapType.Stack, 'Stack', 'BPF_MAP_TYPE_STACK');
		super(map, value);
	}
}
