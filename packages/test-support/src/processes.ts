// Child processes of a test: started with pipes, killed (SIGKILL) when the
// test finishes if still running, awaited by what they print, never by a
// sleep.
import { type ChildProcess, type SpawnOptions, spawn } from 'node:child_process';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import { onTestFinished } from 'vitest';

/** `env` laid over process.env; a key set to undefined is removed. */
export function childEnv(env: NodeJS.ProcessEnv = {}): Record<string, string> {
	return Object.fromEntries(
		Object.entries({ ...process.env, ...env }).filter((entry): entry is [string, string] => entry[1] !== undefined),
	);
}

/** Kills child with SIGKILL when the current test finishes, unless it has exited. */
export function killOnFinish(child: ChildProcess): ChildProcess {
	onTestFinished(() => {
		if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
	});
	return child;
}

/** Starts `command args` with stdout and stderr piped, killed when the test finishes. */
export function startProcess(command: string, args: string[], options: SpawnOptions = {}): ChildProcess {
	return killOnFinish(spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'], ...options }));
}

/** Starts `node script args` with `env` over process.env, killed when the test finishes. */
export function startNode(script: string, args: string[], env: NodeJS.ProcessEnv = {}): ChildProcess {
	return startProcess(process.execPath, [script, ...args], { env: childEnv(env) });
}

/** Collects a child's output and waits for it to exit. */
export async function finished(
	child: ChildProcess,
): Promise<{ code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string }> {
	let stdout = '';
	let stderr = '';
	child.stdout?.on('data', (d) => {
		stdout += d;
	});
	child.stderr?.on('data', (d) => {
		stderr += d;
	});
	const [code, signal] = (await once(child, 'exit')) as [number | null, NodeJS.Signals | null];
	return { code, signal, stdout, stderr };
}

/**
 * Resolves with the first stdout line printed from now on that starts with
 * `match` (a string) or matches it (a RegExp); rejects, with the child's
 * stderr, when the child exits first.
 */
export function waitForLine(child: ChildProcess, match: string | RegExp): Promise<string> {
	const test = (line: string) => (typeof match === 'string' ? line.startsWith(match) : match.test(line));
	return new Promise((resolve, reject) => {
		let buf = '';
		let err = '';
		const onData = (d: Buffer) => {
			buf += d;
			for (const line of buf.split('\n')) {
				if (test(line)) {
					child.stdout?.off('data', onData);
					resolve(line);
					return;
				}
			}
		};
		child.stdout?.on('data', onData);
		child.stderr?.on('data', (d) => {
			err += d;
		});
		child.once('exit', (code, signal) =>
			reject(new Error(`child exited (${code ?? signal}) before printing ${String(match)}: ${err}`)),
		);
	});
}

/** A running child whose stdout and stderr are collected by line. */
export class Proc {
	readonly child: ChildProcess;
	readonly stdout: string[] = [];
	readonly stderr: string[] = [];
	readonly #waiters: { re: RegExp; stream: 'stdout' | 'stderr'; resolve: (line: string) => void }[] = [];
	/** Settles once the process exited and both streams were read to the end. */
	readonly closed: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;

	/** Takes over child (spawned with piped output); kills it when the test finishes. */
	constructor(child: ChildProcess) {
		this.child = child;
		this.closed = once(child, 'close').then(([code, signal]) => ({ code, signal }));
		for (const stream of ['stdout', 'stderr'] as const) {
			const s = child[stream];
			if (!s) continue;
			createInterface({ input: s }).on('line', (line) => {
				this[stream].push(line);
				for (const w of [...this.#waiters]) {
					if (w.stream === stream && w.re.test(line)) {
						this.#waiters.splice(this.#waiters.indexOf(w), 1);
						w.resolve(line);
					}
				}
			});
		}
		killOnFinish(child);
	}

	/** Resolves with the first line (seen before or after the call) that matches; rejects if the process ends first. */
	waitFor(stream: 'stdout' | 'stderr', re: RegExp): Promise<string> {
		const seen = this[stream].find((l) => re.test(l));
		if (seen !== undefined) return Promise.resolve(seen);
		return new Promise((resolve, reject) => {
			this.#waiters.push({ re, stream, resolve });
			this.closed.then(({ code, signal }) => {
				const late = this[stream].find((l) => re.test(l));
				if (late !== undefined) resolve(late);
				else
					reject(
						new Error(
							`exited (${code ?? signal}) before printing ${re} on ${stream}; stderr:\n${this.stderr.join('\n')}`,
						),
					);
			});
		});
	}

	async done(): Promise<{ code: number | null; signal: NodeJS.Signals | null; stdout: string[]; stderr: string[] }> {
		const r = await this.closed;
		return { ...r, stdout: this.stdout, stderr: this.stderr };
	}
}

/** Node scripts of a package's test/fixtures folder, run as child processes. */
export interface NodeFixtures {
	/** The absolute path of fixtures/<file>. */
	fixture(file: string): string;
	/** Starts `node fixtures/<file> args` with `env` over process.env, killed when the test finishes. */
	startChild(file: string, args: string[], env?: NodeJS.ProcessEnv): ChildProcess;
	/** Runs `node fixtures/<file> args` to completion and returns its exit code and output. */
	runChild(
		file: string,
		args: string[],
		env?: NodeJS.ProcessEnv,
	): Promise<{ code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string }>;
}

/** The node fixtures in `dir`, e.g. `nodeFixtures(new URL('./fixtures/', import.meta.url))`. */
export function nodeFixtures(dir: URL): NodeFixtures {
	const fixture = (file: string) => new URL(file, dir).pathname;
	const startChild = (file: string, args: string[], env: NodeJS.ProcessEnv = {}) => startNode(fixture(file), args, env);
	return { fixture, startChild, runChild: (file, args, env) => finished(startChild(file, args, env)) };
}
