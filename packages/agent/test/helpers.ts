// What the agent's tests share: fixtures built at test time (clang for the
// eBPF objects, cc for the target), a registry in a segment of its own that
// is removed when the test finishes, and a child process whose output
// lines can be awaited.
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { promisify } from 'node:util';
import { Registry } from '@bpftime/handlers';
import '@bpftime/maps-userspace';
import { Segment } from '@bpftime/shm';
import { afterAll, onTestFinished } from 'vitest';

const run = promisify(execFile);
const fixtureDir = new URL('./fixtures/', import.meta.url).pathname;

export interface Fixtures {
	/** test/fixtures/target.c, built once per test file. */
	target(): Promise<string>;
	/** test/fixtures/<name>.bpf.c, built once per test file. */
	bpf(name: string): Promise<string>;
	/** test/fixtures/lib.c as a shared library (the target dlopen()s it). */
	lib(): Promise<string>;
}

export function useFixtures(): Fixtures {
	const dir = mkdtempSync(join(tmpdir(), 'bpftime-agent-'));
	afterAll(() => rmSync(dir, { recursive: true, force: true }));
	const cache = new Map<string, Promise<string>>();
	const once = (key: string, build: () => Promise<string>): Promise<string> => {
		let p = cache.get(key);
		if (!p) {
			p = build();
			cache.set(key, p);
		}
		return p;
	};
	return {
		target: () =>
			once('target', async () => {
				const out = join(dir, 'target');
				await run('cc', ['-O2', '-pthread', '-o', out, join(fixtureDir, 'target.c'), '-ldl']);
				return out;
			}),
		lib: () =>
			once('lib', async () => {
				const out = join(dir, 'libprobed.so');
				await run('cc', ['-O2', '-shared', '-fPIC', '-o', out, join(fixtureDir, 'lib.c')]);
				return out;
			}),
		bpf: (name) =>
			once(`bpf:${name}`, async () => {
				const out = join(dir, `${name}.bpf.o`);
				await run('clang', [
					'-target',
					'bpf',
					'-O2',
					'-g',
					'-mcpu=v3',
					'-D__TARGET_ARCH_x86',
					'-I/usr/include/x86_64-linux-gnu',
					'-c',
					join(fixtureDir, `${name}.bpf.c`),
					'-o',
					out,
				]);
				return out;
			}),
	};
}

let serial = 0;

/** A fresh segment name, removed (if it was created) when the current test finishes. */
export function segmentName(): string {
	const name = `bpftime_agent_test_${process.pid}_${serial++}`;
	onTestFinished(() => {
		if (Segment.exists({ name })) Segment.remove({ name });
	});
	return name;
}

/** A registry in a new segment that is closed and removed when the current test finishes. */
export function newRegistry(): { name: string; registry: Registry } {
	const name = segmentName();
	const seg = Segment.create({ name, sizeMb: 8 });
	const registry = Registry.create(seg);
	onTestFinished(() => {
		registry.close();
		seg.close();
	});
	return { name, registry };
}

/** A running child whose stdout and stderr are collected by line. */
export class Proc {
	readonly child: ChildProcess;
	readonly stdout: string[] = [];
	readonly stderr: string[] = [];
	readonly #waiters: { re: RegExp; stream: 'stdout' | 'stderr'; resolve: (line: string) => void }[] = [];
	/** Settles once the process exited and both streams were read to the end. */
	readonly closed: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;

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
		onTestFinished(() => {
			if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
		});
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

/** Runs a command without the agent: the reference a run with the agent is compared with. */
export async function runPlain(command: string, args: string[], env: NodeJS.ProcessEnv = process.env) {
	const p = new Proc(spawn(command, args, { env, stdio: ['ignore', 'pipe', 'pipe'] }));
	return p.done();
}
