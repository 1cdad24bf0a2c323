// providers.ts: which package provides which map type, as the packages
// declare it, so that "no implementation of BPF_MAP_TYPE_HASH" can name the
// package to import. handlers itself names none.
//
// A map package declares its types in its package.json:
//   "bpftime": { "mapTypes": ["BPF_MAP_TYPE_ARRAY", "BPF_MAP_TYPE_HASH"] }
// (kernel names, or numbers for bpftime's own types). At import, handlers
// reads the package.json of every package beside its own folder (the
// workspace's packages/, or node_modules/@bpftime/ when installed) and hands
// the declarations to the native core (declareMapTypeProvider). A package
// that is not beside it is simply not named: the error then says no installed
// package declares the type.
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { mapTypeNames } from '@bpftime/common';
import { native } from './native.js';

function mapTypeNumber(t: unknown): number | undefined {
	if (typeof t === 'number' && Number.isInteger(t) && t > 0 && t <= 0xffffffff) return t;
	if (typeof t !== 'string') return undefined;
	const n = mapTypeNames.indexOf(t);
	return n > 0 ? n : undefined;
}

/** Reads the declarations of the packages beside this one; returns how many types were declared. */
export function declareInstalledProviders(): number {
	const scope = dirname(fileURLToPath(new URL('..', import.meta.url)));
	let entries: string[];
	try {
		entries = readdirSync(scope);
	} catch {
		return 0;
	}
	let declared = 0;
	for (const e of entries) {
		let pkg: { name?: unknown; bpftime?: { mapTypes?: unknown } };
		try {
			pkg = JSON.parse(readFileSync(join(scope, e, 'package.json'), 'utf8'));
		} catch {
			continue;
		}
		const types = pkg.bpftime?.mapTypes;
		if (typeof pkg.name !== 'string' || !Array.isArray(types)) continue;
		for (const t of types) {
			const n = mapTypeNumber(t);
			if (n === undefined) continue;
			native.declareMapTypeProvider(n, pkg.name);
			declared++;
		}
	}
	return declared;
}

declareInstalledProviders();
