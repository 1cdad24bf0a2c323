// The agent from Node: where libbpftime-agent.so is, and how to start a
// target with it preloaded.
import type { ChildProcess, SpawnOptions } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { BpftimeError, findBuilt, type PreloadOptions, preloadEnv, spawnPreloaded } from '@bpftime/common';

const PACKAGE_DIR = fileURLToPath(new URL('..', import.meta.url));
const LIBRARY = 'libbpftime-agent.so';

/**
 * Absolute path of the built libbpftime-agent.so (`build/Release`, else
 * `build/Debug`). Throws ENOENT, listing the paths tried and how to build
 * it, when it is not built.
 */
export function agentPath(): string {
	const found = findBuilt(PACKAGE_DIR, LIBRARY);
	if (found) return found;
	const tried = ['Release', 'Debug'].map((c) => join(PACKAGE_DIR, 'build', c, LIBRARY));
	throw new BpftimeError(
		'ENOENT',
		`@bpftime/agent: ${LIBRARY} is not built. Tried:\n  ${tried.join('\n  ')}\n` +
			'In the bpftime workspace run `pnpm turbo run build --filter @bpftime/agent`; installed from the registry, the package builds it in its install script.',
	);
}

export interface AgentOptions extends PreloadOptions {
	/** How often the agent looks for new links, in ms (BPFTIME_AGENT_POLL_MS; 0: never). Default 100. */
	pollMs?: number;
	/**
	 * Runs ended by a fault (SIGSEGV or SIGBUS inside the program) after which a link is disabled in the process
	 * (BPFTIME_AGENT_MAX_FAULTS; 0: never disabled, every faulting run still ends as if it returned 0). Default 10.
	 */
	maxFaults?: number;
}

export type SpawnWithAgentOptions = SpawnOptions & AgentOptions;

/**
 * The environment that starts a program with the agent: `env` (default
 * `process.env`) with the agent first in LD_PRELOAD and the agent options
 * set.
 */
export function agentEnv(options: AgentOptions & { env?: NodeJS.ProcessEnv } = {}): NodeJS.ProcessEnv {
	const env = preloadEnv(agentPath(), options);
	if (options.pollMs !== undefined) {
		if (!Number.isInteger(options.pollMs) || options.pollMs < 0 || options.pollMs > 60000) {
			throw new BpftimeError(
				'EINVAL',
				`Expected an integer in [0, 60000] for pollMs but received ${String(options.pollMs)} (${typeof options.pollMs})`,
			);
		}
		env.BPFTIME_AGENT_POLL_MS = String(options.pollMs);
	}
	if (options.maxFaults !== undefined) {
		if (!Number.isInteger(options.maxFaults) || options.maxFaults < 0 || options.maxFaults > 0xffffffff) {
			throw new BpftimeError(
				'EINVAL',
				`Expected an integer in [0, 4294967295] for maxFaults but received ${String(options.maxFaults)} (${typeof options.maxFaults})`,
			);
		}
		env.BPFTIME_AGENT_MAX_FAULTS = String(options.maxFaults);
	}
	return env;
}

/**
 * Starts `command` with libbpftime-agent.so preloaded: before its main()
 * runs, the agent attaches the registry's uprobe links that match it, and
 * it keeps attaching links added later. Resolves once the process is
 * spawned; rejects with ENOENT (or the errno of the failed spawn) naming
 * the command.
 *
 * ```ts
 * const child = await spawnWithAgent('./victim', ['10'], { stdio: 'inherit' });
 * ```
 */
export async function spawnWithAgent(
	command: string,
	args: readonly string[] = [],
	options: SpawnWithAgentOptions = {},
): Promise<ChildProcess> {
	const { segment, logLevel, logOutput, pollMs, maxFaults, ...spawnOptions } = options;
	const env = agentEnv({ env: options.env, segment, logLevel, logOutput, pollMs, maxFaults });
	return spawnPreloaded(command, args, spawnOptions, env);
}
