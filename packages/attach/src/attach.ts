import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { BpftimeError, expectString, expectU64, findBuilt, loadNative, type NativeAddon } from '@bpftime/common';

/** Which event a probe reports, as the kernel names them. */
export type ProbeKind = 'uprobe' | 'uretprobe' | 'override';

/** How a probe is installed: a 5-byte jump to a trampoline, or an int3 breakpoint. */
export type Mechanism = 'inline_jump' | 'breakpoint' | 'none';

/** Where a probe goes: a function of a loaded module, or a file offset in it. */
export interface ProbeTarget {
	/** `''` (default) for the main executable, a path, or a file name such as `'libc.so.6'`. */
	module?: string;
	/** A function name; omit it to give `offset` as a file offset (the kernel's uprobe ABI). */
	symbol?: string;
	/** Bytes after the function's start, or the file offset when there is no symbol. */
	offset?: bigint | number;
}

export interface ProbeSpec extends ProbeTarget {
	kind: ProbeKind;
	/** Use the int3 breakpoint even where a jump fits (slower; for tests and comparisons). */
	forceBreakpoint?: boolean;
	/** `override`: the value the skipped function returns. */
	returnValue?: bigint | number;
}

/** What the C++ core reports about a probe (`probe_info`). */
export interface ProbeInfo {
	id: bigint;
	kind: ProbeKind;
	state: 'active' | 'pending' | 'failed';
	mechanism: Mechanism;
	/** Runtime address of the probed instruction, 0n unless active. */
	address: bigint;
	/** Bytes of original instructions moved into the trampoline. */
	patchedBytes: number;
	atFunctionEntry: boolean;
	/** `module:function+0xoff`. */
	where: string;
	/** Why this mechanism was chosen, or why the probe is pending or failed. */
	reason: string;
	errno: number;
	/** uretprobe: returns not reported (shadow stack full, or frames left by longjmp). */
	missed: bigint;
}

/** Registers of the last hit, named as in the kernel's x86-64 `struct pt_regs`. */
export interface Regs {
	di: bigint;
	si: bigint;
	dx: bigint;
	cx: bigint;
	r8: bigint;
	r9: bigint;
	ax: bigint;
	ip: bigint;
	sp: bigint;
	cs: bigint;
	ss: bigint;
	origAx: bigint;
}

export interface Location {
	address: bigint;
	fileOffset: bigint;
	module: string;
	symbol: string;
	symbolAddress: bigint;
	symbolSize: bigint;
}

export interface ModuleInfo {
	path: string;
	bias: bigint;
	start: bigint;
	end: bigint;
	mainExecutable: boolean;
}

interface NativeProbe {
	hits(): bigint;
	lastRegs(): Regs;
	info(): ProbeInfo;
	close(): void;
}

interface AttachAddon extends NativeAddon {
	ProbeHandle: new (
		kind: string,
		module: string,
		symbol: string,
		offset: bigint,
		forceBreakpoint: boolean,
		returnValue: bigint,
	) => NativeProbe;
	resolve(module: string, symbol: string, offset: bigint): Location;
	loadedModules(): ModuleInfo[];
}

const packageDir = fileURLToPath(new URL('..', import.meta.url));
let addon: AttachAddon | undefined;
function native(): AttachAddon {
	addon ??= loadNative<AttachAddon>(packageDir, 'attach');
	return addon;
}

function target(t: ProbeTarget): [string, string, bigint] {
	return [
		t.module === undefined ? '' : expectString(t.module, 'module'),
		t.symbol === undefined ? '' : expectString(t.symbol, 'symbol'),
		t.offset === undefined ? 0n : expectU64(t.offset, 'offset'),
	];
}

/**
 * A probe in this (the Node) process whose native callback counts hits and
 * keeps the registers of the last one. JavaScript cannot run inside a hook
 * (the hooked function may run on any thread, or inside V8), so this is the
 * whole of what the TypeScript side observes; the C++ API takes any callback.
 *
 * ```ts
 * using p = attachProbe({ kind: 'uprobe', module: 'libc.so.6', symbol: 'getuid' });
 * process.getuid();
 * p.hits();            // 1n
 * ```
 */
export class Probe implements Disposable {
	#native: NativeProbe | undefined;
	readonly kind: ProbeKind;

	constructor(spec: ProbeSpec) {
		const kind = spec.kind;
		if (kind !== 'uprobe' && kind !== 'uretprobe' && kind !== 'override') {
			throw new BpftimeError(
				'EINVAL',
				`Expected 'uprobe', 'uretprobe' or 'override' for kind but received ${String(kind)}`,
			);
		}
		this.kind = kind;
		const [module, symbol, offset] = target(spec);
		const ret = spec.returnValue === undefined ? 0n : expectU64(spec.returnValue, 'returnValue');
		this.#native = new (native().ProbeHandle)(kind, module, symbol, offset, spec.forceBreakpoint ?? false, ret);
	}

	#handle(): NativeProbe {
		if (!this.#native) throw new BpftimeError('EBADF', `${this.kind}: closed`);
		return this.#native;
	}

	/** How many times the callback ran. */
	hits(): bigint {
		return this.#handle().hits();
	}

	/** Registers of the last hit (entry: arguments in di..r9; uretprobe: ax is the return value). */
	lastRegs(): Regs {
		return this.#handle().lastRegs();
	}

	info(): ProbeInfo {
		return this.#handle().info();
	}

	/** Detaches; the original bytes are back when this was the last probe on its address. */
	close(): void {
		const n = this.#native;
		this.#native = undefined;
		n?.close();
	}

	[Symbol.dispose](): void {
		this.close();
	}
}

/** Attaches a counting probe in this process; see {@link Probe}. */
export function attachProbe(spec: ProbeSpec): Probe {
	return new Probe(spec);
}

/** The runtime address of a function or file offset of a loaded module (ENOENT, EINVAL, ENOEXEC). */
export function resolve(t: ProbeTarget): Location {
	return native().resolve(...target(t));
}

/** Every module with executable code mapped in this process, main executable first. */
export function loadedModules(): ModuleInfo[] {
	return native().loadedModules();
}

/**
 * The native test and benchmark programs built with the package (workspace
 * builds only: native/test is not packed). `linkFile` lists, one per line, the
 * objects and libraries a fixture program links with to get the test driver.
 */
export const nativeTools = {
	get benchPath(): string | undefined {
		return findBuilt(packageDir, 'bpftime-attach-bench');
	},
	get linkFile(): string | undefined {
		return findBuilt(packageDir, 'attach-test-link.txt');
	},
	fixturesDir: join(packageDir, 'native', 'test', 'fixtures'),
};
