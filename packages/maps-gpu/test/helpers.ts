// The maps-gpu tests' registries (this package's map types registered, and
// maps-userspace's for a map that must survive a failed create), and what
// this machine can do.
import { execFileSync } from 'node:child_process';
import { Registry, type RegistryOptions } from '@bpftime/handlers';
import '@bpftime/maps-userspace';
import { Segment } from '@bpftime/shm';
import * as support from '@bpftime/test-support';
import { isAvailable, MAP_TYPES } from '../src/index.js';
import { whyNoAddon } from '../src/native.js';

export { errorOf, u32le, u64le } from '@bpftime/test-support';

export const packageDir = new URL('..', import.meta.url).pathname;

/** A fresh segment and registry, gone when the test ends. */
export function freshRegistry(tag: string, options: RegistryOptions & { sizeMb?: number } = {}) {
	return support.freshRegistry({ Segment, Registry }, tag, options);
}

/** Why the GPU tests cannot run here, or '' when a device is present. */
export function noDevice(): string {
	const a = isAvailable();
	return a.available ? '' : `no usable GPU here: ${a.reason}`;
}

/** The nvcc found on PATH or in /usr/local/cuda, or undefined. */
export function findNvcc(): string | undefined {
	for (const c of ['nvcc', '/usr/local/cuda/bin/nvcc']) {
		try {
			execFileSync(c, ['--version'], { stdio: 'ignore' });
			return c;
		} catch {}
	}
	return undefined;
}

/** Why this package's native part is absent here (built without the CUDA toolkit), or ''. */
export function noAddon(): string {
	return MAP_TYPES.length ? '' : `the native part of @bpftime/maps-gpu is not built: ${whyNoAddon}`;
}
