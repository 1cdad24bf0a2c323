// Injection into a running process: `bpftime attach <pid>` / `detach <pid>`
// through bpftime-inject, the ptrace injector built beside the agent
// (native/inject/inject.cpp says how it stops a thread and calls dlopen()).
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { BpftimeError, expectString, findBuilt } from '@bpftime/common';
import { agentPath } from './agent.js';

const PACKAGE_DIR = fileURLToPath(new URL('..', import.meta.url));
const INJECTOR = 'bpftime-inject';

/** Absolute path of the built bpftime-inject executable; ENOENT lists the paths tried. */
export function injectorPath(): string {
	const found = findBuilt(PACKAGE_DIR, INJECTOR);
	if (found) return found;
	const tried = ['Release', 'Debug'].map((c) => join(PACKAGE_DIR, 'build', c, INJECTOR));
	throw new BpftimeError(
		'ENOENT',
		`@bpftime/agent: ${INJECTOR} is not built. Tried:\n  ${tried.join('\n  ')}\n` +
			'In the bpftime workspace run `pnpm turbo run build --filter @bpftime/agent`.',
	);
}

function expectPid(pid: unknown): number {
	if (typeof pid !== 'number' || !Number.isInteger(pid) || pid <= 0 || pid > 0x3fffffff) {
		throw new BpftimeError(
			'EINVAL',
			`Expected a pid (positive integer) for pid but received ${String(pid)} (${typeof pid})`,
		);
	}
	return pid;
}

function runInjector(args: string[]): Promise<number> {
	return new Promise((resolve, reject) => {
		execFile(injectorPath(), args, { encoding: 'utf8', timeout: 30_000 }, (err, stdout, stderr) => {
			const ok = /^ok (\d+)$/m.exec(stdout);
			if (!err && ok) {
				resolve(Number(ok[1]));
				return;
			}
			// The injector's message starts with the errno name.
			const line = stderr.trim().split('\n').pop() ?? '';
			const m = /^(E[A-Z0-9]+): ([\s\S]*)$/.exec(line);
			if (m) reject(new BpftimeError(m[1] as string, m[2] as string));
			else reject(new BpftimeError('EIO', `${INJECTOR} ${args[0]}: ${line || err?.message || 'no result'}`));
		});
	});
}

export interface InjectOptions {
	/** The registry's segment; default: BPFTIME_GLOBAL_SHM_NAME, else `bpftime_maps_shm`. */
	segment?: string;
}

/**
 * Loads libbpftime-agent.so into the running process `pid` (ptrace; one
 * thread is stopped for the call, the others keep running) and attaches the
 * registry's links there, as `bpftime start` would have. Resolves with the
 * number of links attached. Rejects with EPERM (ptrace not permitted: the
 * message says why and what to do), EEXIST (the agent is already attached),
 * ESRCH (no such process), ENOENT (the segment does not exist).
 */
export async function inject(pid: number, options: InjectOptions = {}): Promise<number> {
	expectPid(pid);
	const segment =
		options.segment !== undefined
			? expectString(options.segment, 'segment')
			: (process.env.BPFTIME_GLOBAL_SHM_NAME ?? 'bpftime_maps_shm');
	return runInjector(['attach', String(pid), agentPath(), segment]);
}

/**
 * Removes every hook the agent placed in `pid` (the original bytes come
 * back) and stops its watcher; the library stays loaded, inert, since a
 * thread may still be returning through a trampoline. Resolves with the
 * number of hooks removed; ENOENT when the agent is not attached there.
 */
export async function detachAgent(pid: number): Promise<number> {
	expectPid(pid);
	return runInjector(['detach', String(pid)]);
}
