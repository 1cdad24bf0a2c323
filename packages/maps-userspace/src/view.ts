// What the typed views of this package share: a view is made once over a
// BpfMap of its kernel type, and checks the type and sizes then (aya's
// typed maps do the same), so each operation after that only converts.
import { type BpfMap, BpftimeError, type MapType } from '@bpftime/handlers';

/** Throws EINVAL naming the view unless `map` is of `type` with the given key and value sizes. */
export function checkMap(view: string, map: BpfMap, type: MapType, keySize?: number, valueSize?: number): void {
	if (map.type !== type)
		throw new BpftimeError('EINVAL', `${view}: ${map.describe()} is ${map.typeName}, not the view's type ${type}`);
	if (keySize !== undefined && map.keySize !== keySize)
		throw new BpftimeError('EINVAL', `${view}: Expected ${keySize}-byte keys but ${map.describe()} has ${map.keySize}`);
	if (valueSize !== undefined && map.valueSize !== valueSize)
		throw new BpftimeError(
			'EINVAL',
			`${view}: Expected ${valueSize}-byte values but ${map.describe()} has ${map.valueSize}`,
		);
}

export function u32Buffer(n: number, what: string): Buffer {
	if (!Number.isInteger(n) || n < 0 || n > 0xffffffff)
		throw new BpftimeError('EINVAL', `Expected u32 for ${what} but received ${n} (${typeof n})`);
	const b = Buffer.alloc(4);
	b.writeUInt32LE(n, 0);
	return b;
}

/** An object's registry id: a number, or anything with an `id` (Prog, BpfMap). */
export function idOf(x: number | { id: number }): number {
	return typeof x === 'number' ? x : x.id;
}
