import { MapFlags, MapType, ProgType, UpdateFlags, u32, u64 } from '@bpftime/handlers';
import { assemble } from '@bpftime/vm';
import { describe, expect, it } from 'vitest';
import { errorOf, freshRegistry, runChild, u32le } from './helpers.js';

const backends = ['interpreter', 'jit'] as const;
const spec = { type: MapType.ProgArray, name: 'jmp', keySize: 4, valueSize: 4, maxEntries: 4 };

// bpf_tail_call(ctx, jmp, *(u32 *)ctx); 1 when it falls through.
const callerSource = (jmp: number) => `
	r6 = r1
	r3 = *(u32 *)(r1 + 0)
	r2 = map_by_fd(${jmp}) ll
	r1 = r6
	call 12
	r0 = 1
	exit`;

describe('BPF_MAP_TYPE_PROG_ARRAY', () => {
	it.each(backends)('runs the program stored at the index and falls through at an empty one, on the %s', (backend) => {
		const { reg } = freshRegistry(`pa_run_${backend}`);
		const jmp = reg.createMap(spec);
		const target = reg.loadProg({ type: ProgType.Kprobe, name: 'target', insns: assemble('r0 = 42\nexit') });
		const caller = reg.loadProg({ type: ProgType.Kprobe, name: 'caller', insns: assemble(callerSource(jmp.id)) });
		jmp.update(u32le(2), u32le(target.id));
		expect(caller.run(u32le(2), { backend })).toBe(42n);
		expect(caller.run(u32le(1), { backend })).toBe(1n);
		// Past the end: the kernel's bpf_tail_call falls through too.
		expect(caller.run(u32le(9), { backend })).toBe(1n);
		jmp.delete(u32le(2));
		expect(caller.run(u32le(2), { backend })).toBe(1n);
	});

	it.each(backends)('stops a chain of tail calls after 33 (MAX_TAIL_CALL_CNT), on the %s', (backend) => {
		const { reg } = freshRegistry(`pa_limit_${backend}`);
		const jmp = reg.createMap(spec);
		const runs = reg.createMap({ type: MapType.Array, name: 'runs', keySize: 4, valueSize: 8, maxEntries: 1 });
		// runs[0] += 1, then tail-calls itself through index 0; 7 once the chain is refused.
		const self = reg.loadProg({
			type: ProgType.Kprobe,
			name: 'self',
			insns: assemble(`
				r6 = r1
				r1 = 0
				*(u32 *)(r10 - 4) = r1
				r1 = map_by_fd(${runs.id}) ll
				r2 = r10
				r2 += -4
				call 1
				if r0 == 0 goto out
				r1 = 1
				lock *(u64 *)(r0 + 0) += r1
				r1 = r6
				r2 = map_by_fd(${jmp.id}) ll
				r3 = 0
				call 12
			out:
				r0 = 7
				exit`),
		});
		jmp.update(u32le(0), u32le(self.id));
		expect(self.run(undefined, { backend })).toBe(7n);
		// The first run and 33 tail calls, as the kernel counts them.
		expect(runs.typed(u32, u64).get(0)).toBe(34n);
	});

	it('answers lookups with the program id, as bpf(BPF_MAP_LOOKUP_ELEM) does, and ENOENT when empty', () => {
		const { reg } = freshRegistry('pa_lookup');
		const jmp = reg.createMap(spec);
		const p = reg.loadProg({ type: ProgType.Kprobe, name: 'p', insns: assemble('r0 = 0\nexit') });
		jmp.update(u32le(1), u32le(p.id));
		expect(jmp.lookup(u32le(1))?.readUInt32LE(0)).toBe(p.id);
		expect(jmp.lookup(u32le(0))).toBeUndefined();
		expect(jmp.lookup(u32le(4))).toBeUndefined();
		expect(jmp.nextKey()?.readUInt32LE(0)).toBe(0);
		expect(jmp.nextKey(u32le(3))).toBeUndefined();
	});

	it('refuses what the kernel refuses, with its errno, and keeps the stored program', () => {
		const { reg } = freshRegistry('pa_errors');
		const jmp = reg.createMap(spec);
		const p = reg.loadProg({ type: ProgType.Kprobe, name: 'p', insns: assemble('r0 = 0\nexit') });
		const other = reg.loadProg({ type: ProgType.SocketFilter, name: 'sock', insns: assemble('r0 = 0\nexit') });
		jmp.update(u32le(0), u32le(p.id));
		const codes = (f: () => unknown) => {
			const e = errorOf(f);
			return [e.code, e.errno];
		};
		// The kernel's bpf_fd_array_map_update_elem: BPF_ANY only.
		expect(codes(() => jmp.update(u32le(1), u32le(p.id), UpdateFlags.NoExist))).toEqual(['EINVAL', 22]);
		expect(codes(() => jmp.update(u32le(4), u32le(p.id)))).toEqual(['E2BIG', 7]);
		expect(codes(() => jmp.update(u32le(1), u32le(jmp.id)))).toEqual(['EINVAL', 22]); // a map, not a program
		expect(codes(() => jmp.update(u32le(1), u32le(999)))).toEqual(['EBADF', 9]);
		// bpf_prog_map_compatible: the first program's type is the array's.
		const mixed = errorOf(() => jmp.update(u32le(1), u32le(other.id)));
		expect(mixed.code).toBe('EINVAL');
		expect(mixed.message).toMatch(/map 'jmp'.*update/);
		expect(codes(() => jmp.delete(u32le(4)))).toEqual(['E2BIG', 7]);
		expect(jmp.delete(u32le(3))).toBe(false); // ENOENT
		expect(jmp.lookup(u32le(0))?.readUInt32LE(0)).toBe(p.id);
		// A stored program cannot be released while the array holds it.
		expect(errorOf(() => p.release()).code).toBe('EBUSY');
	});

	it.each([
		['a value other than 4 bytes', { valueSize: 8 }, /4-byte ids/],
		['BPF_F_MMAPABLE', { flags: MapFlags.Mmapable }, /map_flags/],
		['BPF_F_RDONLY_PROG', { flags: MapFlags.RdonlyProg }, /BPF_F_RDONLY_PROG/],
		['a key other than 4 bytes', { keySize: 8 }, /key size 8/],
		['max_entries 0', { maxEntries: 0 }, /max_entries/],
	])('refuses %s at creation with EINVAL naming it', (_, change, message) => {
		const { reg } = freshRegistry('pa_create');
		const e = errorOf(() => reg.createMap({ ...spec, ...change }));
		expect(e.code).toBe('EINVAL');
		expect(e.message).toMatch(message);
		expect(reg.list()).toEqual([]);
	});

	it.each(backends)(
		'sees a program another process stores or removes at the next tail call, on the %s',
		async (backend) => {
			const { reg, name } = freshRegistry(`pa_xproc_${backend}`);
			const jmp = reg.createMap(spec);
			const a = reg.loadProg({ type: ProgType.Kprobe, name: 'a', insns: assemble('r0 = 10\nexit') });
			const b = reg.loadProg({ type: ProgType.Kprobe, name: 'b', insns: assemble('r0 = 20\nexit') });
			const caller = reg.loadProg({ type: ProgType.Kprobe, name: 'caller', insns: assemble(callerSource(jmp.id)) });
			jmp.update(u32le(0), u32le(a.id));
			expect(caller.run(u32le(0), { backend })).toBe(10n);
			const set = await runChild('fd-child.mjs', ['set', name, String(jmp.id), '0', String(b.id)]);
			expect(set.stdout.trim()).toBe('set');
			expect(caller.run(u32le(0), { backend })).toBe(20n);
			await runChild('fd-child.mjs', ['delete', name, String(jmp.id), '0']);
			expect(caller.run(u32le(0), { backend })).toBe(1n);
			// And the other way round: the child runs the caller after the parent stored a.
			jmp.update(u32le(0), u32le(a.id));
			const run = await runChild('fd-child.mjs', ['run', name, String(caller.id), backend, '0']);
			expect(run.stdout.trim()).toBe('r0 10');
		},
	);
});
