// The maps-shared tests' registries (with this package's map types
// registered), and whether the kernel's bpf() can be used here.
import { Registry, type RegistryOptions } from '@bpftime/handlers';
import { Segment } from '@bpftime/shm';
import * as support from '@bpftime/test-support';
import { onTestFinished } from 'vitest';
import { describeKernelMap } from '../src/index.js';

export { errorOf, u32le, u64le } from '@bpftime/test-support';

/**
 * A fresh segment and registry with the map types of this package, both gone when the test ends.
 * Every object left in it is released first (links, programs, then maps), so that each kernel
 * map's pin goes: removing a segment does not run the maps' destroy.
 */
export function freshRegistry(tag: string, options: RegistryOptions & { sizeMb?: number } = {}) {
	const r = support.freshRegistry({ Segment, Registry }, tag, options);
	onTestFinished(() => releaseAll(r.reg));
	return r;
}

/** Releases every object of reg, users before what they use. */
export function releaseAll(reg: Registry): void {
	const order = ['link', 'perf_event', 'prog', 'map', 'btf'];
	const all = reg.list().sort((a, b) => order.indexOf(a.kind) - order.indexOf(b.kind) || b.id - a.id);
	for (const d of all) reg.release(d.id);
}

/** Why kernel maps cannot be used here, or '' when bpf() answers. */
export function bpfUnavailable(): string {
	try {
		// Id 0 never exists: ENOENT means bpf() works, EPERM/ENOSYS that it is refused.
		describeKernelMap(0);
		return '';
	} catch (e) {
		const code = (e as { code?: string }).code;
		return code === 'ENOENT' ? '' : `bpf() is refused here (${code}): kernel maps cannot be created`;
	}
}
