import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { MapType, Registry, u32, u64 } from '@bpftime/handlers';
import { Segment } from '@bpftime/shm';
import { describe, expect, it, onTestFinished } from 'vitest';
import '../src/index.js';

// The native topology of a Node process (root README, "Native topology"):
// every addon links the shared cores of the packages below it, so a process
// holds one copy of each core and maps each segment once.

function mappedPaths(): string[] {
	return readFileSync('/proc/self/maps', 'utf8')
		.split('\n')
		.map((line) => line.split(/\s+/).slice(5).join(' '))
		.filter((path) => path.length > 0);
}

function segmentName(tag: string): string {
	const name = `bpftime_test_${tag}_${process.pid}`;
	onTestFinished(() => {
		if (existsSync(`/dev/shm/${name}`)) Segment.remove({ name });
	});
	return name;
}

describe('native topology', () => {
	it('loads one copy of each core library, shared by every addon', () => {
		const cores = new Map<string, Set<string>>();
		for (const path of mappedPaths()) {
			const m = /\/libbpftime_(\w+)\.so$/.exec(path);
			if (m?.[1]) cores.set(m[1], (cores.get(m[1]) ?? new Set()).add(path));
		}
		expect([...cores.keys()].sort()).toEqual(expect.arrayContaining(['handlers', 'maps_userspace', 'shm', 'vm']));
		for (const [core, paths] of cores) expect([core, [...paths]]).toEqual([core, [...paths].slice(0, 1)]);
	});

	it('finds the shared cores through run paths relative to each library, never absolute ones', () => {
		const libs = [...new Set(mappedPaths().filter((p) => /\/(libbpftime_\w+\.so|bpftime_\w+\.node)$/.test(p)))];
		expect(libs.length).toBeGreaterThanOrEqual(6); // four cores, the handlers and maps-userspace addons
		for (const lib of libs) {
			const runpath = /\(RUNPATH\)\s+Library runpath: \[(.*)\]/.exec(
				execFileSync('readelf', ['-d', lib], { encoding: 'utf8' }),
			);
			const entries = runpath?.[1]?.split(':') ?? [];
			expect([lib, entries.filter((e) => !e.startsWith('$ORIGIN'))]).toEqual([lib, []]);
		}
	});

	it('maps a segment once, however many Segment and Registry objects open it', () => {
		const name = segmentName('topology');
		using seg = Segment.create({ name, sizeMb: 4 });
		const reg = Registry.create(seg);
		const again = Registry.open(Segment.open({ name }));
		onTestFinished(() => {
			again.close();
			reg.close();
		});
		const id = reg.createMap({ type: MapType.Array, keySize: 4, valueSize: 8, maxEntries: 4, name: 'shared' }).id;
		reg.map(id, u32, u64).set(1, 7n);
		expect(again.map(id, u32, u64).get(1)).toBe(7n);
		expect(mappedPaths().filter((p) => p === `/dev/shm/${name}`)).toHaveLength(1);
	});
});
