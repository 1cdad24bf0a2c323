import { closeSync, mkdirSync, openSync, readFileSync, rmdirSync } from 'node:fs';
import { MapType, ProgType, UpdateFlags } from '@bpftime/handlers';
import { assemble } from '@bpftime/vm';
import { describe, expect, it } from 'vitest';
import { errorOf, freshRegistry, runChild, u32le } from './helpers.js';

const spec = { type: MapType.CgroupArray, name: 'cgrp', keySize: 4, valueSize: 4, maxEntries: 2 };

/** Where cgroup2 is mounted (the fifth field of its /proc/self/mountinfo line), or undefined. */
function cgroup2Root(): string | undefined {
	for (const line of readFileSync('/proc/self/mountinfo', 'utf8').split('\n'))
		if (line.includes(' - cgroup2 ')) return line.split(' ')[4];
	return undefined;
}

/** This process's cgroup2 directory. */
function ownCgroup(root: string): string {
	const line = readFileSync('/proc/self/cgroup', 'utf8')
		.split('\n')
		.find((l) => l.startsWith('0::'));
	const rel = line ? line.slice(3) : '/';
	return rel === '/' ? root : root + rel;
}

function openDir(path: string): number {
	const fd = openSync(path, 'r');
	return fd;
}

// r0 = bpf_current_task_under_cgroup(cgrp, ctx[0])
const underSource = (map: number) => `
	r2 = *(u32 *)(r1 + 0)
	r1 = map_by_fd(${map}) ll
	call 37
	exit`;

describe('BPF_MAP_TYPE_CGROUP_ARRAY', () => {
	const root = cgroup2Root();

	it('keeps cgroup fds as cgroup ids, refuses other fds, and answers lookups with ENOTSUPP as the kernel', (ctx) => {
		if (!root) {
			console.log('skipped: cgroup2 is not mounted here (/proc/self/mountinfo)');
			ctx.skip();
			return;
		}
		const { reg } = freshRegistry('cg_ops');
		const m = reg.createMap(spec);
		const dir = openDir(ownCgroup(root));
		const file = openSync('/proc/self/cgroup', 'r');
		try {
			m.update(u32le(0), u32le(dir));
			const lookup = errorOf(() => m.lookup(u32le(0)));
			expect(lookup.errno).toBe(524);
			expect(errorOf(() => m.update(u32le(1), u32le(file))).code).toBe('EBADF');
			expect(errorOf(() => m.update(u32le(1), u32le(9999))).code).toBe('EBADF');
			expect(errorOf(() => m.update(u32le(1), u32le(dir), UpdateFlags.Exist)).code).toBe('EINVAL');
			expect(errorOf(() => m.update(u32le(2), u32le(dir))).code).toBe('E2BIG');
			expect(m.delete(u32le(1))).toBe(false);
			expect(errorOf(() => m.delete(u32le(2))).code).toBe('E2BIG');
			expect(m.nextKey()?.readUInt32LE(0)).toBe(0);
			// Its cgroups are fds of this process: the JSON export leaves them out.
			expect(JSON.parse(reg.exportJson()).handlers.find((o: { id: number }) => o.id === m.id).entries).toEqual([]);
			expect(m.delete(u32le(0))).toBe(true);
		} finally {
			closeSync(dir);
			closeSync(file);
		}
	});

	it.each([
		['a value other than 4 bytes', { valueSize: 8 }, /value size 8/],
		['BPF_F_RDONLY_PROG', { flags: 0x80 }, /BPF_F_RDONLY_PROG/],
	])('refuses %s at creation with EINVAL naming it', (_, change, message) => {
		const { reg } = freshRegistry('cg_create');
		const e = errorOf(() => reg.createMap({ ...spec, ...change }));
		expect([e.code, e.message]).toEqual(['EINVAL', expect.stringMatching(message)]);
	});

	it.for(['interpreter', 'jit'] as const)(
		'answers bpf_current_task_under_cgroup from the calling thread’s cgroup and its ancestors, on the %s',
		async (backend, ctx) => {
			if (!root) {
				console.log('skipped: cgroup2 is not mounted here (/proc/self/mountinfo)');
				ctx.skip();
				return;
			}
			const own = ownCgroup(root);
			const child = `${own}/bpftime-test-${process.pid}-${backend}`;
			try {
				mkdirSync(child);
			} catch (e) {
				console.log(`skipped: cannot make a cgroup under ${own}: ${(e as Error).message}`);
				ctx.skip();
				return;
			}
			const { reg, name } = freshRegistry(`cg_under_${backend}`);
			const m = reg.createMap({ ...spec, maxEntries: 3 });
			const ownFd = openDir(own);
			const childFd = openDir(child);
			try {
				m.update(u32le(0), u32le(ownFd));
				m.update(u32le(1), u32le(childFd));
				const p = reg.loadProg({ type: ProgType.Kprobe, name: 'under', insns: assemble(underSource(m.id)) });
				const run = (i: number) => BigInt.asIntN(64, p.run(u32le(i), { backend }));
				// This thread is in `own`: under it, not under its child.
				expect(run(0)).toBe(1n);
				expect(run(1)).toBe(0n);
				expect(run(2)).toBe(-11n); // EAGAIN: an empty slot
				expect(run(3)).toBe(-7n); // E2BIG
				// A process moved into the child cgroup is under both.
				const r = await runChild('fd-child.mjs', ['run-in', child, name, String(p.id), backend, '0', '1', '2']);
				expect(r.stderr).toBe('');
				expect(r.stdout.trim()).toBe('r0 1 1 -11');
			} finally {
				closeSync(ownFd);
				closeSync(childFd);
				rmdirSync(child);
			}
		},
	);
});
