// The maps-shared tests' registries (with this package's map types
// registered), and whether the kernel's bpf() can be used here.
import { Registry, type RegistryOptions } from '@bpftime/handlers';
import { Segment } from '@bpftime/shm';
import * as support from '@bpftime/test-support';
import { describeKernelMap } from '../src/index.js';

export { errorOf, u32le, u64le } from '@bpftime/test-support';

/** A fresh segment and registry with the map types of this package, both gone when the test ends. */
export function freshRegistry(tag: string, options: RegistryOptions & { sizeMb?: number } = {}) {
	return support.freshRegistry({ Segment, Registry }, tag, options);
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
