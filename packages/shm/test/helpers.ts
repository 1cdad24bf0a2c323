import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { existsSync } from 'node:fs';
import { onTestFinished } from 'vitest';
import { Segment } from '../src/index.js';

let counter = 0;

/** A segment name private to this test, removed when the test ends. */
export function uniqueName(tag: string): string {
	const name = `bpftime_test_${tag}_${process.pid}_${counter++}`;
	onTestFinished(() => {
		if (existsSync(`/dev/shm/${name}`)) Segment.remove({ name });
	});
	return name;
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

/** Resolves with the first stdout line that starts with `prefix`. */
export async function waitForLine(child: ChildProcess, prefix: string): Promise<string> {
	let buffered = '';
	let stderr = '';
	child.stderr?.on('data', (d) => {
		stderr += d;
	});
	return new Promise((resolve, reject) => {
		child.stdout?.on('data', (d) => {
			buffered += d;
			for (const line of buffered.split('\n')) if (line.startsWith(prefix)) resolve(line);
		});
		child.on('exit', (code, signal) =>
			reject(new Error(`child exited (${code ?? signal}) before printing '${prefix}': ${stderr}`)),
		);
	});
}

/** Runs a fixture to completion and returns its exit code and output. */
export async function runChild(
	file: string,
	args: string[],
	env: NodeJS.ProcessEnv = {},
): Promise<{ code: number | null; stdout: string; stderr: string }> {
	const child = startChild(file, args, env);
	let stdout = '';
	let stderr = '';
	child.stdout?.on('data', (d) => {
		stdout += d;
	});
	child.stderr?.on('data', (d) => {
		stderr += d;
	});
	const [code] = (await once(child, 'exit')) as [number | null];
	return { code, stdout, stderr };
}
