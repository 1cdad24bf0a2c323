// Starting a process with one of bpftime's preloaded libraries (the agent,
// the syscall-server): the environment both need and the spawn that reports
// a failure as a BpftimeError.
import { type ChildProcess, type SpawnOptions, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { expectString } from './checks.js';
import { BpftimeError } from './errors.js';

/** What every preloaded library reads from its environment. */
export interface PreloadOptions {
	/** The registry's segment; default: BPFTIME_GLOBAL_SHM_NAME of `env`, else `bpftime_maps_shm`. */
	segment?: string;
	/** SPDLOG_LEVEL of the library (`trace` … `off`); default: that of `env`, else `info`. */
	logLevel?: string;
	/** BPFTIME_LOG_OUTPUT: `console` (stderr), `stdout`, or a file path; default: that of `env`, else stderr. */
	logOutput?: string;
}

/**
 * `options.env` (default `process.env`) with `library` first in LD_PRELOAD
 * (once) and BPFTIME_GLOBAL_SHM_NAME, SPDLOG_LEVEL and BPFTIME_LOG_OUTPUT set
 * from the options that are given. EINVAL for an option that is not a string.
 */
export function preloadEnv(
	library: string,
	options: PreloadOptions & { env?: NodeJS.ProcessEnv } = {},
): NodeJS.ProcessEnv {
	const env: NodeJS.ProcessEnv = { ...(options.env ?? process.env) };
	const others = (env.LD_PRELOAD ?? '').split(/[: ]/).filter((p) => p !== '' && p !== library);
	env.LD_PRELOAD = [library, ...others].join(':');
	if (options.segment !== undefined) env.BPFTIME_GLOBAL_SHM_NAME = expectString(options.segment, 'segment');
	if (options.logLevel !== undefined) env.SPDLOG_LEVEL = expectString(options.logLevel, 'logLevel');
	if (options.logOutput !== undefined) env.BPFTIME_LOG_OUTPUT = expectString(options.logOutput, 'logOutput');
	return env;
}

/**
 * `child_process.spawn(command, args, { ...options, env })`, resolved once
 * the process is spawned; rejects with the errno of the failed spawn (ENOENT
 * with a hint when `command` names a file in the current folder without
 * `./`). Checks that command and args are strings (EINVAL).
 */
export async function spawnPreloaded(
	command: string,
	args: readonly string[],
	options: SpawnOptions,
	env: NodeJS.ProcessEnv,
): Promise<ChildProcess> {
	expectString(command, 'command');
	for (const [i, a] of args.entries()) expectString(a, `args[${i}]`);
	const child = spawn(command, args, { ...options, env });
	await new Promise<void>((resolve, reject) => {
		const onError = (e: NodeJS.ErrnoException) => {
			child.off('spawn', onSpawn);
			const code = e.code ?? 'EIO';
			const hint =
				code === 'ENOENT' && !command.includes('/') && existsSync(command) ? ` (did you mean ./${command}?)` : '';
			reject(new BpftimeError(code, `spawn '${command}': ${e.message}${hint}`));
		};
		const onSpawn = () => {
			child.off('error', onError);
			resolve();
		};
		child.once('error', onError);
		child.once('spawn', onSpawn);
	});
	return child;
}
