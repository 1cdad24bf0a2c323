// ValueList: what the views of BPF_MAP_TYPE_QUEUE (queue.ts) and
// BPF_MAP_TYPE_STACK (stack.ts) share: push, pop, peek on keyless maps.
import { type BpfMap, type Codec, UpdateFlags } from '@bpftime/handlers';
import { expectSize } from './view-checks.js';

const NO_KEY = Buffer.alloc(0);

/** Push, pop and peek of a queue or a stack; see `Queue` and `Stack`. */
export class ValueList<V> {
	readonly map: BpfMap;
	readonly #value: Codec<V>;
	readonly #vbuf: Buffer;

	constructor(map: BpfMap, value: Codec<V>) {
		expectSize(map, 'value', value, map.valueSize, 'valueSize');
		this.map = map;
		this.#value = value;
		this.#vbuf = Buffer.alloc(value.size);
	}

	/**
	 * Adds a value (BPF_MAP_UPDATE_ELEM). A full map throws E2BIG, unless `flags` is
	 * `UpdateFlags.Exist`: then the oldest value makes room, as in the kernel.
	 */
	push(value: V, flags: number = UpdateFlags.Any): this {
		this.#value.encode(value, this.#vbuf, 0);
		this.map.update(NO_KEY, this.#vbuf, flags);
		return this;
	}

	/** Removes and returns the next value (BPF_MAP_LOOKUP_AND_DELETE_ELEM); undefined when empty. */
	pop(): V | undefined {
		const v = this.map.lookupAndDelete(NO_KEY);
		return v === undefined ? undefined : this.#value.decode(v, 0);
	}

	/** The next value, left in place (BPF_MAP_LOOKUP_ELEM); undefined when empty. */
	peek(): V | undefined {
		const v = this.map.lookup(NO_KEY);
		return v === undefined ? undefined : this.#value.decode(v, 0);
	}

	/** Pops every value, in the order the map gives them. */
	*drain(): IterableIterator<V> {
		for (let v = this.pop(); v !== undefined; v = this.pop()) yield v;
	}
}
