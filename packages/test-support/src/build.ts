// Fixtures built at test time: clang for eBPF objects (*.bpf.c), cc for
// host programs, into a temporary folder per test file that is removed
// after its tests; each artefact is built once per file however many tests
// ask for it.
import { execFile, execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll } from 'vitest';

/** execFile as a promise: rejects with the tool's stderr in the message when it fails. */
export const run = promisify(execFile);

function runs(cmd: string): boolean {
	try {
		execFileSync(cmd, ['--version'], { stdio: 'ignore' });
		return true;
	} catch {
		return false;
	}
}

/** The first of `candidates` that runs here, or undefined (tests then skip, saying so). */
export function findClang(candidates: readonly string[] = ['clang', 'clang-19', 'clang-14']): string | undefined {
	return candidates.find(runs);
}

/**
 * The multiarch include folder that holds <asm/types.h>, which <linux/bpf.h>
 * includes: a clang targeting bpf does not search it by itself.
 */
export const hostInclude = `/usr/include/${process.arch === 'arm64' ? 'aarch64' : 'x86_64'}-linux-gnu`;

/** Compiles an eBPF C source to `out` (-target bpf -O2 -g, -mcpu=v3 unless `flags` names one). */
export async function compileBpf(
	clang: string,
	source: string,
	out: string,
	flags: readonly string[] = [],
): Promise<string> {
	const mcpu = flags.some((f) => f.startsWith('-mcpu=')) ? [] : ['-mcpu=v3'];
	await run(clang, ['-target', 'bpf', '-O2', '-g', ...mcpu, `-I${hostInclude}`, ...flags, '-c', source, '-o', out]);
	return out;
}

export interface BuildDir {
	/** The temporary folder, removed after the test file's tests. */
	dir: string;
	/** Runs `build` the first time `key` is asked for; later calls share its promise. */
	once(key: string, build: () => Promise<string>): Promise<string>;
}

/** A build folder for this test file (call at the top level of the file, or in a describe). */
export function useBuildDir(tag: string): BuildDir {
	const dir = mkdtempSync(join(tmpdir(), `bpftime-${tag}-`));
	afterAll(() => rmSync(dir, { recursive: true, force: true }));
	const cache = new Map<string, Promise<string>>();
	return {
		dir,
		once(key, build) {
			let p = cache.get(key);
			if (!p) {
				p = build();
				cache.set(key, p);
			}
			return p;
		},
	};
}
