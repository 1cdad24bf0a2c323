import { rmSync } from 'node:fs';
import { type Backend, MapType, ProgType, u32, u64 } from '@bpftime/handlers';
import { beforeAll, describe, expect, it } from 'vitest';
import { compileBpf, findClang, linkProgram, readBpfObject } from './bpf-object.js';
import { freshRegistry } from './helpers.js';

const source = new URL('./fixtures/count_bytes.bpf.c', import.meta.url).pathname;
const backends: Backend[] = ['interpreter', 'jit'];

let object: string | undefined;
let skipReason = '';

beforeAll(async () => {
	const clang = await findClang();
	if (!clang) {
		skipReason = 'no clang on PATH (clang, clang-19, clang-14) to build test/fixtures/count_bytes.bpf.c';
		return;
	}
	object = await compileBpf(clang, source);
	return () => {
		if (object) rmSync(object, { force: true });
	};
});

/** Inputs of the program: struct input { u32 len; u8 data[60]; }. */
function inputs(): Buffer[] {
	const out: Buffer[] = [];
	let seed = 12345;
	const next = (mod: number) => {
		seed = (seed * 1103515245 + 12345) >>> 0;
		return seed % mod;
	};
	for (let n = 0; n < 40; n++) {
		const b = Buffer.alloc(64);
		// Empty, full, a length past the data (the loop stops at 60), then random lengths.
		const len = n === 0 ? 0 : n === 1 ? 60 : n === 2 ? 200 : next(61);
		b.writeUInt32LE(len, 0);
		for (let i = 0; i < 60; i++) b[4 + i] = next(23);
		out.push(b);
	}
	return out;
}

describe.each(backends)('a clang-built program counting into a hash map, on the %s', (backend) => {
	it('produces exactly the byte counts of its inputs', (ctx) => {
		if (!object) {
			console.log(`skipped: ${skipReason}`);
			ctx.skip();
			return;
		}
		const { reg } = freshRegistry(`count_${backend}`);
		const counts = reg.createMap({ type: MapType.Hash, name: 'counts', keySize: 4, valueSize: 8, maxEntries: 256 });
		const totals = reg.createMap({ type: MapType.Array, name: 'totals', keySize: 4, valueSize: 8, maxEntries: 1 });
		const obj = readBpfObject(object);
		const code = obj.programs.get('uprobe');
		expect(code, 'section uprobe holds count_bytes').toBeDefined();
		if (!code) return;
		const ids: Record<string, number> = { counts: counts.id, totals: totals.id };
		const insns = linkProgram(code, (r) => {
			const id = ids[r.symbol];
			if (id === undefined) throw new Error(`unexpected relocation to ${r.symbol}`);
			return id;
		});
		const prog = reg.loadProg({ type: ProgType.Kprobe, name: 'count_bytes', license: 'GPL', insns });
		expect(reg.get(prog.id)).toMatchObject({ mapIds: [counts.id, totals.id] });
		expect(prog.instantiate({ backend }).backend).toBe(backend);

		// The expected counts, from the program's C semantics: the first min(len, 60) bytes of data.
		const expected = new Map<number, bigint>();
		for (const input of inputs()) {
			const len = Math.min(input.readUInt32LE(0), 60);
			for (let i = 0; i < len; i++) {
				const byte = input[4 + i] as number;
				expected.set(byte, (expected.get(byte) ?? 0n) + 1n);
			}
			expect(prog.run(input, { backend })).toBe(BigInt(input.readUInt32LE(0)));
		}
		expect(new Map(counts.typed(u32, u64).entries())).toEqual(expected);
		expect(totals.typed(u32, u64).get(0)).toBe(40n);
	});
});
