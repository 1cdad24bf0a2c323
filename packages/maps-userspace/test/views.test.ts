import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { MapType, ProgType, u32 } from '@bpftime/handlers';
import { assemble } from '@bpftime/vm';
import { describe, expect, it } from 'vitest';
import { ArrayOfMaps, HashOfMaps, ProgArray, StackTraceMap, Symbolizer } from '../src/index.js';
import { errorOf, freshRegistry } from './helpers.js';

describe('typed views', () => {
	it('ProgArray stores programs by index and refuses a map of another type when made', () => {
		const { reg } = freshRegistry('view_pa');
		const jmp = new ProgArray(
			reg.createMap({ type: MapType.ProgArray, name: 'jmp', keySize: 4, valueSize: 4, maxEntries: 4 }),
		);
		const p = reg.loadProg({ type: ProgType.Kprobe, name: 'p', insns: assemble('r0 = 3\nexit') });
		jmp.set(2, p);
		expect(jmp.get(2)).toBe(p.id);
		expect(jmp.get(1)).toBeUndefined();
		expect([...jmp.entries()]).toEqual([[2, p.id]]);
		expect(jmp.delete(2)).toBe(true);
		const hash = reg.createMap({ type: MapType.Hash, name: 'h', keySize: 4, valueSize: 4, maxEntries: 4 });
		const e = errorOf(() => new ProgArray(hash));
		expect([e.code, e.message]).toEqual([
			'EINVAL',
			expect.stringMatching(/ProgArray: map 'h' \(id \d+\) is BPF_MAP_TYPE_HASH/),
		]);
		expect(errorOf(() => jmp.set(-1, p)).message).toMatch(/Expected u32 for index but received -1/);
	});

	it('ArrayOfMaps and HashOfMaps store inner maps and list them', () => {
		const { reg } = freshRegistry('view_mim');
		const inner = { type: MapType.Hash, name: 'in', keySize: 4, valueSize: 8, maxEntries: 4 };
		const t = reg.createMap(inner);
		const aom = new ArrayOfMaps(
			reg.createMap({
				type: MapType.ArrayOfMaps,
				name: 'a',
				keySize: 4,
				valueSize: 4,
				maxEntries: 2,
				innerMapId: t.id,
			}),
		);
		const hom = new HashOfMaps(
			reg.createMap({ type: MapType.HashOfMaps, name: 'h', keySize: 4, valueSize: 4, maxEntries: 2, innerMapId: t.id }),
			u32,
		);
		const m = reg.createMap({ ...inner, name: 'm' });
		aom.set(1, m);
		hom.set(77, m.id);
		expect(aom.get(1)).toBe(m.id);
		expect([...hom.entries()]).toEqual([[77, m.id]]);
		expect(hom.delete(77)).toBe(true);
	});

	it('StackTraceMap gives stacks as addresses', () => {
		const { reg } = freshRegistry('view_stack');
		const map = reg.createMap({ type: MapType.StackTrace, name: 's', keySize: 4, valueSize: 24, maxEntries: 4 });
		const stacks = new StackTraceMap(map);
		const p = reg.loadProg({
			type: ProgType.Kprobe,
			name: 'id',
			insns: assemble(`r2 = map_by_fd(${map.id}) ll\nr3 = ${1 << 8}\ncall 27\nexit`),
		});
		const regs = Buffer.alloc(168);
		regs.writeBigUInt64LE(0xabcdn, 128);
		const id = Number(p.run(regs));
		expect(stacks.get(id)).toEqual([0xabcdn]);
		expect([...stacks.entries()]).toEqual([[id, [0xabcdn]]]);
		expect(stacks.delete(id)).toBe(true);
		expect(stacks.get(id)).toBeUndefined();
		expect(stacks.get(9)).toBeUndefined();
	});
});

describe('Symbolizer', () => {
	it('names the libc function an address of this process lies in, as nm reads libc', (ctx) => {
		const maps = readFileSync('/proc/self/maps', 'utf8').split('\n');
		const libcLine = maps.find((l) => /\/libc\.so\.6$/.test(l) && / 00000000 /.test(l));
		if (!libcLine) {
			console.log('skipped: no libc.so.6 mapped at file offset 0 in /proc/self/maps');
			ctx.skip();
			return;
		}
		const path = libcLine.split(/\s+/)[5] as string;
		let nm: string;
		try {
			nm = execFileSync('nm', ['-D', '--defined-only', path], { encoding: 'utf8', maxBuffer: 1 << 26 });
		} catch {
			console.log('skipped: nm (binutils) is not installed');
			ctx.skip();
			return;
		}
		// libc's first PT_LOAD maps file offset 0 at vaddr 0: runtime = base + vaddr.
		const base = BigInt(`0x${libcLine.split('-')[0]}`);
		const line = nm.split('\n').find((l) => / [TW] getpid(@@.*)?$/.test(l));
		expect(line).toBeDefined();
		const vaddr = BigInt(`0x${(line as string).split(' ')[0]}`);
		const sym = new Symbolizer();
		const f = sym.symbolize(base + vaddr + 4n);
		expect(f).toMatchObject({ module: path, offset: 4n });
		expect(f.symbol === 'getpid' || f.symbol === '__getpid').toBe(true);
		expect(sym.format(base + vaddr)).toMatch(/getpid\+0x0 \(/);
		expect(sym.symbolize(8n)).toEqual({ address: 8n });
	});
});
