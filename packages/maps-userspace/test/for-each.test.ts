import { MapType, ProgType, u32, u64 } from '@bpftime/handlers';
import { assemble } from '@bpftime/vm';
import { describe, expect, it } from 'vitest';
import { freshRegistry, u32le } from './helpers.js';

const backends = ['interpreter', 'jit'] as const;

// bpf_for_each_map_elem(map, cb, &sum, 0) where cb adds each value to sum and stops after the value 99;
// returns sum * 1000 + the helper's result (elements visited).
const source = (map: number, flags = 0) => `
	r6 = 0
	*(u64 *)(r10 - 8) = r6
	r1 = map_by_fd(${map}) ll
	r2 = code_addr(cb) ll
	r3 = r10
	r3 += -8
	r4 = ${flags}
	call 164
	r6 = r0
	r0 = *(u64 *)(r10 - 8)
	r0 *= 1000
	r0 += r6
	exit
cb:
	r5 = *(u64 *)(r3 + 0)
	r0 = *(u64 *)(r4 + 0)
	r0 += r5
	*(u64 *)(r4 + 0) = r0
	r0 = 0
	if r5 != 99 goto out
	r0 = 1
out:
	exit`;

describe('bpf_for_each_map_elem', () => {
	it.each(backends)(
		'visits every index of an array in order, and stops when the callback returns 1, on the %s',
		(backend) => {
			const { reg } = freshRegistry(`fe_array_${backend}`);
			const m = reg.createMap({ type: MapType.Array, name: 'a', keySize: 4, valueSize: 8, maxEntries: 6 });
			const view = m.typed(u32, u64);
			for (let i = 0; i < 6; i++) view.set(i, BigInt(i + 1));
			const p = reg.loadProg({ type: ProgType.Kprobe, name: 'fe', insns: assemble(source(m.id)) });
			// The kernel's bpf_for_each_array_elem: every element, the count of calls.
			expect(p.run(undefined, { backend })).toBe(21n * 1000n + 6n);
			view.set(2, 99n);
			// 1 + 2 + 99, then stop: three elements.
			expect(p.run(undefined, { backend })).toBe(102n * 1000n + 3n);
		},
	);

	it.each(backends)('visits every entry of a hash map once, on the %s', (backend) => {
		const { reg } = freshRegistry(`fe_hash_${backend}`);
		const m = reg.createMap({ type: MapType.Hash, name: 'h', keySize: 4, valueSize: 8, maxEntries: 64 });
		const view = m.typed(u32, u64);
		let sum = 0n;
		for (let i = 0; i < 40; i++) {
			view.set(i * 7, BigInt(i));
			sum += BigInt(i);
		}
		const p = reg.loadProg({ type: ProgType.Kprobe, name: 'fe', insns: assemble(source(m.id)) });
		expect(p.run(undefined, { backend })).toBe(sum * 1000n + 40n);
		const empty = reg.createMap({ type: MapType.Hash, name: 'e', keySize: 4, valueSize: 8, maxEntries: 4 });
		const q = reg.loadProg({ type: ProgType.Kprobe, name: 'fe_empty', insns: assemble(source(empty.id)) });
		expect(q.run(undefined, { backend })).toBe(0n);
	});

	it('answers EINVAL for flags other than 0, and refuses a map type without iteration (a prog array)', () => {
		const { reg } = freshRegistry('fe_errors');
		const m = reg.createMap({ type: MapType.Array, name: 'a', keySize: 4, valueSize: 8, maxEntries: 2 });
		const flags = reg.loadProg({ type: ProgType.Kprobe, name: 'flags', insns: assemble(source(m.id, 1)) });
		// sum 0, result -EINVAL.
		expect(BigInt.asIntN(64, flags.run())).toBe(-22n);
		const jmp = reg.createMap({ type: MapType.ProgArray, name: 'jmp', keySize: 4, valueSize: 4, maxEntries: 2 });
		// A map type without iteration is refused when the program loads, as the kernel's verifier does.
		expect(() => reg.loadProg({ type: ProgType.Kprobe, name: 'pa', insns: assemble(source(jmp.id)) })).toThrow(
			/cannot pass map_type 3 into func bpf_for_each_map_elem/,
		);
	});
});

describe('bpf_map_lookup_elem of an array, inlined by the JIT', () => {
	// r0 = *(u64 *)lookup(array, ctx[0]) + 1, or 0 when the lookup is NULL.
	const source = (map: number) => `
		r2 = r1
		r1 = map_by_fd(${map}) ll
		call 1
		if r0 == 0 goto out
		r0 = *(u64 *)(r0 + 0)
		r0 += 1
	out:
		exit`;

	it.each([
		['8-byte values (a power-of-two stride)', 8, 5],
		['24-byte values (a multiply)', 24, 7],
		['12-byte values (rounded up to 16)', 12, 3],
		['one element', 8, 1],
	])(
		'gives the same value as the interpreter for every index and NULL past the end, %s',
		(_, valueSize, maxEntries) => {
			const { reg } = freshRegistry(`inline_${valueSize}_${maxEntries}`);
			const m = reg.createMap({ type: MapType.Array, name: 'a', keySize: 4, valueSize, maxEntries });
			for (let i = 0; i < maxEntries; i++) {
				const v = Buffer.alloc(valueSize);
				v.writeBigUInt64LE(BigInt(1000 + i * 17), 0);
				m.update(u32le(i), v);
			}
			const p = reg.loadProg({ type: ProgType.Kprobe, name: 'lookup', insns: assemble(source(m.id)) });
			for (const index of [0, maxEntries - 1, maxEntries, maxEntries + 1, 0x7fffffff, 0xffffffff]) {
				const expected = index < maxEntries ? BigInt(1000 + index * 17) + 1n : 0n;
				expect(p.run(u32le(index), { backend: 'interpreter' })).toBe(expected);
				expect(p.run(u32le(index), { backend: 'jit' })).toBe(expected);
			}
		},
	);

	it('still calls the helper for a map chosen on a branch, and for a hash map', () => {
		const { reg } = freshRegistry('inline_branch');
		const a = reg.createMap({ type: MapType.Array, name: 'a', keySize: 4, valueSize: 8, maxEntries: 2 });
		const h = reg.createMap({ type: MapType.Hash, name: 'h', keySize: 4, valueSize: 8, maxEntries: 2 });
		a.typed(u32, u64).set(1, 5n);
		h.typed(u32, u64).set(1, 9n);
		const p = reg.loadProg({
			type: ProgType.Kprobe,
			name: 'branch',
			insns: assemble(`
				r6 = *(u32 *)(r1 + 0)
				r1 = 1
				*(u32 *)(r10 - 4) = r1
				r1 = map_by_fd(${a.id}) ll
				if r6 == 0 goto look
				r1 = map_by_fd(${h.id}) ll
			look:
				r2 = r10
				r2 += -4
				call 1
				if r0 == 0 goto out
				r0 = *(u64 *)(r0 + 0)
			out:
				exit`),
		});
		expect(p.run(u32le(0), { backend: 'jit' })).toBe(5n);
		expect(p.run(u32le(1), { backend: 'jit' })).toBe(9n);
	});
});
