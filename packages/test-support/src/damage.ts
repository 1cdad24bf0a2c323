// Damaged copies of a registry's JSON document, for the import tests of
// @bpftime/handlers and @bpftime/maps-userspace: a damaged document is either
// imported whole or refused with nothing created.
import { expect } from 'vitest';

/**
 * `rounds` damaged copies of `text`, the same for the same `seed`: every third
 * one cut at a random length, the others with 1 to 4 characters overwritten
 * by characters of `alphabet`.
 */
export function* damagedCopies(
	text: string,
	{ seed, rounds, alphabet }: { seed: number; rounds: number; alphabet: string },
): Generator<string> {
	const next = (n: number) => {
		seed = (seed * 1103515245 + 12345) >>> 0;
		return seed % n;
	};
	for (let round = 0; round < rounds; round++) {
		let damaged = text;
		if (round % 3 === 0) damaged = text.slice(0, next(text.length));
		else
			for (let k = 0; k < 1 + next(4); k++) {
				const at = next(damaged.length);
				damaged = damaged.slice(0, at) + alphabet.charAt(next(alphabet.length)) + damaged.slice(at + 1);
			}
		yield damaged;
	}
}

/**
 * Imports `damaged` into `reg`: true when it still read as a valid document
 * and was imported; false when it was refused, which the test checks was with
 * one of the codes a bad document gets and with `held()` (what the refused
 * import could have left behind) 0.
 */
export function importOrRefuse(reg: { importJson(text: string): void }, damaged: string, held: () => number): boolean {
	try {
		reg.importJson(damaged);
		return true;
	} catch (e) {
		expect(['EINVAL', 'EPROTONOSUPPORT', 'E2BIG', 'EBADF', 'EEXIST', 'ENOENT']).toContain((e as { code: string }).code);
		expect(held()).toBe(0);
		return false;
	}
}
