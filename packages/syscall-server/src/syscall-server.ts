// The syscall-server from Node: where libbpftime-syscall-server.so is, and how
// to start a loader tool with it preloaded.
import type { ChildProcess, SpawnOptions } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { BpftimeError, findBuilt, type PreloadOptions, preloadEnv, spawnPreloaded } from '@bpftime/common';

const PACKAGE_DIR = fileURLToPath(new URL('..', import.meta.url));
const LIBRARY = 'libbpftime-syscall-server.so';

/**
 * Absolute path of the built libbpftime-syscall-server.so (`build/Release`,
 * else `build/Debug`). Throws ENOENT, listing the paths tried and how to
 * build it, when it is not built.
 */
export function syscallServerPath(): string {
	const found = findBuilt(PACKAGE_DIR, LIBRARY);
	if (found) return found;
	const tried = ['Release', 'Debug'].map((c) => join(PACKAGE_DIR, 'build', c, LIBRARY));
	throw new BpftimeError(
		'ENOENT',
		`@bpftime/syscall-server: ${LIBRARY} is not built. Tried:\n  ${tried.join('\n  ')}\n` +
			'In the bpftime workspace run `pnpm turbo run build --filter @bpftime/syscall-server`; installed from the registry, the package builds it in its install script.',
	);
}

export interface SyscallServerOptions extends PreloadOptions {
	/** Leave the tool's objects in the registry when it exits (BPFTIME_KEEP_OBJECTS=1). Default false. */
	keepObjects?: boolean;
}

export type SpawnWithSyscallServerOptions = SpawnOptions & SyscallServerOptions;

/**
 * The environment that starts a tool with the syscall-server: `env`
 * (default `process.env`) with the library first in LD_PRELOAD and the
 * options set.
 */
export function syscallServerEnv(options: SyscallServerOptions & { env?: NodeJS.ProcessEnv } = {}): NodeJS.ProcessEnv {
	const env = preloadEnv(syscallServerPath(), options);
	if (options.keepObjects !== undefined) {
		if (typeof options.keepObjects !== 'boolean') {
			throw new BpftimeError(
				'EINVAL',
				`Expected a boolean for keepObjects but received ${String(options.keepObjects)} (${typeof options.keepObjects})`,
			);
		}
		if (options.keepObjects) env.BPFTIME_KEEP_OBJECTS = '1';
		else delete env.BPFTIME_KEEP_OBJECTS;
	}
	return env;
}

/**
 * Starts a loader tool (a libbpf program, bpftool …) with
 * libbpftime-syscall-server.so preloaded: its bpf() and uprobe
 * perf_event_open() calls are answered from the registry. Resolves once the
 * process is spawned; rejects with ENOENT (or the errno of the failed
 * spawn) naming the command.
 *
 * ```ts
 * const tool = await spawnWithSyscallServer('./uprobe-counter', ['./victim'], { stdio: 'inherit' });
 * ```
 */
export async function spawnWithSyscallServer(
	command: string,
	args: readonly string[] = [],
	options: SpawnWithSyscallServerOptions = {},
): Promise<ChildProcess> {
	const { segment, keepObjects, logLevel, logOutput, ...spawnOptions } = options;
	const env = syscallServerEnv({ env: options.env, segment, keepObjects, logLevel, logOutput });
	return spawnPreloaded(command, args, spawnOptions, env);
}
