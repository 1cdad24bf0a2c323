import { MapType, ProgType, UpdateFlags } from '@bpftime/handlers';
import { assemble } from '@bpftime/vm';
import { describe, expect, it } from 'vitest';
import { errorOf, freshRegistry, u32le } from './helpers.js';

const backends = ['interpreter', 'jit'] as const;
const spec = { type: MapType.StackTrace, name: 'stacks', keySize: 4, valueSize: 32, maxEntries: 16 };
const USER_STACK = 1 << 8;

/** A struct pt_regs (x86-64) with ip at 128 and bp at 32: a stack of the ip alone when bp is 0. */
function regs(ip: bigint, bp = 0n): Buffer {
	const b = Buffer.alloc(168);
	b.writeBigUInt64LE(ip, 128);
	b.writeBigUInt64LE(bp, 32);
	return b;
}

describe('BPF_MAP_TYPE_STACK_TRACE', () => {
	it.each(backends)(
		'stores the stack of a program’s pt_regs by id and gives it to user space, on the %s',
		(backend) => {
			const { reg } = freshRegistry(`stack_${backend}`);
			const stacks = reg.createMap(spec);
			// r0 = bpf_get_stackid(ctx, stacks, flags), flags a constant of each program
			const load = (name: string, flags: number) =>
				reg.loadProg({
					type: ProgType.Kprobe,
					name,
					insns: assemble(`r2 = map_by_fd(${stacks.id}) ll\nr3 = ${flags}\ncall 27\nexit`),
				});
			const user = load('user', USER_STACK);
			const id = BigInt.asIntN(64, user.run(regs(0x401234n), { backend }));
			expect(id >= 0n && id < 16n).toBe(true);
			const v = stacks.lookup(u32le(Number(id)));
			expect(v?.readBigUInt64LE(0)).toBe(0x401234n);
			expect(v?.subarray(8).equals(Buffer.alloc(24))).toBe(true);
			// The same stack, the same id.
			expect(BigInt.asIntN(64, user.run(regs(0x401234n), { backend }))).toBe(id);
			// No kernel stack in user space: EFAULT, as the kernel without frames.
			expect(BigInt.asIntN(64, load('kernel', 0).run(regs(0x401234n), { backend }))).toBe(-14n);
			expect(BigInt.asIntN(64, load('bad', USER_STACK | (1 << 12)).run(regs(1n), { backend }))).toBe(-22n);
			// Skipping the only frame leaves nothing: EFAULT.
			expect(BigInt.asIntN(64, load('skip', USER_STACK | 1).run(regs(1n), { backend }))).toBe(-14n);
			expect(stacks.nextKey()?.readUInt32LE(0)).toBe(Number(id));
			expect(stacks.delete(u32le(Number(id)))).toBe(true);
			expect(stacks.lookup(u32le(Number(id)))).toBeUndefined();
		},
	);

	it.each(backends)(
		'copies the stack into a program’s buffer with bpf_get_stack, zeroing the rest, on the %s',
		(backend) => {
			const { reg } = freshRegistry(`getstack_${backend}`);
			reg.createMap(spec); // its type ships the helper
			const p = reg.loadProg({
				type: ProgType.Kprobe,
				name: 'get',
				insns: assemble(`
				r6 = 7
				*(u64 *)(r10 - 16) = r6
				*(u64 *)(r10 - 8) = r6
				r2 = r10
				r2 += -16
				r3 = 16
				r4 = ${USER_STACK}
				call 67
				r6 = *(u64 *)(r10 - 16)
				r7 = *(u64 *)(r10 - 8)
				r6 += r7
				r0 <<= 32
				r0 |= r6
				exit`),
			});
			// 8 bytes copied (<< 32), the ip + a zeroed second word.
			expect(p.run(regs(0x55n), { backend })).toBe((8n << 32n) | 0x55n);
		},
	);

	it('refuses what the kernel refuses, naming the attribute, and user-space updates with EINVAL', () => {
		const { reg } = freshRegistry('stack_errors');
		for (const [change, message] of [
			[{ valueSize: 12 }, /value size 12/],
			[{ valueSize: 128 * 8 }, /perf_event_max_stack/],
			[{ keySize: 8 }, /key size 8/],
			[{ flags: 1 }, /map_flags/],
			[{ flags: 1 << 5 }, /BPF_F_STACK_BUILD_ID/],
		] as const) {
			const e = errorOf(() => reg.createMap({ ...spec, ...change }));
			expect([e.code, e.message]).toEqual(['EINVAL', expect.stringMatching(message)]);
		}
		const m = reg.createMap(spec);
		expect(errorOf(() => m.update(u32le(0), Buffer.alloc(32), UpdateFlags.Any)).code).toBe('EINVAL');
		expect(errorOf(() => m.delete(u32le(16))).code).toBe('E2BIG');
		expect(m.delete(u32le(3))).toBe(false);
		expect(m.nextKey()).toBeUndefined();
		// Its stacks are addresses of the processes that recorded them: exported without them.
		const doc = JSON.parse(reg.exportJson());
		expect(doc.handlers.find((h: { id: number }) => h.id === m.id).entries).toEqual([]);
	});
});
