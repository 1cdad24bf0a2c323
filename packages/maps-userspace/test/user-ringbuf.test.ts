import { rmSync } from 'node:fs';
import { type Backend, MapType, ProgType, u32, u64 } from '@bpftime/handlers';
import { beforeAll, describe, expect, it } from 'vitest';
import { UserRingBuf } from '../src/index.js';
import { compileBpf, findClang, linkProgram, readBpfObject } from './bpf-object.js';
import { errorOf, freshRegistry, u64le } from './helpers.js';

const source = new URL('./fixtures/user_ringbuf.bpf.c', import.meta.url).pathname;
const backends: Backend[] = ['interpreter', 'jit'];
const BPF_RB_NO_WAKEUP = 1n;

let object: string | undefined;
let skipReason = '';

beforeAll(async () => {
	const clang = await findClang();
	if (!clang) {
		skipReason = 'no clang on PATH (clang, clang-19, clang-14) to build test/fixtures/user_ringbuf.bpf.c';
		return;
	}
	object = await compileBpf(clang, source);
	return () => {
		if (object) rmSync(object, { force: true });
	};
});

function input(stopAt: bigint, flags = 0n): Buffer {
	const b = Buffer.alloc(16);
	b.writeBigUInt64LE(stopAt, 0);
	b.writeBigUInt64LE(flags, 8);
	return b;
}

describe.each(backends)('a clang-built bpf_user_ringbuf_drain program on the %s', (backend) => {
	it('drains the records Node wrote, in order, through its callback and bpf_dynptr_read', async (ctx) => {
		if (!object) {
			console.log(`skipped: ${skipReason}`);
			ctx.skip();
			return;
		}
		const { reg } = freshRegistry(`urb_${backend}`);
		const requests = reg.createMap({
			type: MapType.UserRingbuf,
			name: 'requests',
			keySize: 0,
			valueSize: 0,
			maxEntries: 4096,
		});
		const results = reg.createMap({ type: MapType.Array, name: 'results', keySize: 4, valueSize: 8, maxEntries: 3 });
		const code = readBpfObject(object).programs.get('uprobe/drain');
		if (!code) throw new Error('the fixture has no uprobe/drain');
		// The callback is a BPF_PSEUDO_FUNC lddw into the program's own section (clang leaves it as a
		// byte offset with a relocation against the section): turn it into the kernel's instruction offset.
		const insns = Buffer.from(code.insns);
		const mapRelocations = code.relocations.filter((r) => {
			if (r.symbolSection !== 'uprobe/drain') return true;
			const o = r.insn * 8;
			const target = (r.symbolValue + insns.readInt32LE(o + 4)) / 8;
			insns[o + 1] = (4 << 4) | ((insns[o + 1] as number) & 0x0f);
			insns.writeInt32LE(target - r.insn - 1, o + 4);
			return false;
		});
		const ids: Record<string, number> = { requests: requests.id, results: results.id };
		const linked = linkProgram({ ...code, insns, relocations: mapRelocations }, (r) => ids[r.symbol] as number);
		const prog = reg.loadProg({ type: ProgType.Kprobe, name: 'drain', license: 'GPL', insns: linked });
		prog.instantiate({ backend });
		const out = results.typed(u32, u64);

		using rb = UserRingBuf.open(requests);
		expect(prog.run(input(0n), { backend })).toBe(0n); // nothing to drain
		for (const v of [5n, 7n, 11n, 13n]) rb.write(u64le(v));
		rb.write(Buffer.from([1, 2, 3])); // too short for the callback's 8-byte read: E2BIG inside it
		// The callback stops the drain after 11: three samples drained.
		expect(prog.run(input(11n), { backend })).toBe(3n);
		expect(out.get(0)).toBe(23n);
		expect(out.get(1)).toBe(3n);
		expect(prog.run(input(0n, BPF_RB_NO_WAKEUP), { backend })).toBe(2n);
		expect(out.get(0)).toBe(36n);
		expect(out.get(1)).toBe(4n);
		expect(out.get(2)).toBe(1n);
		// Unknown flags: EINVAL, as the kernel.
		expect(prog.run(input(0n, 4n), { backend })).toBe(BigInt.asUintN(64, -22n));

		// Full: 4096 bytes hold 256 records of 8 + 8; draining makes room again.
		let written = 0;
		while (rb.tryWrite(u64le(1n))) written++;
		expect(written).toBe(256);
		expect(errorOf(() => rb.write(u64le(1n)))).toMatchObject({ code: 'ENOSPC' });
		expect(errorOf(() => rb.write(Buffer.alloc(4096)))).toMatchObject({ code: 'E2BIG' });
		// A blocking write waits for a drain, which wakes it.
		const blocked = rb.writeAsync(u64le(2n), { timeoutMs: 10_000 });
		expect(prog.run(input(0n), { backend })).toBe(256n);
		await blocked;
		expect(rb.freeBytes).toBe(4096 - 16);
		await expect(async () => {
			while (rb.tryWrite(u64le(1n)));
			await rb.writeAsync(u64le(1n), { timeoutMs: 30 });
		}).rejects.toMatchObject({ code: 'ETIMEDOUT' });
	});
});

describe('the user ring buffer map', () => {
	it('is refused with the kernel errno for attributes the kernel refuses, and has no keys', () => {
		const { reg } = freshRegistry('urb_attrs');
		const base = { type: MapType.UserRingbuf, name: 'rb', keySize: 0, valueSize: 0, maxEntries: 4096 };
		expect(errorOf(() => reg.createMap({ ...base, maxEntries: 5000 }))).toMatchObject({ code: 'EINVAL' });
		expect(errorOf(() => reg.createMap({ ...base, keySize: 4 }))).toMatchObject({ code: 'EINVAL' });
		const rb = reg.createMap(base);
		expect(errorOf(() => rb.lookup(Buffer.alloc(0)))).toMatchObject({ code: 'ENOTSUPP' });
		expect(rb.nextKey()).toBeUndefined();
		const ring = reg.createMap({ ...base, type: MapType.Ringbuf, name: 'r' });
		expect(errorOf(() => UserRingBuf.open(ring))).toMatchObject({
			code: 'EINVAL',
			message: expect.stringMatching(/expected BPF_MAP_TYPE_USER_RINGBUF but the map is BPF_MAP_TYPE_RINGBUF/),
		});
	});
});
