import { beforeAll, describe, expect, it } from 'vitest';
import { BpfObject, MapFlags, MapType } from '../src/index.js';
import { useFixtures, useKernelTarget } from './helpers.js';
import { RecordingTarget } from './targets.js';

const fx = useFixtures();
let path: string;

beforeAll(async () => {
	path = await fx.bpf('globals');
});

function u64(n: bigint): string {
	const b = Buffer.alloc(8);
	b.writeBigUInt64LE(n);
	return b.toString('hex');
}

describe('global data maps', () => {
	// Initial contents written from globals.bpf.c: little-endian, C layout.
	it.each([
		['globals.data', '.data', 'data', '2a000000' + '05000000'],
		[
			'globals.rodata',
			'.rodata',
			'rodata',
			`00000000fdff00${Buffer.from('init\0\0\0\0').toString('hex')}00${'01000000'}00000000${u64(1000n)}`,
		],
		['globals.bss', '.bss', 'bss', '00'.repeat(40)],
		['.data.custom', '.data.custom', 'data', '07000000' + '08000000'],
		['.rodata.limits', '.rodata.limits', 'rodata', u64(1n << 40n)],
		['.data.msg', '.data.msg', 'data', Buffer.from('hello').toString('hex') + '00'.repeat(11)],
	])('makes %s from section %s (%s) a one-entry array with its initial contents', (name, section, kind, contents) => {
		const o = BpfObject.open(path);
		const m = o.map(name);
		expect(m).toMatchObject({
			section,
			kind,
			type: MapType.Array,
			keySize: 4,
			maxEntries: 1,
			valueSize: contents.length / 2,
		});
		expect(m.contents?.toString('hex')).toBe(contents);
		const ro = kind === 'rodata' ? MapFlags.RdonlyProg : 0;
		expect(m.flags).toBe(ro | MapFlags.Mmapable);
	});

	it('maps string literals, and sections of static variables only, without BPF_F_MMAPABLE, as libbpf', async () => {
		const o = BpfObject.open(await fx.bpf('strings'));
		expect(o.maps.map((m) => [m.name, m.kind, m.flags])).toEqual([
			['.rodata.str1.1', 'rodata', MapFlags.RdonlyProg],
			['strings.rodata', 'rodata', MapFlags.RdonlyProg],
			['strings.data', 'data', 0],
		]);
		expect(o.map('.rodata.str1.1').contents?.toString('latin1')).toBe('a string literal, long enough to stay\0');
		expect(o.map('.rodata').contents?.toString('latin1')).toBe('hello %d %d\0');
		expect(o.map('.data').contents?.readInt32LE(0)).toBe(3);
	});

	it('finds the variables of each section at their symbol offsets', () => {
		const o = BpfObject.open(path);
		const vars = (name: string) => o.map(name).variables.map((v) => [v.name, v.offset, v.size]);
		expect(vars('globals.rodata')).toEqual([
			['target_pid', 0, 4],
			['delta', 4, 2],
			['verbose', 6, 1],
			['tag', 7, 8],
			['cfg', 16, 16],
		]);
		expect(vars('globals.data')).toEqual([
			['counter', 0, 4],
			['hidden_counter', 4, 4],
		]);
		expect(vars('globals.bss')).toEqual([
			['hits', 0, 8],
			['zeros', 8, 32],
		]);
	});

	it('looks up the section maps by their section name too', () => {
		const o = BpfObject.open(path);
		expect(o.map('.rodata').name).toBe('globals.rodata');
		expect(o.map('.bss').name).toBe('globals.bss');
	});

	it('names data maps after the object given at open, cut to 15 characters', () => {
		const o = BpfObject.open(path, { name: 'a_long_object_name' });
		expect(o.map('.rodata').kernelName).toBe('a_long_o.rodata');
		expect(o.map('.rodata').kernelName.length).toBeLessThanOrEqual(15);
		expect(o.map('.data.custom').kernelName).toBe('.data.custom');
	});

	it('points each lddw of a global at its map and offset', () => {
		const o = BpfObject.open(path);
		const p = o.program('read_globals');
		const refs = p.mapReferences.filter((r) => r.kind === 'value').map((r) => `${r.map}+${r.offset}`);
		expect(refs).toEqual(
			expect.arrayContaining([
				'globals.rodata+0',
				'globals.rodata+4',
				'globals.rodata+6',
				'globals.rodata+7',
				'globals.rodata+16',
				'globals.data+0',
				'globals.data+4',
				'globals.bss+0',
				'globals.bss+8',
				'.data.custom+0',
				'.rodata.limits+0',
				'.data.msg+0',
			]),
		);
	});
});

describe('setRodata', () => {
	it('encodes integers, negative numbers, booleans, strings and buffers by their BTF type', () => {
		const o = BpfObject.open(path);
		o.setRodata('target_pid', 1234);
		o.setRodata('delta', -7);
		o.setRodata('verbose', true);
		o.setRodata('tag', 'abc');
		o.setRodata('limit', 5n);
		const cfg = Buffer.alloc(16);
		cfg.writeUInt32LE(2, 0);
		cfg.writeBigUInt64LE(77n, 8);
		o.setRodata('cfg', cfg);
		expect(o.rodata('target_pid').readUInt32LE(0)).toBe(1234);
		expect(o.rodata('delta').readInt16LE(0)).toBe(-7);
		expect(o.rodata('verbose')[0]).toBe(1);
		expect(o.rodata('tag').toString('latin1')).toBe('abc\0\0\0\0\0');
		expect(o.rodata('limit').readBigUInt64LE(0)).toBe(5n);
		expect(o.map('.rodata').contents?.subarray(16).equals(cfg)).toBe(true);
	});

	it.each([
		['target_pid', -1, 'EINVAL', /does not fit/],
		['target_pid', 2 ** 32, 'EINVAL', /does not fit/],
		['delta', 40000, 'EINVAL', /does not fit/],
		['tag', 'eight ch', 'EINVAL', /needs 9 bytes/],
		['cfg', 1, 'EINVAL', /struct config/],
		['target_pid', Buffer.alloc(3), 'EINVAL', /Expected 4 bytes/],
		['nope', 1, 'ENOENT', /variables: target_pid, delta/],
		['counter', 1, 'ENOENT', /no such variable/],
	])('refuses %s = %o with %s', (name, value, code, message) => {
		const o = BpfObject.open(path);
		const before = Buffer.from(o.map('.rodata').contents as Buffer);
		expect(() => o.setRodata(name, value as never)).toThrow(
			expect.objectContaining({ code, message: expect.stringMatching(message) }),
		);
		expect(o.map('.rodata').contents?.equals(before)).toBe(true);
	});

	it('writes the values set before load as the initial value, then freezes each .rodata map', async () => {
		const o = BpfObject.open(path);
		o.setRodata('target_pid', 99);
		const t = new RecordingTarget();
		const loaded = await o.load(t);
		const ro = loaded.maps.get('globals.rodata')?.id;
		const ops = t.log.filter((r) => (r.op === 'updateMap' || r.op === 'freezeMap') && r.map === ro);
		expect(ops.map((r) => r.op)).toEqual(['updateMap', 'freezeMap']);
		const upd = ops[0];
		expect(upd?.op === 'updateMap' && upd.value.readUInt32LE(0)).toBe(99);
		const limits = loaded.maps.get('.rodata.limits')?.id;
		expect(t.log.filter((r) => r.op === 'freezeMap').map((r) => r.op === 'freezeMap' && r.map)).toEqual([ro, limits]);
		// Writable sections are initialised and not frozen.
		const data = loaded.maps.get('globals.data')?.id;
		expect(t.log.some((r) => r.op === 'updateMap' && r.map === data)).toBe(true);
		expect(() => o.setRodata('target_pid', 1)).toThrow(expect.objectContaining({ code: 'EBUSY' }));
		o.close();
	});
});

describe('global data in the kernel', () => {
	const needKernel = useKernelTarget(fx);

	it('loads into the kernel with the rodata set before load, and the kernel refuses writes after the freeze', async (ctx) => {
		const kernel = needKernel(ctx);
		const o = BpfObject.open(path);
		o.setRodata('target_pid', 4321);
		const loaded = await o.load(kernel);
		const ro = loaded.maps.get('globals.rodata')?.id as number;
		const key = Buffer.alloc(4);
		const value = await kernel.lookup(ro, key, 32);
		expect(value.readUInt32LE(0)).toBe(4321);
		expect(value.readInt16LE(4)).toBe(-3);
		await expect(kernel.updateMap(ro, key, Buffer.alloc(32))).rejects.toMatchObject({ code: 'EPERM' });
		const data = loaded.maps.get('.data.msg')?.id as number;
		expect((await kernel.lookup(data, key, 16)).toString('latin1', 0, 5)).toBe('hello');
		o.close();
		expect(kernel.live.size).toBe(0);
	});
});
