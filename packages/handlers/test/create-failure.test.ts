import { describe, expect, it } from 'vitest';
import { MapFlags, MapType, ProgType, type Registry } from '../src/index.js';
import { emptyBtf, errorOf, freshRegistry, insns, returnImm } from './helpers.js';

type Segment = ReturnType<typeof freshRegistry>['seg'];

/** What a failed create must leave as it was. */
function state(reg: Registry, seg: Segment) {
	return { size: reg.size, changeCounter: reg.changeCounter, free: seg.stats().free, ids: reg.list().map((d) => d.id) };
}

/** A registry holding a program at id 0 and a perf event at id 1, for the failures that refer to them. */
function populated(tag: string, sizeMb = 8, capacity = 64) {
	const r = freshRegistry(tag, { sizeMb, capacity });
	r.reg.loadProg({ type: ProgType.Kprobe, name: 'p', license: 'GPL', insns: returnImm(0) });
	r.reg.createPerfEvent({ type: 'uprobe', path: '/bin/sh' });
	return r;
}

/** A BTF blob of n bytes with a valid header. */
function btfOf(n: number): Buffer {
	const b = Buffer.alloc(n);
	emptyBtf().copy(b);
	return b;
}

/** `r0 = 0` n - 1 times, then exit. */
function longProg(n: number): Buffer {
	const b = Buffer.alloc(n * 8);
	for (let i = 0; i < n - 1; i++) b.writeUInt8(0xb7, i * 8);
	b.writeUInt8(0x95, (n - 1) * 8);
	return b;
}

const kprobe = (code: Buffer, name = 'q') => ({ type: ProgType.Kprobe, name, license: 'GPL', insns: code });

describe('a failed create leaves the registry as it was (count, change counter, free segment memory)', () => {
	it.each([
		[
			'map',
			'of a type no package registered here',
			'EINVAL',
			(r: Registry) => r.createMap({ type: MapType.Hash, name: 'h', keySize: 4, valueSize: 8, maxEntries: 4 }),
		],
		[
			'map',
			'with BPF_F_RDONLY and BPF_F_WRONLY',
			'EINVAL',
			(r: Registry) =>
				r.createMap({
					type: MapType.Array,
					name: 'a',
					keySize: 4,
					valueSize: 8,
					maxEntries: 4,
					flags: MapFlags.Rdonly | MapFlags.Wronly,
				}),
		],
		[
			'map',
			'with a name of 16 bytes',
			'EINVAL',
			(r: Registry) =>
				r.createMap({ type: MapType.Array, name: 'a'.repeat(16), keySize: 4, valueSize: 8, maxEntries: 4 }),
		],
		[
			'map',
			'whose BTF object does not exist',
			'EBADF',
			(r: Registry) =>
				r.createMap({ type: MapType.Array, name: 'a', keySize: 4, valueSize: 8, maxEntries: 4, btfId: 9 }),
		],
		['prog', 'without instructions', 'EINVAL', (r: Registry) => r.loadProg(kprobe(Buffer.alloc(0)))],
		['prog', 'of an unknown type', 'EINVAL', (r: Registry) => r.loadProg({ ...kprobe(returnImm(0)), type: 999 })],
		[
			'prog',
			'naming a map that does not exist',
			'EBADF',
			(r: Registry) => r.loadProg(kprobe(insns([0x18, 1, 1, 0, 40], [0, 0, 0, 0, 0], [0x95, 0, 0, 0, 0]))),
		],
		['prog', 'at an id in use', 'EEXIST', (r: Registry) => r.loadProg(kprobe(returnImm(0)), { id: 1 })],
		['prog', 'at an id outside the table', 'EBADF', (r: Registry) => r.loadProg(kprobe(returnImm(0)), { id: 64 })],
		['link', 'to a program that does not exist', 'EBADF', (r: Registry) => r.createLink({ progId: 7 })],
		[
			'link',
			'to a target that is not a perf event',
			'EINVAL',
			(r: Registry) => r.createLink({ progId: 0, targetId: 0 }),
		],
		['link', 'at an id in use', 'EEXIST', (r: Registry) => r.createLink({ progId: 0, targetId: 1 }, { id: 0 })],
		[
			'perf_event',
			'of a uprobe without a path',
			'EINVAL',
			(r: Registry) => r.createPerfEvent({ type: 'uprobe', path: '' }),
		],
		[
			'perf_event',
			'of a syscall id past 1023',
			'EINVAL',
			(r: Registry) => r.createPerfEvent({ type: 'syscall_tracepoint', syscallId: 5000 }),
		],
		[
			'perf_event',
			'of a uprobe for pid -2',
			'EINVAL',
			(r: Registry) => r.createPerfEvent({ type: 'uprobe', path: '/bin/sh', pid: -2 }),
		],
		[
			'perf_event',
			'of a syscall tracepoint for pid -2',
			'EINVAL',
			(r: Registry) => r.createPerfEvent({ type: 'syscall_tracepoint', syscallId: 1, pid: -2 }),
		],
		[
			'perf_event',
			'with a symbol of 4096 bytes',
			'ENAMETOOLONG',
			(r: Registry) => r.createPerfEvent({ type: 'uprobe', path: '/bin/sh', symbol: 's'.repeat(4096) }),
		],
		['btf', 'shorter than a header', 'EINVAL', (r: Registry) => r.loadBtf(Buffer.alloc(8))],
		['btf', 'without the magic', 'EINVAL', (r: Registry) => r.loadBtf(Buffer.alloc(32))],
		['btf', 'of more than 16 MiB', 'E2BIG', (r: Registry) => r.loadBtf(btfOf((16 << 20) + 1))],
	])('%s: refuses one %s (%s)', (kind, _what, code, create) => {
		const { reg, seg } = populated(`fail_${kind}`);
		const before = state(reg, seg);
		expect(errorOf(() => create(reg)).code).toBe(code);
		expect(state(reg, seg)).toEqual(before);
	});

	// These fail after the handler object was built in the segment: the transaction frees it.
	it.each([
		['prog', 'whose instructions do not fit in the segment', (r: Registry) => r.loadProg(kprobe(longProg(1_000_000)))],
		['btf', 'that does not fit in the segment', (r: Registry) => r.loadBtf(btfOf(6 << 20))],
	])('%s: refuses one %s with ENOMEM and gives the memory back', (kind, _what, create) => {
		const { reg, seg } = populated(`nomem_${kind}`, 4);
		const before = state(reg, seg);
		const e = errorOf(() => create(reg));
		expect(e.code).toBe('ENOMEM');
		expect(e.message).toMatch(/has no room for/);
		expect(state(reg, seg)).toEqual(before);
		// The id it would have taken is free and the registry keeps working.
		expect(reg.loadBtf(emptyBtf()).id).toBe(2);
	});

	it('perf_event and link: refuse with ENOMEM in a full segment and give the memory back', () => {
		const { reg, seg } = populated('nomem_small', 4, 4096);
		// Fill the segment with BTF blobs, largest first, until not even a small one fits.
		for (const size of [1 << 20, 1 << 16, 1 << 12, 1 << 8, 32]) {
			for (;;) {
				try {
					reg.loadBtf(btfOf(size));
				} catch (e) {
					if ((e as { code?: string }).code === 'ENOMEM') break;
					throw e;
				}
			}
		}
		const before = state(reg, seg);
		const ev = errorOf(() =>
			reg.createPerfEvent({ type: 'uprobe', path: `/${'p'.repeat(4000)}`, symbol: 's'.repeat(4000) }),
		);
		expect(ev.code).toBe('ENOMEM');
		expect(ev.message).toMatch(/^perf_event: create: the segment is full/);
		expect(state(reg, seg)).toEqual(before);
		// A link is only its handler object: fill what is left with links first.
		const linkToo = () => reg.createLink({ progId: 0, targetId: 1 });
		for (;;) {
			try {
				linkToo();
			} catch (e) {
				if ((e as { code?: string }).code === 'ENOMEM') break;
				throw e;
			}
		}
		const full = state(reg, seg);
		const link = errorOf(linkToo);
		expect(link.code).toBe('ENOMEM');
		expect(link.message).toMatch(/^link: create: the segment is full/);
		expect(state(reg, seg)).toEqual(full);
	});
});
