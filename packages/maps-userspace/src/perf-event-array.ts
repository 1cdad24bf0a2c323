// perf-event-array.ts: the consumer view of a BPF_MAP_TYPE_PERF_EVENT_ARRAY
// map, an async iterable of its samples and lost-sample reports (libbpf's
// perf_buffer__new and perf_buffer__poll, cilium/ebpf's perf.Reader).
import { cpus } from 'node:os';
import { BpftimeError } from '@bpftime/common';
import { type BpfMap, MapType, type PerfEvent, type Registry } from '@bpftime/handlers';
import { type NativePerfConsumer, native } from './native.js';

/** One record of a perf buffer: a program's sample, or how many samples a full buffer lost. */
export type PerfRecord =
	| {
			type: 'sample' /** The slot (CPU) it was written to. */;
			cpu: number /** Raw bytes, padded as the kernel pads them (to 8 with the u32 size before them). */;
			data: Buffer;
	  }
	| { type: 'lost'; cpu: number; lost: bigint };

export interface PerfEventArrayOptions {
	/** Slots to open, from 0 (default: min(maxEntries, the machine's CPUs)). */
	slots?: number;
}

/**
 * BPF_MAP_TYPE_PERF_EVENT_ARRAY, read from this process. `open` does what libbpf's perf_buffer__new
 * does: one BPF_OUTPUT perf event per slot (CPU), stored into the map, so that a program's
 * `bpf_perf_event_output(ctx, &map, BPF_F_CURRENT_CPU, ...)` lands in that slot's buffer. The
 * consumer sleeps on a futex in the segment while every buffer is empty. One consumer per map.
 *
 * ```ts
 * using events = PerfEventArray.open(reg, reg.map(id));
 * for await (const r of events.records({ signal })) if (r.type === 'sample') console.log(r.cpu, r.data);
 * ```
 */
export class PerfEventArray implements Disposable {
	readonly map: BpfMap;
	readonly registry: Registry;
	#consumer: NativePerfConsumer;
	#events: { slot: number; event: PerfEvent }[];
	#closed = false;
	#reading = false;

	private constructor(
		registry: Registry,
		map: BpfMap,
		consumer: NativePerfConsumer,
		events: { slot: number; event: PerfEvent }[],
	) {
		this.registry = registry;
		this.map = map;
		this.#consumer = consumer;
		this.#events = events;
	}

	/** Opens the slots and a consumer; EINVAL naming the map when it is not a BPF_MAP_TYPE_PERF_EVENT_ARRAY. */
	static open(registry: Registry, map: BpfMap, options: PerfEventArrayOptions = {}): PerfEventArray {
		if (map.type !== MapType.PerfEventArray)
			throw new BpftimeError(
				'EINVAL',
				`${map.describe()}: perf buffer: expected BPF_MAP_TYPE_PERF_EVENT_ARRAY but the map is ${map.typeName}`,
			);
		// Every CPU's slot, as libbpf's perf_buffer__new (BPF_F_CURRENT_CPU can name any CPU, not only those
		// this process may run on).
		const slots = options.slots ?? Math.min(map.maxEntries, Math.max(1, cpus().length));
		if (!Number.isInteger(slots) || slots < 1 || slots > map.maxEntries)
			throw new BpftimeError(
				'EINVAL',
				`${map.describe()}: perf buffer: slots ${slots} is not between 1 and maxEntries (${map.maxEntries})`,
			);
		const consumer = native.perfConsumer(map.mmap());
		const events: { slot: number; event: PerfEvent }[] = [];
		const key = Buffer.alloc(4);
		const value = Buffer.alloc(4);
		try {
			for (let slot = 0; slot < slots; slot++) {
				// PERF_TYPE_SOFTWARE / PERF_COUNT_SW_BPF_OUTPUT (10), as libbpf opens them.
				const event = registry.createPerfEvent({ type: 'custom', name: 'bpf_output', config: 10n });
				events.push({ slot, event });
				key.writeUInt32LE(slot);
				value.writeUInt32LE(event.id);
				map.update(key, value);
			}
		} catch (e) {
			new PerfEventArray(registry, map, consumer, events).close();
			throw e;
		}
		return new PerfEventArray(registry, map, consumer, events);
	}

	/** The records written so far, waiting until there is one, `timeoutMs` pass (then `[]`) or `close()`. */
	async read(options: { timeoutMs?: number } = {}): Promise<PerfRecord[]> {
		if (this.#closed) throw new BpftimeError('EBADF', `${this.map.describe()}: perf buffer: consumer is closed`);
		if (this.#reading)
			throw new BpftimeError('EBUSY', `${this.map.describe()}: perf buffer: a read is already in progress`);
		this.#reading = true;
		try {
			const r = await this.#consumer.read(options.timeoutMs ?? -1);
			const out: PerfRecord[] = [];
			for (let i = 0; i < r.lostCount; i++)
				out.push({ type: 'lost', cpu: r.lostCpus.readUInt32LE(i * 4), lost: r.lost.readBigUInt64LE(i * 8) });
			let off = 0;
			for (let i = 0; i < r.count; i++) {
				const size = r.sizes.readUInt32LE(i * 4);
				out.push({ type: 'sample', cpu: r.cpus.readUInt32LE(i * 4), data: r.data.subarray(off, off + size) });
				off += size;
			}
			return out;
		} finally {
			this.#reading = false;
		}
	}

	/** Every record as it is written, until `close()` or the signal aborts. */
	async *records(options: { signal?: AbortSignal } = {}): AsyncGenerator<PerfRecord, void, undefined> {
		const { signal } = options;
		const onAbort = () => this.close();
		signal?.addEventListener('abort', onAbort, { once: true });
		try {
			while (!this.#closed && !signal?.aborted) for (const r of await this.read()) yield r;
		} finally {
			signal?.removeEventListener('abort', onAbort);
		}
	}

	/** Times the consumer slept, and samples lost over all slots (written while the buffer was full). */
	stats(): { sleeps: bigint; lost: bigint } {
		return this.#consumer.stats();
	}

	/** Ends a pending read, empties the slots `open` filled and releases their perf events. */
	close(): void {
		if (this.#closed) return;
		this.#closed = true;
		this.#consumer.close();
		const key = Buffer.alloc(4);
		for (const { slot, event } of this.#events) {
			key.writeUInt32LE(slot);
			try {
				this.map.delete(key);
				event.release();
			} catch {
				// The map or the event went first (the registry closed): nothing to give back.
			}
		}
		this.#events = [];
	}

	[Symbol.dispose](): void {
		this.close();
	}
}
