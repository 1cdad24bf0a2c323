// ringbuf.ts: the host consumer of a GPU ring buffer, and the device view of
// any GPU map (what a CUDA kernel is handed).
import { setTimeout as sleep } from 'node:timers/promises';
import { BpftimeError } from '@bpftime/common';
import type { BpfMap } from '@bpftime/handlers';
import { type NativeGpuMapHandle, native, whyNoAddon } from './native.js';

function open(map: BpfMap): NativeGpuMapHandle {
	if (!native) throw new BpftimeError('ENODEV', `${map.describe()}: GPU maps are not available here: ${whyNoAddon}`);
	return native.openMap(map.registry.segmentName, map.id);
}

export interface GpuRingBufReadOptions {
	/** Records per read at most (default 4096). */
	maxRecords?: number;
	/** Bytes of records per read at most (default 1 MiB; a larger record still comes whole). */
	maxBytes?: number;
}

/**
 * BPFTIME_MAP_TYPE_GPU_RINGBUF, read from this process (any process: the ring is opened through its
 * CUDA IPC handle): every record CUDA kernels committed, once, in order, in the kernel's ring buffer
 * record format; discarded ones are skipped. Device producers cannot wake a host thread, so
 * `records()` polls. One consumer per ring at a time.
 *
 * ```ts
 * using events = GpuRingBuf.open(reg.mapByName('events'));
 * for await (const rec of events.records({ signal })) console.log(rec.readUInt32LE(0));
 * ```
 */
export class GpuRingBuf implements Disposable {
	readonly map: BpfMap;
	#h: NativeGpuMapHandle | undefined;

	private constructor(map: BpfMap, h: NativeGpuMapHandle) {
		this.map = map;
		this.#h = h;
	}

	/** A consumer of map: EINVAL naming the map when it is not a GPU ring buffer, ENODEV without a device. */
	static open(map: BpfMap): GpuRingBuf {
		if (map.type !== 1527)
			throw new BpftimeError(
				'EINVAL',
				`${map.describe()}: GPU ring buffer: expected BPFTIME_MAP_TYPE_GPU_RINGBUF but the map is ${map.typeName}`,
			);
		return new GpuRingBuf(map, open(map));
	}

	#handle(): NativeGpuMapHandle {
		if (!this.#h) throw new BpftimeError('EBADF', `${this.map.describe()}: GPU ring buffer: consumer is closed`);
		return this.#h;
	}

	/** The records committed so far (their space goes back to producers); never waits: `[]` when none. */
	read(options: GpuRingBufReadOptions = {}): Buffer[] {
		const r = this.#handle().consume(options.maxRecords ?? 4096, options.maxBytes ?? 1 << 20);
		const out: Buffer[] = new Array(r.count);
		let off = 0;
		for (let i = 0; i < r.count; i++) {
			const size = r.sizes.readUInt32LE(i * 4);
			out[i] = r.data.subarray(off, off + size);
			off += size;
		}
		return out;
	}

	/**
	 * Every record as kernels commit them, until `close()` or the signal aborts; with nothing to read it
	 * polls, backing off from 1 ms to `maxIntervalMs` (default 50).
	 */
	async *records(
		options: GpuRingBufReadOptions & { signal?: AbortSignal; maxIntervalMs?: number } = {},
	): AsyncGenerator<Buffer, void, undefined> {
		let wait = 1;
		while (this.#h && !options.signal?.aborted) {
			const recs = this.read(options);
			for (const r of recs) yield r;
			if (recs.length) {
				wait = 1;
				continue;
			}
			try {
				await sleep(wait, undefined, { signal: options.signal });
			} catch {
				return;
			}
			wait = Math.min(wait * 2, options.maxIntervalMs ?? 50);
		}
	}

	/** Records device producers could not write because the ring was full (they got -EAGAIN). */
	dropped(): bigint {
		return this.#handle().dropped();
	}

	/** Ends the iteration and gives back this consumer's mapping of the ring. */
	close(): void {
		this.#h?.close();
		this.#h = undefined;
	}

	[Symbol.dispose](): void {
		this.close();
	}
}

/** What a CUDA kernel is handed for one GPU map: struct bpftime_gpu_map of gpu_map.h. */
export interface DeviceMap extends Disposable {
	/** The device address in this process's CUDA context, valid until `close()`. */
	data: bigint;
	mapType: number;
	keySize: number;
	valueSize: number;
	maxEntries: number;
	stride: number;
	threads: number;
	/** The 32 bytes of the struct, to copy into a kernel's arguments. */
	bytes: Buffer;
	/** Gives back this view's mapping (cuIpcCloseMemHandle once nothing else in this process holds the map). */
	close(): void;
}

/** The device view of a GPU map in this process (opens it here: cuIpcOpenMemHandle when another process made it). */
export function deviceMap(map: BpfMap): DeviceMap {
	const h = open(map);
	let b: Buffer;
	try {
		b = h.deviceMap();
	} catch (e) {
		h.close();
		throw e;
	}
	return {
		data: b.readBigUInt64LE(0),
		mapType: b.readUInt32LE(8),
		keySize: b.readUInt32LE(12),
		valueSize: b.readUInt32LE(16),
		maxEntries: b.readUInt32LE(20),
		stride: b.readUInt32LE(24),
		threads: b.readUInt32LE(28),
		bytes: b,
		close: () => h.close(),
		[Symbol.dispose]: () => h.close(),
	};
}
