import { MapType, ProgType, u32, u64 } from '@bpftime/handlers';
import { assemble } from '@bpftime/vm';
import { describe, expect, it } from 'vitest';
import { bumpSource } from './fixtures/programs.mjs';
import { freshRegistry, runChild, startChild, waitForLine } from './helpers.js';

describe('maps and programs across processes', () => {
	it('sees the maps and programs a child created, and the values its program wrote', async () => {
		const { reg, name } = freshRegistry('xproc');
		const child = await runChild('child.mjs', ['create', name]);
		expect(child.stderr).toBe('');
		expect(child.code).toBe(0);
		const [, countsId, totalsId, progId] = child.stdout.trim().split(' ').map(Number);
		expect(reg.list().map((d) => [d.id, d.kind, 'name' in d ? d.name : ''])).toEqual([
			[countsId, 'map', 'counts'],
			[totalsId, 'map', 'totals'],
			[progId, 'prog', 'bump'],
		]);
		const counts = reg.map(countsId as number, u32, u64);
		const totals = reg.map(totalsId as number, u32, u64);
		expect(new Map(counts.entries())).toEqual(
			new Map([
				[1, 1n],
				[2, 2n],
				[3, 3n],
			]),
		);
		expect(totals.get(0)).toBe(6n);

		// The parent runs the child's program on both backends: the same shared values move on.
		const prog = reg.prog(progId as number);
		expect(prog.run(Buffer.from([2, 0, 0, 0]), { backend: 'interpreter' })).toBe(0n);
		expect(prog.run(Buffer.from([9, 0, 0, 0]), { backend: 'jit' })).toBe(0n);
		expect(counts.get(2)).toBe(3n);
		expect(counts.get(9)).toBe(1n);
		expect(totals.get(0)).toBe(8n);
	});

	it('several processes bumping and inserting into one hash map lose no update', async () => {
		const { reg, name } = freshRegistry('hammer', { sizeMb: 16 });
		const counts = reg.createMap({ type: MapType.Hash, name: 'counts', keySize: 4, valueSize: 8, maxEntries: 30000 });
		const totals = reg.createMap({ type: MapType.Array, name: 'totals', keySize: 4, valueSize: 8, maxEntries: 1 });
		reg.loadProg({ type: ProgType.Kprobe, name: 'bump', insns: assemble(bumpSource(counts.id, totals.id)) });
		const children = 4;
		const n = 6000;
		const running = Promise.all(
			Array.from({ length: children }, (_, c) => runChild('child.mjs', ['hammer', name, String(c), String(n)])),
		);
		// Meanwhile, bulk reads see each key once, with a whole value of its own.
		let finished = false;
		void running.finally(() => {
			finished = true;
		});
		const view = counts.typed(u32, u64);
		let reads = 0;
		while (!finished) {
			const seen = new Set<number>();
			for (const [k, v] of view.readAll(1000)) {
				expect(seen.has(k)).toBe(false);
				seen.add(k);
				if (k >= 1_000_000) expect(v).toBe(BigInt(k % 1_000_000));
			}
			reads++;
			await new Promise((resolve) => setImmediate(resolve));
		}
		const results = await running;
		expect(reads).toBeGreaterThan(0);
		for (const r of results) {
			expect(r.stderr).toBe('');
			expect(r.stdout.trim()).toBe(`done ${n}`);
		}
		const all = new Map(view.entries());
		expect(all.size).toBe(16 + children * n);
		// Every key i % 16 was bumped n / 16 times (rounded as the loop falls) by every child.
		for (let k = 0; k < 16; k++) {
			const perChild = Math.floor(n / 16) + (k < n % 16 ? 1 : 0);
			expect(all.get(k)).toBe(BigInt(perChild * children));
		}
		for (let c = 0; c < children; c++)
			for (let i = 0; i < n; i += 97) expect(all.get(1_000_000 * (c + 1) + i)).toBe(BigInt(i));
		expect(totals.typed(u32, u64).get(0)).toBe(BigInt(children * n));
	});

	it('stays usable after a process is SIGKILLed in the middle of creates, releases and updates', async () => {
		const { reg, name } = freshRegistry('sigkill', { sizeMb: 16 });
		const counts = reg.createMap({ type: MapType.Hash, name: 'counts', keySize: 4, valueSize: 8, maxEntries: 1024 });
		const totals = reg.createMap({ type: MapType.Array, name: 'totals', keySize: 4, valueSize: 8, maxEntries: 1 });
		reg.loadProg({ type: ProgType.Kprobe, name: 'bump', insns: assemble(bumpSource(counts.id, totals.id)) });
		for (let round = 0; round < 3; round++) {
			const child = startChild('child.mjs', ['churn', name]);
			await waitForLine(child, /^running$/);
			child.kill('SIGKILL');
			await new Promise((resolve) => child.once('exit', resolve));
			expect(child.signalCode).toBe('SIGKILL');

			// Whatever it was doing, every handler listed is whole and the registry takes new work.
			const listed = reg.list();
			expect(reg.size).toBe(listed.length);
			for (const d of listed) if (d.kind === 'map') expect(reg.map(d.id).nextKey()).not.toBe(null);
			const scratch = listed.filter((d) => d.kind === 'map' && d.name === 'scratch');
			expect(scratch.length).toBeLessThanOrEqual(1);
			for (const d of scratch) reg.release(d.id);
			const m = reg.createMap({ type: MapType.Hash, name: 'after', keySize: 4, valueSize: 8, maxEntries: 8 });
			m.typed(u32, u64).set(1, 2n);
			expect(m.typed(u32, u64).get(1)).toBe(2n);
			m.release();
			const view = counts.typed(u32, u64);
			for (let k = 0; k < 300; k++) view.set(k, BigInt(k));
			for (let k = 0; k < 300; k++) expect(view.get(k)).toBe(BigInt(k));
			for (let k = 0; k < 300; k++) view.delete(k);
		}
		expect(reg.list().map((d) => ('name' in d ? d.name : ''))).toEqual(['counts', 'totals', 'bump']);
	});
});
