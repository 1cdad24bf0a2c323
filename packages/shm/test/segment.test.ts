import { statSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { BpftimeError, DEFAULT_SEGMENT_NAME, LAYOUT_VERSION, Segment } from '../src/index.js';
import { runChild, uniqueName } from './helpers.js';

describe('Segment', () => {
	it('creates a segment whose header names this process and layout', () => {
		const name = uniqueName('create');
		const before = BigInt(Date.now()) * 1_000_000n;
		using seg = Segment.create({ name, sizeMb: 2 });
		const info = seg.info;
		expect(info.name).toBe(name);
		expect(info.layoutVersion).toBe(LAYOUT_VERSION);
		expect(info.size).toBe(2n << 20n);
		expect(info.creatorPid).toBe(process.pid);
		expect(info.createdAtNs).toBeGreaterThanOrEqual(before - 1_000_000_000n);
		expect(info.createdAtNs).toBeLessThanOrEqual(BigInt(Date.now()) * 1_000_000n + 1_000_000_000n);
		expect(Segment.exists({ name })).toBe(true);
	});

	it('creates the segment file readable by its owner only', () => {
		const name = uniqueName('mode');
		using _seg = Segment.create({ name, sizeMb: 1 });
		expect(statSync(`/dev/shm/${name}`).mode & 0o777).toBe(0o600);
	});

	it('widens the file permissions when asked, whatever the umask', () => {
		const name = uniqueName('mode');
		const old = process.umask(0o077);
		try {
			using _seg = Segment.create({ name, sizeMb: 1, mode: 0o666 });
			expect(statSync(`/dev/shm/${name}`).mode & 0o777).toBe(0o666);
		} finally {
			process.umask(old);
		}
	});

	it('counts used and free bytes as objects are allocated and freed', () => {
		const name = uniqueName('stats');
		using seg = Segment.create({ name, sizeMb: 1 });
		const empty = seg.stats();
		expect(empty.size).toBe((1n << 20n) - 4096n);
		expect(empty.used + empty.free).toBe(empty.size);
		seg.allocate('block', 100_000);
		const full = seg.stats();
		expect(full.used - empty.used).toBeGreaterThanOrEqual(100_000n);
		expect(full.namedObjects).toBe(1n);
		seg.free('block');
		expect(seg.stats().used).toBe(empty.used);
	});

	it('gives zeroed objects that are found again by name', () => {
		const name = uniqueName('objects');
		using seg = Segment.create({ name, sizeMb: 1 });
		const a = seg.allocate('a', 64);
		expect(a.every((b) => b === 0)).toBe(true);
		a.writeBigUInt64LE(0x1122334455667788n, 8);
		expect(seg.lookup('a')?.readBigUInt64LE(8)).toBe(0x1122334455667788n);
		expect(seg.lookup('missing')).toBeUndefined();
		seg.mutex('lock');
		expect(seg.objects().sort((x, y) => x.name.localeCompare(y.name))).toEqual([
			{ kind: 'bytes', name: 'a', size: 64n },
			{ kind: 'mutex', name: 'lock', size: 0n },
		]);
	});

	it('keeps views valid after close, until they are collected', () => {
		const name = uniqueName('view');
		const seg = Segment.create({ name, sizeMb: 1 });
		const view = seg.allocate('v', 8);
		seg.close();
		view.writeUInt32LE(7);
		expect(view.readUInt32LE()).toBe(7);
		expect(() => seg.stats()).toThrow(/closed/);
	});

	it('opens an existing segment or creates a missing one', () => {
		const name = uniqueName('ooc');
		using first = Segment.openOrCreate({ name, sizeMb: 1 });
		first.allocate('mark', 4).writeUInt32LE(42);
		using second = Segment.openOrCreate({ name, sizeMb: 1 });
		expect(second.lookup('mark')?.readUInt32LE()).toBe(42);
	});

	it('removes a segment while processes that map it keep their data', () => {
		const name = uniqueName('remove');
		using seg = Segment.create({ name, sizeMb: 1 });
		seg.allocate('x', 4).writeUInt32LE(9);
		Segment.remove({ name });
		expect(Segment.exists({ name })).toBe(false);
		expect(seg.lookup('x')?.readUInt32LE()).toBe(9);
	});

	it('locks and unlocks a shared mutex', () => {
		const name = uniqueName('mutex');
		using seg = Segment.create({ name, sizeMb: 1 });
		const m = seg.mutex('m');
		expect(m.lock()).toBe('acquired');
		expect(() => m.lock()).toThrow(expect.objectContaining({ code: 'EDEADLK' }));
		m.unlock();
		expect(m.tryLock()).toBe('acquired');
		m.unlock();
		expect(() => m.unlock()).toThrow(expect.objectContaining({ code: 'EPERM' }));
	});

	it('takes its name and size from BPFTIME_GLOBAL_SHM_NAME and BPFTIME_SHM_MEMORY_MB', async () => {
		const name = uniqueName('env');
		const r = await runChild('child.mjs', ['create-from-env'], {
			BPFTIME_GLOBAL_SHM_NAME: name,
			BPFTIME_SHM_MEMORY_MB: '3',
		});
		expect(r.stderr).toBe('');
		const info = JSON.parse(r.stdout.replace(/^info /, ''));
		expect(info.name).toBe(name);
		expect(info.size).toBe(String(3 << 20));
	});

	it('defaults to bpftime_maps_shm and 20 MiB when the environment says nothing', async () => {
		expect(DEFAULT_SEGMENT_NAME).toBe('bpftime_maps_shm');
		const r = await runChild('child.mjs', ['default-options'], {
			BPFTIME_GLOBAL_SHM_NAME: undefined,
			BPFTIME_SHM_MEMORY_MB: undefined,
		});
		expect(JSON.parse(r.stdout.replace(/^options /, ''))).toEqual({ name: 'bpftime_maps_shm', sizeMb: 20 });
	});

	it('refuses a malformed BPFTIME_SHM_MEMORY_MB', async () => {
		const r = await runChild('child.mjs', ['default-options'], { BPFTIME_SHM_MEMORY_MB: '12abc' });
		expect(r.stdout.trim()).toBe(
			"error EINVAL BPFTIME_SHM_MEMORY_MB='12abc' is not a size in MiB between 1 and 1048576",
		);
	});

	it('reports errors as BpftimeError with code and errno', () => {
		try {
			Segment.open({ name: uniqueName('missing') });
			expect.unreachable();
		} catch (e) {
			expect(e).toBeInstanceOf(BpftimeError);
			expect((e as BpftimeError).code).toBe('ENOENT');
			expect((e as BpftimeError).errno).toBe(2);
			expect((e as BpftimeError).message).toMatch(/does not exist/);
		}
	});
});
