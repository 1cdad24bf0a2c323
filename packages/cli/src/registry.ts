// registry.ts: how the commands reach the registry. The packages with native
// addons are imported by the commands that need them, so that help, argument
// errors and `start` work (and start fast) without loading the addons.
import { BpftimeError } from '@bpftime/common';
import type { Registry } from '@bpftime/handlers';
import type { Segment } from '@bpftime/shm';

export async function registryModules() {
	const [{ Registry }, { Segment }] = await Promise.all([
		import('@bpftime/handlers'),
		import('@bpftime/shm'),
		import('@bpftime/maps-userspace'),
	]);
	return { Registry, Segment };
}

/** The --segment option as Segment options. */
export function segmentOptions(segment: string | undefined): { name?: string } {
	return segment === undefined ? {} : { name: segment };
}

/** The registry of an existing segment; ENOENT says how to make one. */
export async function openRegistry(segment: string | undefined): Promise<{ seg: Segment; reg: Registry }> {
	const { Registry, Segment } = await registryModules();
	const name = segment ?? Segment.defaultOptions().name;
	let seg: Segment;
	try {
		// Open, not exists(): a bad name gets the same reason as from load.
		seg = Segment.open({ name });
	} catch (e) {
		if ((e as { code?: string }).code !== 'ENOENT') throw e;
		throw new BpftimeError('ENOENT', `segment '${name}': does not exist; \`bpftime load <prog.bpf.o>\` creates it`);
	}
	try {
		return { seg, reg: Registry.open(seg) };
	} catch (e) {
		seg.close();
		throw e;
	}
}
