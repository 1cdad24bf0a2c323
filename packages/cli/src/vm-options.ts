// vm-options.ts: the options that choose how programs run and where the
// registry lives, shared by load, start and run: --vm, --shm-size and
// --verbose, and the environment they turn into for a child process (the
// agent and the syscall-server read BPFTIME_VM_NAME, BPFTIME_SHM_MEMORY_MB
// and SPDLOG_LEVEL).
import { UsageError } from './command.js';

export type Backend = 'interpreter' | 'jit' | 'llvm';
export const BACKENDS: readonly Backend[] = ['interpreter', 'jit', 'llvm'];

/** The option spec of these options, for takeOptions. */
export const VM_OPTION_SPEC = { '--vm': 'value', '--shm-size': 'value', '--verbose': 'flag' } as const;

export interface VmOptions {
	backend: Backend | undefined;
	/** MiB of a segment this command creates. */
	shmSizeMb: number | undefined;
	verbose: boolean;
}

/** Reads --vm, --shm-size and --verbose out of parsed options; UsageError names a bad value. */
export function vmOptions(options: Record<string, string | true>, command: string): VmOptions {
	const vm = options['--vm'];
	let backend: Backend | undefined;
	if (typeof vm === 'string') {
		if (!(BACKENDS as readonly string[]).includes(vm))
			throw new UsageError(`${command}: --vm: expected interpreter, jit or llvm but received '${vm}'`, command);
		backend = vm as Backend;
	}
	const size = options['--shm-size'];
	let shmSizeMb: number | undefined;
	if (typeof size === 'string') shmSizeMb = parseShmSize(size, command);
	return { backend, shmSizeMb, verbose: options['--verbose'] === true };
}

/**
 * A segment size in MiB: `64`, `64M`, `64MiB`, `1G`, `1GiB` (the kernel's
 * and BPFTIME_SHM_MEMORY_MB's unit is MiB, so a bare number is MiB).
 */
export function parseShmSize(text: string, command: string): number {
	const m = /^(\d{1,7})\s*(M|MB|MiB|G|GB|GiB)?$/i.exec(text);
	const n = m ? Number(m[1]) * (/^g/i.test(m[2] ?? '') ? 1024 : 1) : Number.NaN;
	if (!m || !Number.isSafeInteger(n) || n < 1 || n > 1024 * 1024)
		throw new UsageError(
			`${command}: --shm-size: expected a size in MiB from 1 to 1048576 (64, 64M, 1G) but received '${text}'`,
			command,
		);
	return n;
}

/** `env` with the variables a child's agent or syscall-server reads for these options. */
export function vmEnv(o: VmOptions, env: NodeJS.ProcessEnv = process.env): NodeJS.ProcessEnv {
	const out = { ...env };
	if (o.backend !== undefined) {
		out.BPFTIME_VM_NAME = o.backend;
		// BPFTIME_DISABLE_JIT would override the name the user asked for.
		delete out.BPFTIME_DISABLE_JIT;
	}
	if (o.shmSizeMb !== undefined) out.BPFTIME_SHM_MEMORY_MB = String(o.shmSizeMb);
	if (o.verbose) out.SPDLOG_LEVEL = 'debug';
	return out;
}

/**
 * Throws ENOTSUP, before anything starts, when programs cannot be loaded on
 * `backend` in this process (the LLVM plugin is not built or not found),
 * saying why and which backends there are.
 */
export async function requireBackend(backend: Backend | undefined): Promise<void> {
	if (backend === undefined) return;
	const [{ backendUnavailable }, { BpftimeError }] = await Promise.all([
		import('@bpftime/vm'),
		import('@bpftime/common'),
	]);
	const why = backendUnavailable(backend);
	if (why !== undefined)
		throw new BpftimeError('ENOTSUP', `--vm ${backend}: ${why}; the interpreter and the jit run here (--vm jit)`);
}
