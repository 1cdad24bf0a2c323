// user-ringbuf.ts: the producer view of a BPF_MAP_TYPE_USER_RINGBUF map:
// user space writes records that programs drain with bpf_user_ringbuf_drain
// (libbpf's user_ring_buffer__reserve/submit).
import { BpftimeError, errnoName } from '@bpftime/common';
import { type BpfMap, MapType } from '@bpftime/handlers';
import { type NativeUserProducer, native } from './native.js';

/**
 * BPF_MAP_TYPE_USER_RINGBUF, written from this process. Each `write` is one record (reserve, copy,
 * submit); programs see them in order through `bpf_user_ringbuf_drain`. Several writers (threads,
 * processes) may write one ring at once.
 *
 * ```ts
 * const requests = UserRingBuf.open(reg.map(id));
 * requests.write(u64le(42n));
 * ```
 */
export class UserRingBuf implements Disposable {
	readonly map: BpfMap;
	#producer: NativeUserProducer | undefined;

	private constructor(map: BpfMap, producer: NativeUserProducer) {
		this.map = map;
		this.#producer = producer;
	}

	/** A producer of map; EINVAL naming the map when it is not a BPF_MAP_TYPE_USER_RINGBUF. */
	static open(map: BpfMap): UserRingBuf {
		if (map.type !== MapType.UserRingbuf)
			throw new BpftimeError(
				'EINVAL',
				`${map.describe()}: user ring buffer: expected BPF_MAP_TYPE_USER_RINGBUF but the map is ${map.typeName}`,
			);
		return new UserRingBuf(map, native.userProducer(map.mmap()));
	}

	#native(): NativeUserProducer {
		if (!this.#producer)
			throw new BpftimeError('EBADF', `${this.map.describe()}: user ring buffer: producer is closed`);
		return this.#producer;
	}

	/** Writes one record; false when the ring is full (programs have not drained enough yet). E2BIG when it can never fit. */
	tryWrite(data: Uint8Array): boolean {
		const r = this.#native().write(data);
		if (r === 0) return true;
		if (-r === 28) return false; // ENOSPC
		const code = errnoName(-r);
		throw new BpftimeError(
			code,
			`${this.map.describe()}: user ring buffer: write of ${data.length} bytes: ${code}` +
				(code === 'E2BIG' ? ` (the ring holds ${this.map.maxEntries} bytes with 8-byte headers)` : ''),
		);
	}

	/** Writes one record; ENOSPC naming the map when the ring is full. */
	write(data: Uint8Array): void {
		if (!this.tryWrite(data))
			throw new BpftimeError(
				'ENOSPC',
				`${this.map.describe()}: user ring buffer: write of ${data.length} bytes: ENOSPC (the ring is full until programs drain it)`,
			);
	}

	/**
	 * Writes one record, waiting (on a worker thread, sleeping on the ring's futex) until programs
	 * have drained enough for it: libbpf's user_ring_buffer__reserve_blocking. ETIMEDOUT after
	 * `timeoutMs`, EBADF when `close()` ends the wait.
	 */
	async writeAsync(data: Uint8Array, options: { timeoutMs?: number } = {}): Promise<void> {
		const deadline = options.timeoutMs === undefined ? undefined : Date.now() + options.timeoutMs;
		for (;;) {
			if (this.tryWrite(data)) return;
			const left = deadline === undefined ? -1 : Math.max(0, deadline - Date.now());
			const room = await this.#native().waitForRoom(data.length, left);
			if (!room && deadline !== undefined && Date.now() >= deadline)
				throw new BpftimeError(
					'ETIMEDOUT',
					`${this.map.describe()}: user ring buffer: write of ${data.length} bytes: ETIMEDOUT (no room after ${options.timeoutMs} ms)`,
				);
		}
	}

	/** Bytes free for records (headers included). */
	get freeBytes(): number {
		return this.#native().freeBytes();
	}

	/** Ends a pending `writeAsync` (EBADF) and the producer. */
	close(): void {
		this.#producer?.close();
		this.#producer = undefined;
	}

	[Symbol.dispose](): void {
		this.close();
	}
}
