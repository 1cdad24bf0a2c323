import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { existsSync } from 'node:fs';
import { Segment } from '@bpftime/shm';
import { onTestFinished } from 'vitest';
import { BpftimeError, Registry, type RegistryOptions } from '../src/index.js';

let counter = 0;

/** A segment name private to this test, removed when the test ends. */
export function uniqueName(tag: string): string {
	const name = `bpftime_test_${tag}_${process.pid}_${counter++}`;
	onTestFinished(() => {
		if (existsSync(`/dev/shm/${name}`)) Segment.remove({ name });
	});
	return name;
}

/** A fresh segment and registry, both gone when the test ends. */
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

/** Raw eBPF instructions from (opcode, dst, src, off, imm) tuples. */
export function insns(...list: [number, number, number, number, number][]): Buffer {
	const b = Buffer.alloc(list.length * 8);
	list.forEach(([code, dst, src, off, imm], i) => {
		b.writeUInt8(code, i * 8);
		b.writeUInt8((src << 4) | dst, i * 8 + 1);
		b.writeInt16LE(off, i * 8 + 2);
		b.writeInt32LE(imm, i * 8 + 4);
	});
	return b;
}

/** r0 = imm; exit */
export const returnImm = (imm: number): Buffer => insns([0xb7, 0, 0, 0, imm], [0x95, 0, 0, 0, 0]);

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

/** A BTF blob with a valid header and no types (what the kernel's btf_parse_hdr accepts). */
export function emptyBtf(): Buffer {
	const b = Buffer.alloc(24 + 1);
	b.writeUInt16LE(0xeb9f, 0); // magic
	b.writeUInt8(1, 2); // version
	b.writeUInt32LE(24, 4); // hdr_len
	b.writeUInt32LE(0, 8); // type_off
	b.writeUInt32LE(0, 12); // type_len
	b.writeUInt32LE(0, 16); // str_off
	b.writeUInt32LE(1, 20); // str_len: the empty string
	return b;
}
