// native.ts: the addon of this package, when it was built. Without the CUDA
// toolkit at build time there is no addon: the package still imports, its
// map types are not registered, and isAvailable() says why.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadNative, type NativeAddon } from '@bpftime/common';

/** This process's open GPU map, made by `openMap` (a registry object of its own on the segment). */
export interface NativeGpuMapHandle {
	consume(maxRecords: number, maxBytes: number | bigint): { count: number; sizes: Buffer; data: Buffer };
	dropped(): bigint;
	deviceMap(): Buffer;
	close(): void;
}

export interface MapsGpuAddon extends NativeAddon {
	mapOps(): { type: number; typeName: string; ops: unknown }[];
	probe(): { code: number; detail: string };
	openMap(segmentName: string, mapId: number): NativeGpuMapHandle;
}

const packageDir = fileURLToPath(new URL('..', import.meta.url));

function load(): { native?: MapsGpuAddon; why: string } {
	for (const config of ['Release', 'Debug']) {
		const note = join(packageDir, 'build', config, 'no-cuda-toolkit.txt');
		if (existsSync(note)) return { why: readFileSync(note, 'utf8').trim() };
	}
	try {
		return { native: loadNative<MapsGpuAddon>(packageDir, 'maps_gpu'), why: '' };
	} catch (e) {
		return { why: (e as Error).message };
	}
}

const loaded = load();
/** The addon, or undefined when it was not built (`whyNoAddon` says why). */
export const native: MapsGpuAddon | undefined = loaded.native;
export const whyNoAddon: string = loaded.why;
