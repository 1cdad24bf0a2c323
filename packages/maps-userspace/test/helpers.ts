import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { existsSync } from 'node:fs';
import { BpftimeError, Registry, type RegistryOptions } from '@bpftime/handlers';
import { Segment } from '@bpftime/shm';
import { onTestFinished } from 'vitest';
import '../src/index.js';

let counter = 0;

/** A segment name private to this test, removed when the test ends. */
export function uniqueName(tag: string): string {
	const name = `bpftime_test_${tag}_${process.pid}_${counter++}`;
	onTestFinished(() => {
		if (existsSync(`/dev/shm/${name}`)) Segment.remove({ name });
	});
	return name;
}

/** A fresh segment and registry with the map types of this package, both gone when the test ends. */
export function freshRegistry(
	tag: string,
	options: RegistryOptions & { sizeMb?: number } = {},
): { seg: Segment; reg: Registry; name: string } {
	const name = uniqueName(tag);
	const seg = Segment.create({ name, sizeMb: options.sizeMb ?? 8 });
	const reg = Registry.create(seg, options);
	onTestFinished(() => {
		reg.close();
		seg.close();
	});
	return { seg, reg, name };
}

/** Runs fn and returns the BpftimeError it throws; fails the test when it throws nothing or something else. */
export function errorOf(fn: () => unknown): BpftimeError {
	try {
		fn();
	} catch (e) {
		if (e instanceof BpftimeError) return e;
		throw e;
	}
	throw new Error('expected a BpftimeError, but nothing was thrown');
}

export const fixture = (file: string): string => new URL(`./fixtures/${file}`, import.meta.url).pathname;

/** Starts `node fixture args`, killed when the test ends. */
export function startChild(file: string, args: string[], env: NodeJS.ProcessEnv = {}): ChildProcess {
	const child = spawn(process.execPath, [fixture(file), ...args], {
		env: Object.fromEntries(
			Object.entries({ ...process.env, ...env }).filter((entry): entry is [string, string] => entry[1] !== undefined),
		),
		stdio: ['ignore', 'pipe', 'pipe'],
	});
	onTestFinished(() => {
		if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
	});
	return child;
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

/** Runs a fixture to completion and returns its exit code and output. */
export function runChild(file: string, args: string[], env: NodeJS.ProcessEnv = {}) {
	return finished(startChild(file, args, env));
}

/** Resolves with the first stdout line of child that matches, rejects when it exits first. */
export function waitForLine(child: ChildProcess, pattern: RegExp): Promise<string> {
	return new Promise((resolve, reject) => {
		let buf = '';
		let err = '';
		const onData = (d: Buffer) => {
			buf += d;
			for (const line of buf.split('\n')) {
				if (pattern.test(line)) {
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
			reject(new Error(`child exited (${code ?? signal}) before ${pattern}: ${err}`)),
		);
	});
}

export const u32le = (v: number): Buffer => {
	const b = Buffer.alloc(4);
	b.writeUInt32LE(v, 0);
	return b;
};
export const u64le = (v: bigint): Buffer => {
	const b = Buffer.alloc(8);
	b.writeBigUInt64LE(v, 0);
	return b;
};
