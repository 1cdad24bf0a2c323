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
	compileAot(code: Buffer): Buffer;
	loadAot(object: Buffer): void;
	close(): void;
}

interface VmAddon extends NativeAddon {
	VmHandle: new (backend: string, boundsCheck: boolean, contextSize: number, verifier: string | undefined) => NativeVm;
	opcodeTableAccepts(code: Buffer): Buffer;
	backendUnavailable(backend: string): string | undefined;
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

/**
 * `interpreter`, `jit` (x86-64, machine code emitted directly), or `llvm`
 * (LLVM 19's ORC JIT, where the package was built with llvm-19-dev; see
 * `backendUnavailable`).
 */
export type Backend = 'interpreter' | 'jit' | 'llvm';

const BACKENDS: readonly Backend[] = ['interpreter', 'jit', 'llvm'];

/**
 * Why programs cannot be loaded on `backend` in this process (the LLVM
 * plugin was not built or not found: every path tried), or `undefined` when
 * they can.
 */
export function backendUnavailable(backend: Backend): string | undefined {
	if (!BACKENDS.includes(backend)) {
		throw new BpftimeError(
			'EINVAL',
			`Expected one of ${BACKENDS.join(', ')} for backend but received ${String(backend)}`,
		);
	}
	return native.backendUnavailable(backend);
}

export interface VmOptions {
	backend?: Backend;
	/**
	 * Check every load and store against the stack, the context and the
	 * regions added with `addMemoryRegion`; a violation makes `run` throw
	 * EFAULT instead of touching memory.
	 */
	boundsCheck?: boolean;
	/**
	 * Bytes of context (`run`'s Buffer) the verifier lets the program reach
	 * through r1; 0 (the default) lets it pass r1 on but not dereference
	 * it. Like the kernel's context size for a program type.
	 */
	contextSize?: number;
	/**
	 * `strict` proves every program memory-safe before it loads (the
	 * kernel's type discipline); `off` runs the structural checks only.
	 * Default: BPFTIME_VERIFIER, else `strict`.
	 */
	verifier?: 'strict' | 'off';
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
		if (!BACKENDS.includes(backend)) {
			throw new BpftimeError(
				'EINVAL',
				`Expected one of ${BACKENDS.join(', ')} for backend but received ${String(backend)}`,
			);
		}
		this.backend = backend;
		const contextSize = options.contextSize ?? 0;
		if (!Number.isInteger(contextSize) || contextSize < 0 || contextSize > 0xffffffff) {
			throw new BpftimeError('EINVAL', `Expected u32 for contextSize but received ${String(contextSize)}`);
		}
		if (options.verifier !== undefined && options.verifier !== 'strict' && options.verifier !== 'off') {
			throw new BpftimeError(
				'EINVAL',
				`Expected 'strict' or 'off' for verifier but received ${String(options.verifier)}`,
			);
		}
		this.#native = new native.VmHandle(backend, options.boundsCheck ?? false, contextSize, options.verifier);
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

	/**
	 * Compiles a program ahead of time to an x86-64 ELF relocatable object
	 * (LLVM; any backend kind), verified with the helpers registered so
	 * far. Its helper calls and lddw values are resolved when it is loaded
	 * (`loadAot`), in whatever process; the object keeps the program's
	 * instructions.
	 */
	compileAot(program: string | Buffer | Uint8Array): Buffer {
		const code = typeof program === 'string' ? assemble(program) : expectBuffer(program, 'program');
		return this.#handle().compileAot(code);
	}

	/**
	 * Loads an object `compileAot` (or `bpftime aot`) made: verifies its
	 * program and maps its code, linked against this VM's helpers; needs
	 * no LLVM. ENOEXEC for a file that is not such an object.
	 */
	loadAot(object: Buffer | Uint8Array): this {
		this.#handle().loadAot(expectBuffer(object, 'object'));
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
