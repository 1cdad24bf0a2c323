// Builds the C fixtures with the system's clang at test time, once per test
// file, into a private temporary directory removed after the file's tests.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { compileBpf, findClang, run, useBuildDir } from '@bpftime/test-support';
import { afterAll, beforeAll } from 'vitest';
import { KernelTarget } from './targets.js';

export const fixtureDir = new URL('./fixtures/', import.meta.url).pathname;

/** clang-19 when installed (needed for -mcpu=v4), else the default clang. */
export const clang = findClang(['clang-19']) ?? 'clang';
export const hasClang19 = clang === 'clang-19';

export const VMLINUX = '/sys/kernel/btf/vmlinux';
export const hasVmlinux = existsSync(VMLINUX);

export interface Fixtures {
	dir: string;
	/** Compiles test/fixtures/<name>.bpf.c (or .c with `bpf: false`) and returns the object's path. */
	bpf(name: string, flags?: string[]): Promise<string>;
	/** Builds a host program from test/fixtures/<name>.c. */
	host(name: string, libs?: string[]): Promise<string>;
	/** The victim binary (uprobe and USDT target). */
	victim(): Promise<string>;
}

/** A temporary directory for this test file's objects; removed after all its tests. */
export function useFixtures(): Fixtures {
	const { dir, once } = useBuildDir('loader');
	let builds = 0;
	const victim = () =>
		once('victim', async () => {
			const out = join(dir, 'victim');
			await run('cc', ['-g', '-O1', '-o', out, join(fixtureDir, 'victim.c')]);
			return out;
		});
	return {
		dir,
		victim,
		bpf(name, flags = []) {
			return once(`bpf:${name}:${flags.join(' ')}`, () => {
				const tag = flags.length ? `-${++builds}` : '';
				const src = existsSync(join(fixtureDir, `${name}.bpf.c`))
					? join(fixtureDir, `${name}.bpf.c`)
					: join(fixtureDir, `${name}.c`);
				return compileBpf(clang, src, join(dir, `${name}${tag}.bpf.o`), flags);
			});
		},
		host(name, libs = []) {
			return once(`host:${name}`, async () => {
				const out = join(dir, name);
				await run('cc', ['-O1', '-o', out, join(fixtureDir, `${name}.c`), ...libs]);
				return out;
			});
		},
	};
}

/** Whether this process may call bpf(2) (root, or CAP_BPF), checked by loading a trivial program. */
export async function bpfAllowed(fx: Fixtures): Promise<{ ok: boolean; why: string }> {
	try {
		const tool = await fx.host('kernel-target', ['-lbpf']);
		const { stdout } = await run('sh', [
			'-c',
			`printf 'P 1 0 0 0 GPL probe -1 - - b7000000000000009500000000000000\\n' | ${tool}`,
		]);
		if (stdout.startsWith('OK')) return { ok: true, why: '' };
		return { ok: false, why: `bpf(BPF_PROG_LOAD) refused here: ${stdout.trim()}` };
	} catch (e) {
		return { ok: false, why: `cannot build or run the kernel target: ${(e as Error).message}` };
	}
}

/**
 * A KernelTarget for the tests of the current file (or describe): made
 * before them when bpf(2) is allowed here, closed after them. Returns what a
 * test calls for it: the target, or, where there is none, a skip of the
 * test (`ctx.skip()`) that logs why.
 */
export function useKernelTarget(fx: Fixtures): (ctx: { skip: () => void }) => KernelTarget {
	let kernel: KernelTarget | undefined;
	let skip = '';
	beforeAll(async () => {
		const allowed = await bpfAllowed(fx);
		if (!allowed.ok) skip = allowed.why;
		else kernel = new KernelTarget(await fx.host('kernel-target', ['-lbpf']));
	});
	afterAll(() => kernel?.close());
	return (ctx) => {
		if (!kernel) {
			console.log(`skipped: ${skip}`);
			ctx.skip();
		}
		return kernel as KernelTarget;
	};
}
