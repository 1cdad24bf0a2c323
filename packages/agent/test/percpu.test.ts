// Per-CPU maps in a target: every run of a uprobe program that uses a per-CPU
// map owns a CPU slot (@bpftime/handlers' cpu_slot.hpp), so a non-atomic
// `*v += 1` from many threads of the target loses nothing, as in the kernel,
// where the same program cannot be preempted between its load and its store.
import { MapType, ProgType } from '@bpftime/handlers';
import { assemble } from '@bpftime/vm';
import { beforeAll, describe, expect, it } from 'vitest';
import { spawnWithAgent } from '../src/index.js';
import { newRegistry, Proc, useFixtures } from './helpers.js';

const fx = useFixtures();
let target = '';

beforeAll(async () => {
	target = await fx.target();
});

describe('per-CPU maps in a target', { timeout: 60_000 }, () => {
	it.each(['jit', 'interpreter'])(
		'counts every call of 8 threads with a non-atomic increment of a per-CPU value, on the %s',
		async (vm) => {
			const { name, registry } = newRegistry();
			const counts = registry.createMap({
				type: MapType.PercpuArray,
				name: 'pcounts',
				keySize: 4,
				valueSize: 8,
				maxEntries: 1,
			});
			// key 0: r1 = *v; r1 += 1; *v = r1 (no atomic instruction)
			const prog = registry.loadProg({
				type: ProgType.Kprobe,
				name: 'pc_inc',
				license: 'GPL',
				insns: assemble(
					[
						'r1 = 0',
						'*(u32 *)(r10 - 4) = r1',
						`r1 = map_by_fd(${counts.id}) ll`,
						'r2 = r10',
						'r2 += -4',
						'call 1',
						'if r0 == 0 goto +3',
						'r1 = *(u64 *)(r0 + 0)',
						'r1 += 1',
						'*(u64 *)(r0 + 0) = r1',
						'r0 = 0',
						'exit',
					].join('\n'),
				),
			});
			const pe = registry.createPerfEvent({ type: 'uprobe', path: target, symbol: 'target_fn', offset: 0 });
			registry.createLink({ progId: prog.id, targetId: pe.id });
			const env = { ...process.env, BPFTIME_VM_NAME: vm };
			const child = await spawnWithAgent(target, ['8', '100000'], {
				segment: name,
				env,
				stdio: ['ignore', 'pipe', 'pipe'],
			});
			const done = await new Proc(child).done();
			expect(done.code, done.stderr.join('\n')).toBe(7);
			const all = counts.lookup(Buffer.alloc(4));
			if (!all) throw new Error('key 0 of a per-CPU array is absent');
			let sum = 0n;
			for (let off = 0; off < all.length; off += 8) sum += all.readBigUInt64LE(off);
			expect(sum).toBe(800_000n);
		},
	);
});
