// On a machine with an NVIDIA GPU: a CUDA kernel in one process writes GPU
// maps that another process made, and a third process reads them through
// the registry; counts and contents exact. Skipped, saying why, where no
// device is usable (scripts/gpu-check.sh runs these on a GPU machine).
import { findBuilt } from '@bpftime/common';
import { u32, u64 } from '@bpftime/handlers';
import { finished, startNode, startProcess } from '@bpftime/test-support';
import { describe, expect, it } from 'vitest';
import { deviceMap, GpuArray, GpuMapType, GpuPerThreadArray, GpuRingBuf } from '../src/index.js';
import { errorOf, freshRegistry, noDevice, packageDir, u32le } from './helpers.js';

const why = noDevice();
// scripts/gpu-check.sh sets BPFTIME_REQUIRE_GPU=1: there a missing device
// is a failure, not a skip.
const required = process.env.BPFTIME_REQUIRE_GPU === '1';
if (why && !required) console.log(`skipped: ${why}`);

describe.runIf(required)('the GPU check', () => {
	it('finds a usable device', () => {
		expect(why).toBe('');
	});
});

const BLOCKS = 4;
const PER_BLOCK = 128;
const THREADS = BLOCKS * PER_BLOCK;
const ENTRIES = 60; // not a divisor of THREADS: the counts differ by index

describe.skipIf(why !== '')('GPU maps on a device', () => {
	it('host updates and lookups of a GPU array and a per-thread array round-trip through device memory', () => {
		const { reg } = freshRegistry('gpu-host');
		const arr = new GpuArray(
			reg.createMap({ type: GpuMapType.Array, name: 'a', keySize: 4, valueSize: 8, maxEntries: 8 }),
			u64,
		);
		expect(arr.readAll()).toEqual(new Array(8).fill(0n));
		arr.set(7, 77n);
		expect(arr.get(7)).toBe(77n);
		expect(arr.get(8)).toBeUndefined();
		expect(errorOf(() => arr.set(8, 1n)).code).toBe('E2BIG');
		expect(errorOf(() => arr.set(1, 1n, 1 /* BPF_NOEXIST */)).code).toBe('EEXIST');
		expect(errorOf(() => arr.map.delete(u32le(1))).code).toBe('EINVAL');
		expect(arr.map.nextKey(u32le(6))?.readUInt32LE(0)).toBe(7);
		expect(arr.map.nextKey(u32le(7))).toBeUndefined();
		const pta = new GpuPerThreadArray(
			reg.createMap({
				type: GpuMapType.PerThreadArray,
				name: 'p',
				keySize: 4,
				valueSize: 4,
				maxEntries: 2,
				mapExtra: 16n,
			}),
			u32,
		);
		expect(pta.threads).toBe(16);
		expect(pta.stride).toBe(8);
		expect(pta.map.userValueSize).toBe(16 * 8);
		const values = Array.from({ length: 16 }, (_, t) => t * 5);
		pta.set(1, values);
		expect(pta.get(1)).toEqual(values);
		expect(pta.sum(1)).toBe(600);
		expect(pta.get(0)).toEqual(new Array(16).fill(0));
		const ring = reg.createMap({ type: GpuMapType.Ringbuf, name: 'r', keySize: 0, valueSize: 0, maxEntries: 4096 });
		using rb = GpuRingBuf.open(ring);
		expect(rb.read()).toEqual([]);
		expect(rb.dropped()).toBe(0n);
		// No key, no value (sizes 0): the operation itself is what the kernel refuses.
		expect(errorOf(() => ring.update(Buffer.alloc(0), Buffer.alloc(0))).errno).toBe(524);
	});

	it('a kernel in another process writes array, per-thread array and ring buffer; a third process reads them exactly', async () => {
		const writer = findBuilt(packageDir, 'bpftime-maps-gpu-writer');
		expect(writer, 'bpftime-maps-gpu-writer is built with the package').toBeDefined();
		const { reg, name } = freshRegistry('gpu-ipc');
		const arr = reg.createMap({ type: GpuMapType.Array, name: 'hits', keySize: 4, valueSize: 8, maxEntries: ENTRIES });
		const pta = reg.createMap({
			type: GpuMapType.PerThreadArray,
			name: 'mine',
			keySize: 4,
			valueSize: 8,
			maxEntries: 2,
			mapExtra: BigInt(THREADS),
		});
		const ring = reg.createMap({
			type: GpuMapType.Ringbuf,
			name: 'events',
			keySize: 0,
			valueSize: 0,
			maxEntries: 1 << 16,
		});
		using view = deviceMap(arr);
		expect(view.data).not.toBe(0n);
		expect(view).toMatchObject({ mapType: GpuMapType.Array, keySize: 4, valueSize: 8, maxEntries: ENTRIES, stride: 8 });

		const w = await finished(
			startProcess(writer as string, [
				name,
				String(arr.id),
				String(pta.id),
				String(ring.id),
				String(BLOCKS),
				String(PER_BLOCK),
			]),
		);
		expect(w.stdout.trim(), w.stderr).toBe(`ok threads=${THREADS} wrong=0 ring_failures=0`);
		expect(w.code).toBe(0);

		const r = await finished(
			startNode(new URL('./fixtures/reader.mjs', import.meta.url).pathname, [
				name,
				String(arr.id),
				String(pta.id),
				String(ring.id),
			]),
		);
		expect(r.code, r.stderr).toBe(0);
		const got = JSON.parse(r.stdout);

		// Thread t added 1 at index t % ENTRIES.
		const counts = Array.from({ length: ENTRIES }, (_, k) =>
			String(Array.from({ length: THREADS }, (_, t) => t).filter((t) => t % ENTRIES === k).length),
		);
		expect(got.array).toEqual(counts);
		// Index 0: t * 3 + 1 (update); index 1: t + 100 (through lookup).
		expect(got.pta).toEqual([
			Array.from({ length: THREADS }, (_, t) => String(t * 3 + 1)),
			Array.from({ length: THREADS }, (_, t) => String(t + 100)),
		]);
		// One 16-byte record per thread, each once, in the kernel's format.
		expect(got.records).toHaveLength(THREADS);
		const byThread = [...got.records].sort((a, b) => a[1] - b[1]);
		expect(byThread).toEqual(Array.from({ length: THREADS }, (_, t) => [16, t, 0xb0f7, String(t * t)]));
		expect(got.dropped).toBe('0');

		// The creating process reads the same through its own instance; the
		// ring was consumed by the reader.
		expect(new GpuArray(arr, u64).readAll().map(String)).toEqual(counts);
		using rb = GpuRingBuf.open(ring);
		expect(rb.read()).toEqual([]);
	}, 120_000);
});
