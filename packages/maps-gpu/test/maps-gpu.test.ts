// What works on every machine where the package is built: the types
// register, attribute errors are the kernel's, creation without a device is
// ENODEV naming the reason and loses nothing already in the registry, and
// the views check what they view.
import { MapFlags, MapType, u64 } from '@bpftime/handlers';
import { describe, expect, it } from 'vitest';
import {
	deviceMap,
	GpuArray,
	GpuMapType,
	GpuPerThreadArray,
	GpuRingBuf,
	isAvailable,
	MAP_TYPES,
} from '../src/index.js';
import { errorOf, freshRegistry, noAddon, noDevice, u32le, u64le } from './helpers.js';

const why = noDevice();
// Without the CUDA toolkit at build time nothing native exists to test: say so.
const absent = noAddon();
if (absent) console.log(`skipped: ${absent}`);

describe.skipIf(absent !== '')('GPU map types', () => {
	it('registers the GPU array, per-thread array and ring buffer under bpftime numbers', () => {
		expect(MAP_TYPES.map((t) => [t.type, t.typeName])).toEqual([
			[1503, 'BPFTIME_MAP_TYPE_GPU_ARRAY'],
			[1502, 'BPFTIME_MAP_TYPE_PERGPUTD_ARRAY'],
			[1527, 'BPFTIME_MAP_TYPE_GPU_RINGBUF'],
		]);
		expect(GpuMapType).toEqual({ PerThreadArray: 1502, Array: 1503, Ringbuf: 1527 });
	});

	it('says whether a device is usable, and why not', () => {
		const a = isAvailable();
		if (a.available) {
			expect(a.reason).toBe('');
			expect(a.device).toMatch(/^device \d+: .+, driver CUDA \d+\.\d+$/);
		} else {
			// The reasons of this machine's kind: no driver library, or a
			// driver that finds no device.
			expect(a.reason).toMatch(/libcuda\.so\.1|cuInit|no device|names no device/);
			expect(a.device).toBeUndefined();
		}
	});
});

describe.skipIf(why === '' || absent !== '')('without a device', () => {
	it.each([
		['GPU array', { type: GpuMapType.Array, keySize: 4, valueSize: 8, maxEntries: 16 }],
		['per-thread array', { type: GpuMapType.PerThreadArray, keySize: 4, valueSize: 8, maxEntries: 2, mapExtra: 64n }],
		['ring buffer', { type: GpuMapType.Ringbuf, keySize: 0, valueSize: 0, maxEntries: 1 << 16 }],
	])('refuses to create a %s with ENODEV and keeps the registry as it was', (_, spec) => {
		const { reg } = freshRegistry('gpu-nodev');
		const counts = reg.createMap({ type: MapType.Array, name: 'counts', keySize: 4, valueSize: 8, maxEntries: 4 });
		counts.update(u32le(1), u64le(41n));
		const before = reg.list();
		const e = errorOf(() => reg.createMap({ ...spec, name: 'gpu' }));
		expect(e).toMatchObject({ code: 'ENODEV', errno: 19 });
		expect(e.message).toMatch(/gpu/);
		expect(e.message).toMatch(/libcuda\.so\.1|cuInit|device/);
		expect(reg.list()).toEqual(before);
		expect(reg.size).toBe(1);
		expect(counts.lookup(u32le(1))?.readBigUInt64LE(0)).toBe(41n);
		// The slot the failed create did not take is the next one handed out.
		expect(reg.createMap({ type: MapType.Array, name: 'next', keySize: 4, valueSize: 8, maxEntries: 1 }).id).toBe(
			counts.id + 1,
		);
	});
});

describe.skipIf(absent !== '')('attribute checks (before any device is touched)', () => {
	it.each([
		[
			'a GPU array with an 8-byte key',
			{ type: GpuMapType.Array, keySize: 8, valueSize: 8, maxEntries: 4 },
			'EINVAL',
			/key size 8/,
		],
		[
			'a GPU array of zero entries',
			{ type: GpuMapType.Array, keySize: 4, valueSize: 8, maxEntries: 0 },
			'EINVAL',
			/max_entries 0/,
		],
		[
			'a GPU array with BPF_F_MMAPABLE',
			{ type: GpuMapType.Array, keySize: 4, valueSize: 8, maxEntries: 4, flags: MapFlags.Mmapable },
			'EINVAL',
			/no BPF_F_MMAPABLE/,
		],
		[
			'a GPU array with map_extra',
			{ type: GpuMapType.Array, keySize: 4, valueSize: 8, maxEntries: 4, mapExtra: 3n },
			'EINVAL',
			/map_extra 3/,
		],
		[
			'a GPU array with 8 MiB values',
			{ type: GpuMapType.Array, keySize: 4, valueSize: 8 << 20, maxEntries: 1 },
			'E2BIG',
			/value size/,
		],
		[
			'a per-thread array without a thread count',
			{ type: GpuMapType.PerThreadArray, keySize: 4, valueSize: 8, maxEntries: 4 },
			'EINVAL',
			/number of GPU threads/,
		],
		[
			'a per-thread array of more than 2 GiB an index',
			{ type: GpuMapType.PerThreadArray, keySize: 4, valueSize: 4096, maxEntries: 1, mapExtra: 1n << 20n },
			'E2BIG',
			/above 2 GiB/,
		],
		[
			'a ring buffer with a key',
			{ type: GpuMapType.Ringbuf, keySize: 4, valueSize: 0, maxEntries: 4096 },
			'EINVAL',
			/takes neither/,
		],
		[
			'a ring buffer of 3 pages',
			{ type: GpuMapType.Ringbuf, keySize: 0, valueSize: 0, maxEntries: 3 * 4096 },
			'EINVAL',
			/power of two/,
		],
	])('refuses %s', (_, spec, code, message) => {
		const { reg } = freshRegistry('gpu-attrs');
		const e = errorOf(() => reg.createMap({ ...spec, name: 'bad' }));
		expect(e.code).toBe(code);
		expect(e.message).toMatch(message);
		expect(reg.size).toBe(0);
	});
});

describe('typed views', () => {
	it('refuse a map of another type, naming both', () => {
		const { reg } = freshRegistry('gpu-views');
		const plain = reg.createMap({ type: MapType.Array, name: 'plain', keySize: 4, valueSize: 8, maxEntries: 4 });
		expect(errorOf(() => new GpuArray(plain, u64))).toMatchObject({
			code: 'EINVAL',
			message: expect.stringMatching(/GpuArray views a BPFTIME_MAP_TYPE_GPU_ARRAY map, not a BPF_MAP_TYPE_ARRAY map/),
		});
		expect(errorOf(() => new GpuPerThreadArray(plain, u64)).code).toBe('EINVAL');
		expect(errorOf(() => GpuRingBuf.open(plain)).message).toMatch(/expected BPFTIME_MAP_TYPE_GPU_RINGBUF/);
	});

	it.skipIf(absent !== '')('deviceMap refuses a map that is not a GPU map, naming it', () => {
		const { reg } = freshRegistry('gpu-devmap');
		const plain = reg.createMap({ type: MapType.Array, name: 'plain', keySize: 4, valueSize: 8, maxEntries: 4 });
		expect(errorOf(() => deviceMap(plain))).toMatchObject({
			code: 'EINVAL',
			message: expect.stringMatching(/map 'plain' \(id \d+\): not a GPU map/),
		});
	});
});
