// The maps-userspace tests' registries (with this package's map types
// registered) and node fixtures; the rest comes from @bpftime/test-support.
import { Registry, type RegistryOptions } from '@bpftime/handlers';
import { Segment } from '@bpftime/shm';
import * as support from '@bpftime/test-support';
import '../src/index.js';

export { errorOf, finished, u32le, u64le, uniqueSegmentName as uniqueName, waitForLine } from '@bpftime/test-support';

/** A fresh segment and registry with the map types of this package, both gone when the test ends. */
export function freshRegistry(tag: string, options: RegistryOptions & { sizeMb?: number } = {}) {
	return support.freshRegistry({ Segment, Registry }, tag, options);
}

export const { fixture, startChild, runChild } = support.nodeFixtures(new URL('./fixtures/', import.meta.url));
