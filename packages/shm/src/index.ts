import { fileURLToPath } from 'node:url';
import {
	BpftimeError,
	expectPositiveInt,
	expectString,
	expectU32,
	loadNative,
	type NativeAddon,
} from '@bpftime/common';

export { BpftimeError } from '@bpftime/common';

interface NativeSegment {
	info(): SegmentInfo;
	stats(): SegmentStats;
	allocate(name: string, size: bigint): Buffer;
	lookup(name: string): Buffer | undefined;
	free(name: string): void;
	objects(): SegmentObject[];
	mutex(name: string): NativeMutex;
	close(): void;
}

interface NativeMutex {
	lock(timeoutMs?: number): LockState;
	tryLock(): LockState | undefined;
	unlock(): void;
}

interface ShmAddon extends NativeAddon {
	create(name: string, size: bigint, mode: number): NativeSegment;
	open(name: string): NativeSegment;
	openOrCreate(name: string, size: bigint, mode: number): NativeSegment;
	remove(name: string): void;
	exists(name: string): boolean;
	optionsFromEnv(): { name: string; size: bigint };
	layoutVersion: number;
	defaultName: string;
}

const native = loadNative<ShmAddon>(fileURLToPath(new URL('..', import.meta.url)), 'shm');

/** Layout version of the registry this build reads and writes. */
export const LAYOUT_VERSION: number = native.layoutVersion;
/** Segment name used when neither the options nor BPFTIME_GLOBAL_SHM_NAME give one. */
export const DEFAULT_SEGMENT_NAME: string = native.defaultName;

export interface SegmentOptions {
	/** Segment name (a file in /dev/shm). Default: BPFTIME_GLOBAL_SHM_NAME, else `bpftime_maps_shm`. */
	name?: string;
	/** Size in MiB, header included. Default: BPFTIME_SHM_MEMORY_MB, else 20. */
	sizeMb?: number;
	/** File permission bits. Default 0o600: only the owner may map it. */
	mode?: number;
}

export interface SegmentInfo {
	name: string;
	layoutVersion: number;
	/** Bytes, header included. */
	size: bigint;
	creatorPid: number;
	/** CLOCK_REALTIME at creation, in nanoseconds. */
	createdAtNs: bigint;
}

export interface SegmentStats {
	/** Bytes managed by the allocator. */
	size: bigint;
	free: bigint;
	used: bigint;
	namedObjects: bigint;
}

export interface SegmentObject {
	/** `bytes` and `mutex` are made through this API; `native` by the C++ layers. */
	kind: 'bytes' | 'mutex' | 'native';
	name: string;
	/** Length of a `bytes` object; 0 for the others. */
	size: bigint;
}

/** `recovered`: the previous owner died holding the lock; repair what it guarded. */
export type LockState = 'acquired' | 'recovered';

function resolveName(name: string | undefined): string {
	return name === undefined ? native.optionsFromEnv().name : expectString(name, 'name');
}

function resolveOptions(opts: SegmentOptions): [string, bigint, number] {
	const env = native.optionsFromEnv();
	const name = opts.name === undefined ? env.name : expectString(opts.name, 'name');
	const size = opts.sizeMb === undefined ? env.size : BigInt(expectPositiveInt(opts.sizeMb, 'sizeMb')) << 20n;
	const mode = opts.mode === undefined ? 0o600 : expectU32(opts.mode, 'mode');
	return [name, size, mode];
}

/**
 * A robust, process-shared mutex living in a segment. A process killed while
 * holding it does not wedge the others: the next `lock()` returns
 * `'recovered'`.
 *
 * `lock()` blocks the calling thread; give a timeout when another process may
 * hold it for long.
 */
export class SharedMutex {
	readonly #native: NativeMutex;
	readonly name: string;

	/** @internal */
	constructor(native: NativeMutex, name: string) {
		this.#native = native;
		this.name = name;
	}

	/** Throws ETIMEDOUT after `timeoutMs`, EDEADLK if this thread holds it. */
	lock(options: { timeoutMs?: number } = {}): LockState {
		if (options.timeoutMs === undefined) return this.#native.lock();
		return this.#native.lock(expectU32(options.timeoutMs, 'timeoutMs'));
	}

	/** undefined when another holder has it. */
	tryLock(): LockState | undefined {
		return this.#native.tryLock();
	}

	/** Throws EPERM when the caller does not hold it. */
	unlock(): void {
		this.#native.unlock();
	}
}

/**
 * The named shared-memory segment that holds the bpftime registry.
 *
 * ```ts
 * using seg = Segment.create({ name: 'demo', sizeMb: 4 });
 * seg.allocate('greeting', 16).write('hello');
 * // in another process:
 * using same = Segment.open({ name: 'demo' });
 * same.lookup('greeting')?.toString('utf8', 0, 5); // 'hello'
 * ```
 *
 * Buffers returned by `allocate` and `lookup` view the shared memory itself
 * and stay valid after `close()`: the mapping lives until the last of them is
 * collected.
 */
export class Segment implements Disposable {
	#native: NativeSegment | undefined;
	readonly name: string;

	private constructor(native: NativeSegment, name: string) {
		this.#native = native;
		this.name = name;
	}

	/**
	 * The name and size used when the options leave them out: from
	 * BPFTIME_GLOBAL_SHM_NAME and BPFTIME_SHM_MEMORY_MB, else the defaults.
	 * Throws EINVAL when one of those variables is malformed.
	 */
	static defaultOptions(): { name: string; sizeMb: number } {
		const env = native.optionsFromEnv();
		return { name: env.name, sizeMb: Number(env.size >> 20n) };
	}

	/** Throws EEXIST if it exists, EINVAL for a bad name or size, ENOSPC when /dev/shm cannot hold it. */
	static create(options: SegmentOptions = {}): Segment {
		const [name, size, mode] = resolveOptions(options);
		return new Segment(native.create(name, size, mode), name);
	}

	/**
	 * Throws ENOENT if missing, EBADMSG for a file that is not a bpftime
	 * segment, EPROTONOSUPPORT for another layout version, EAGAIN while being
	 * created. Never modifies what it refuses.
	 */
	static open(options: { name?: string } = {}): Segment {
		const name = resolveName(options.name);
		return new Segment(native.open(name), name);
	}

	/** Opens it when present, creates it otherwise. */
	static openOrCreate(options: SegmentOptions = {}): Segment {
		const [name, size, mode] = resolveOptions(options);
		return new Segment(native.openOrCreate(name, size, mode), name);
	}

	/** Unlinks the segment; processes that have it open keep their mapping. Throws ENOENT if missing. */
	static remove(options: { name?: string } = {}): void {
		native.remove(resolveName(options.name));
	}

	static exists(options: { name?: string } = {}): boolean {
		return native.exists(resolveName(options.name));
	}

	#handle(): NativeSegment {
		if (!this.#native) throw new BpftimeError('EBADF', `segment '${this.name}': closed`);
		return this.#native;
	}

	get info(): SegmentInfo {
		return this.#handle().info();
	}

	stats(): SegmentStats {
		return this.#handle().stats();
	}

	/** A zeroed byte object in the segment. Throws EEXIST if the name is taken, ENOMEM when full. */
	allocate(name: string, size: number | bigint): Buffer {
		const n = typeof size === 'bigint' ? size : BigInt(expectPositiveInt(size, 'size'));
		return this.#handle().allocate(expectString(name, 'name'), n);
	}

	/** The byte object of that name, or undefined. */
	lookup(name: string): Buffer | undefined {
		return this.#handle().lookup(expectString(name, 'name'));
	}

	/** Frees a byte object. Throws ENOENT if absent. */
	free(name: string): void {
		this.#handle().free(expectString(name, 'name'));
	}

	/** Every named object in the segment. */
	objects(): SegmentObject[] {
		return this.#handle().objects();
	}

	/** The robust mutex of that name, created on first use. */
	mutex(name: string): SharedMutex {
		return new SharedMutex(this.#handle().mutex(expectString(name, 'name')), name);
	}

	/** Unmaps the segment from this process (it stays in /dev/shm). */
	close(): void {
		this.#native?.close();
		this.#native = undefined;
	}

	[Symbol.dispose](): void {
		this.close();
	}
}
