// ringbuf.ts: the consumer view of a BPF_MAP_TYPE_RINGBUF map, an async
// iterable of its records (the kernel's ring buffer read by libbpf's
// ring_buffer__poll, cilium/ebpf's ringbuf.Reader).
import { BpftimeError } from '@bpftime/common';
import { type BpfMap, MapType } from '@bpftime/handlers';
import { type NativeRingConsumer, native } from './native.js';

export interface RingBufReadOptions {
	/** Ends the iteration (the pending read returns at once). */
	signal?: AbortSignal;
	/** Records fetched per native call at most (default 4096). */
	batch?: number;
	/** Bytes of records fetched per native call at most (default 1 MiB; a larger record still comes whole). */
	batchBytes?: number;
}

export interface RingBufStats {
	/** Times the consumer slept on the ring's futex with nothing to read. */
	sleeps: bigint;
	/** Futex wake-ups producers made for sleeping consumers (of any process). */
	wakeups: bigint;
	/** The ring's data size in bytes (max_entries). */
	ringSize: number;
}

/**
 * BPF_MAP_TYPE_RINGBUF, read from this process: every committed record once, in order, as programs
 * submit them (discarded ones are skipped). With nothing to read the consumer sleeps on a futex in
 * the segment until a program's submit wakes it (the kernel's rule: unless `BPF_RB_NO_WAKEUP`), so
 * an idle ring costs no CPU. One consumer per ring at a time, in any process.
 *
 * ```ts
 * const events = RingBuf.open(reg.map(id));
 * for await (const rec of events.records({ signal })) console.log(rec.readUInt32LE(0));
 * ```
 */
export class RingBuf implements Disposable {
	readonly map: BpfMap;
	#consumer: NativeRingConsumer;
	#closed = false;
	#reading = false;

	private constructor(map: BpfMap, consumer: NativeRingConsumer) {
		this.map = map;
		this.#consumer = consumer;
	}

	/** A consumer of map; EINVAL naming the map when it is not a BPF_MAP_TYPE_RINGBUF. */
	static open(map: BpfMap): RingBuf {
		if (map.type !== MapType.Ringbuf)
			throw new BpftimeError(
				'EINVAL',
				`${map.describe()}: ring buffer: expected BPF_MAP_TYPE_RINGBUF but the map is ${map.typeName}`,
			);
		return new RingBuf(map, native.ringConsumer(map.mmap()));
	}

	/**
	 * The next records, copied out of the ring (their space goes back to producers): waits until at
	 * least one is committed, `timeoutMs` pass (then `[]`), or `close()`.
	 */
	async read(options: { timeoutMs?: number; batch?: number; batchBytes?: number } = {}): Promise<Buffer[]> {
		if (this.#closed) throw new BpftimeError('EBADF', `${this.map.describe()}: ring buffer: consumer is closed`);
		if (this.#reading)
			throw new BpftimeError('EBUSY', `${this.map.describe()}: ring buffer: a read is already in progress`);
		this.#reading = true;
		try {
			const r = await this.#consumer.read(
				options.batch ?? 4096,
				options.batchBytes ?? 1 << 20,
				options.timeoutMs ?? -1,
			);
			const out: Buffer[] = new Array(r.count);
			let off = 0;
			for (let i = 0; i < r.count; i++) {
				const size = r.sizes.readUInt32LE(i * 4);
				out[i] = r.data.subarray(off, off + size);
				off += size;
			}
			return out;
		} finally {
			this.#reading = false;
		}
	}

	/** Every record as it is committed, until `close()` or the signal aborts. */
	async *records(options: RingBufReadOptions = {}): AsyncGenerator<Buffer, void, undefined> {
		const { signal } = options;
		const onAbort = () => this.close();
		signal?.addEventListener('abort', onAbort, { once: true });
		try {
			while (!this.#closed && !signal?.aborted) {
				const recs = await this.read({ batch: options.batch, batchBytes: options.batchBytes });
				for (const r of recs) yield r;
			}
		} finally {
			signal?.removeEventListener('abort', onAbort);
		}
	}

	/** Counters of the consumer and the ring. */
	stats(): RingBufStats {
		return this.#consumer.stats();
	}

	/** Ends a pending read (it returns its records, or none) and the iteration. */
	close(): void {
		if (this.#closed) return;
		this.#closed = true;
		this.#consumer.close();
	}

	[Symbol.dispose](): void {
		this.close();
	}
}
