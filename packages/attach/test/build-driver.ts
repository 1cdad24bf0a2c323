// Builds the native test driver at test time: the fixture programs
// (native/test/fixtures) compiled by the host C compiler as a PIE and as a
// non-PIE executable, linked with the driver object and the attach core
// that the package build produced (build/Release/attach-test-link.txt).
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { nativeTools } from '../src/index.js';

const run = promisify(execFile);

export type Layout = 'pie' | 'nopie';

export interface Driver {
	pie: string;
	nopie: string;
	/** libattach_dl.so, loaded with dlopen by the `dlopen` scenario. */
	dlopenLib: string;
}

export async function buildDriver(work: string): Promise<Driver> {
	const linkFile = nativeTools.linkFile;
	if (!linkFile) throw new Error('attach-test-link.txt is not built: run the package build first');
	const link = readFileSync(linkFile, 'utf8').split('\n').filter(Boolean);
	const fx = nativeTools.fixturesDir;
	const cflags = ['-O2', '-fno-inline', '-fno-optimize-sibling-calls'];
	await run('cc', ['-shared', '-fPIC', '-O2', join(fx, 'libfixture.c'), '-o', join(work, 'libattach_fixture.so')]);
	await run('cc', ['-shared', '-fPIC', '-O2', join(fx, 'libdl_fixture.c'), '-o', join(work, 'libattach_dl.so')]);
	const out: Partial<Driver> = { dlopenLib: join(work, 'libattach_dl.so') };
	await Promise.all(
		(['pie', 'nopie'] as Layout[]).map(async (layout) => {
			const pf = layout === 'pie' ? '-fpie' : '-fno-pie';
			const asm = join(work, `prologues-${layout}.o`);
			const c = join(work, `targets-${layout}.o`);
			await run('cc', ['-c', pf, join(fx, 'prologues.S'), '-o', asm]);
			await run('cc', ['-c', pf, ...cflags, join(fx, 'targets.c'), '-o', c]);
			const exe = join(work, `attach-driver-${layout}`);
			await run('c++', [
				layout === 'pie' ? '-pie' : '-no-pie',
				asm,
				c,
				...link,
				`-L${work}`,
				'-lattach_fixture',
				`-Wl,-rpath,${work}`,
				'-o',
				exe,
			]);
			out[layout] = exe;
		}),
	);
	return out as Driver;
}
