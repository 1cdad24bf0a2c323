import { fileURLToPath } from 'node:url';
import {
	BpftimeError,
	expectBuffer,
	expectString,
	expectU32,
	findBuilt,
	loadNative,
	type NativeAddon,
} from '@bpftime/common';
import { assemble } from './asm/index.js';

interface NativeVm {
	registerHelper(id: number, name: string, fn: HelperFn): void;
	registerIdentityHelper(id: number): void;
	addMemoryRegion(region: Buffer, writable: boolean): void;
	load(code: Buffer): void;
	run(ctx?: Buffer): bigint;
	instructions(): Buffer;
	compileTimeNs(): bigint;
	close(): void;
}

interface VmAddon extends NativeAddon {
	VmHandle: new (backend: string, boundsCheck: boolean) => NativeVm;
	opcodeTableAccepts(code: Buffer): Buffer;
}

const packageDir = fileURLToPath(new URL('..', import.meta.url));
const native = loadNative<VmAddon>(packageDir, 'vm');

/**
 * Absolute path of `bpftime-vm-plugin`, the executable that runs one program
 * per process for external conformance suites (see the README).
 */
export const pluginPath: string =
	findBuilt(packageDir, 'bpftime-vm-plugin') ?? `${packageDir}build/Release/bpftime-vm-plugin`;

/**
 * Per 8-byte slot of `code`, whether the vm's opcode table (`opcodes.hpp`,
 * which the verifier, interpreter and JIT are built from) accepts its opcode
 * and fields. A lddw's second slot is judged alone (it is no instruction).
 *
 *   opcodeTableAccepts(assemble('r0 = 1\nexit')) // [true, true]
 */
export function opcodeTableAccepts(code: Buffer | Uint8Array): boolean[] {
	const bytes = Buffer.from(code.buffer, code.byteOffset, code.byteLength);
	return [...native.opcodeTableAccepts(bytes)].map((b) => b === 1);
}

/** `interpreter`, or `jit` (x86-64, machine code emitted directly). */
export type Backend = 'interpreter' | 'jit';

export interface VmOptions {
	backend?: Backend;
	/**
	 * Check every load and store against the stack, the context and the
	 * regions added with `addMemoryRegion`; a violation makes `run` throw
	 * EFAULT instead of touching memory.
	 */
	boundsCheck?: boolean;
}

/** A helper written in JavaScript: r1..r5 in, r0 out. */
export type HelperFn = (a1: bigint, a2: bigint, a3: bigint, a4: bigint, a5: bigint) => bigint | number | undefined;

/**
 * One eBPF virtual machine holding one program.
 *
 * ```ts
 * using vm = new Vm({ backend: 'jit' });
 * vm.load('r0 = r1\nr0 += 1\nexit');      // assembly, or a Buffer of instructions
 * vm.run();                                 // 1n: r1 is 0 without a context
 * ```
 *
 * `run(ctx)` passes the Buffer by address as r1 and its length as r2; the
 * program reads and writes it in place. Helpers must be registered before
 * `load`, which verifies the program (EINVAL with the verifier's message,
 * `12: invalid opcode 0xff`).
 */
export class Vm implements Disposable {
	#native: NativeVm | undefined;
	readonly backend: Backend;

	constructor(options: VmOptions = {}) {
		const backend = options.backend ?? 'interpreter';
		if (backend !== 'interpreter' && backend !== 'jit') {
			throw new BpftimeError('EINVAL', `Expected 'interpreter' or 'jit' for backend but received ${String(backend)}`);
		}
		this.backend = backend;
		this.#native = new native.VmHandle(backend, options.boundsCheck ?? false);
	}

	#handle(): NativeVm {
		if (!this.#native) throw new BpftimeError('EBADF', 'vm: closed');
		return this.#native;
	}

	/** A helper by kernel id, implemented in JavaScript (at most 64 per VM). */
	registerHelper(id: number, name: string, fn: HelperFn): this {
		if (typeof fn !== 'function') throw new BpftimeError('EINVAL', `Expected function for helper '${name}'`);
		this.#handle().registerHelper(expectU32(id, 'id'), expectString(name, 'name'), fn);
		return this;
	}

	/** A native helper that returns its first argument (id 5 in conformance suites). */
	registerIdentityHelper(id = 5): this {
		this.#handle().registerIdentityHelper(expectU32(id, 'id'));
		return this;
	}

	/** Memory the program may touch in bounds-check mode, kept alive by the VM. */
	addMemoryRegion(region: Buffer, options: { writable?: boolean } = {}): this {
		this.#handle().addMemoryRegion(expectBuffer(region, 'region'), options.writable ?? true);
		return this;
	}

	/** Verifies and prepares (compiles, for the JIT) a program: assembly text or instruction bytes. */
	load(program: string | Buffer | Uint8Array): this {
		const code = typeof program === 'string' ? assemble(program) : expectBuffer(program, 'program');
		this.#handle().load(code);
		return this;
	}

	/** Runs the program once; r0 at exit. */
	run(ctx?: Buffer | Uint8Array): bigint {
		return this.#handle().run(ctx === undefined ? undefined : expectBuffer(ctx, 'ctx'));
	}

	/** The loaded instructions, after lddw resolution. */
	instructions(): Buffer {
		return this.#handle().instructions();
	}

	/** How long the JIT took to compile the program; 0n for the interpreter. */
	get compileTimeNs(): bigint {
		return this.#handle().compileTimeNs();
	}

	close(): void {
		this.#native?.close();
		this.#native = undefined;
	}

	[Symbol.dispose](): void {
		this.close();
	}
}
