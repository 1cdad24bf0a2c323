// The agent with @bpftime/maps-shared: uprobe programs in a target process
// update kernel maps (each target process opens its own fd from the kernel id
// in the registry), and the kernel's view (bpftool) sees what they did.
import { execFileSync } from 'node:child_process';
import { ProgType, u32, u64 } from '@bpftime/handlers';
import { createKernelMap, describeKernelMap, KernelMapType, kernelMapId } from '@bpftime/maps-shared';
import { assemble } from '@bpftime/vm';
import { beforeAll, describe, expect, it, onTestFinished } from 'vitest';
import { spawnWithAgent } from '../src/index.js';
import { newRegistry, Proc, useFixtures } from './helpers.js';

const fx = useFixtures();
let target = '';
let noBpf = '';
try {
	describeKernelMap(0); // id 0 never exists: ENOENT means bpf() answers
} catch (e) {
	const code = (e as { code?: string }).code;
	if (code !== 'ENOENT') noBpf = `bpf() is refused here (${code})`;
}

beforeAll(async () => {
	target = await fx.target();
});

/**
 * A registry whose objects are all released when the test ends (links, then programs and events,
 * then maps), so that each kernel map's pin goes: removing a segment runs no map's destroy.
 */
function kernelRegistry() {
	const r = newRegistry();
	onTestFinished(() => {
		const order = ['link', 'perf_event', 'prog', 'map', 'btf'];
		const all = r.registry.list().sort((a, b) => order.indexOf(a.kind) - order.indexOf(b.kind) || b.id - a.id);
		for (const d of all) r.registry.release(d.id);
	});
	return r;
}

function bpftoolDump(id: number): Map<number, bigint> {
	const rows = JSON.parse(execFileSync('bpftool', ['-j', 'map', 'dump', 'id', String(id)], { encoding: 'utf8' })) as {
		key: string[];
		value: string[];
	}[];
	const bytes = (h: string[]) => Buffer.from(h.map((x) => Number.parseInt(x, 16)));
	return new Map(rows.map((r) => [bytes(r.key).readUInt32LE(0), bytes(r.value).readBigUInt64LE(0)]));
}

describe.skipIf(noBpf !== '')('uprobe programs on kernel maps', { timeout: 60_000 }, () => {
	it('counts target_fn calls into a kernel hash map through bpf() from the target', async () => {
		const { name, registry } = kernelRegistry();
		const counts = createKernelMap(registry, {
			type: KernelMapType.Hash,
			name: 'ucounts',
			keySize: 4,
			valueSize: 8,
			maxEntries: 8,
		});
		// key 0 += 1: lookup (a copy), then update; one thread, so no update is lost.
		const prog = registry.loadProg({
			type: ProgType.Kprobe,
			name: 'count_calls',
			license: 'GPL',
			insns: assemble(
				[
					'r6 = 1',
					'r1 = 0',
					'*(u32 *)(r10 - 4) = r1',
					`r1 = map_by_fd(${counts.id}) ll`,
					'r2 = r10',
					'r2 += -4',
					'call 1',
					'if r0 == 0 goto +2',
					'r6 = *(u64 *)(r0 + 0)',
					'r6 += 1',
					'*(u64 *)(r10 - 16) = r6',
					`r1 = map_by_fd(${counts.id}) ll`,
					'r2 = r10',
					'r2 += -4',
					'r3 = r10',
					'r3 += -16',
					'r4 = 0',
					'call 2',
					'r0 = 0',
					'exit',
				].join('\n'),
			),
		});
		const pe = registry.createPerfEvent({ type: 'uprobe', path: target, symbol: 'target_fn', offset: 0 });
		registry.createLink({ progId: prog.id, targetId: pe.id });
		const child = await spawnWithAgent(target, ['1', '300'], { segment: name, stdio: ['ignore', 'pipe', 'pipe'] });
		const done = await new Proc(child).done();
		expect(done.code, done.stderr.join('\n')).toBe(7);
		expect(counts.typed(u32, u64).get(0)).toBe(300n);
		expect(bpftoolDump(kernelMapId(registry, counts)).get(0)).toBe(300n);
	});

	it('adds atomically into an mmapped kernel array from every thread of the target', async () => {
		const { name, registry } = kernelRegistry();
		const arr = createKernelMap(registry, {
			type: KernelMapType.Array,
			name: 'uarr',
			keySize: 4,
			valueSize: 8,
			maxEntries: 2,
			flags: 0x400, // BPF_F_MMAPABLE
		});
		const prog = registry.loadProg({
			type: ProgType.Kprobe,
			name: 'add_calls',
			license: 'GPL',
			insns: assemble(
				[
					'r1 = 1',
					'*(u32 *)(r10 - 4) = r1',
					`r1 = map_by_fd(${arr.id}) ll`,
					'r2 = r10',
					'r2 += -4',
					'call 1',
					'if r0 == 0 goto +2',
					'r1 = 1',
					'lock *(u64 *)(r0 + 0) += r1',
					'r0 = 0',
					'exit',
				].join('\n'),
			),
		});
		const pe = registry.createPerfEvent({ type: 'uprobe', path: target, symbol: 'target_fn', offset: 0 });
		registry.createLink({ progId: prog.id, targetId: pe.id });
		const child = await spawnWithAgent(target, ['4', '2500'], { segment: name, stdio: ['ignore', 'pipe', 'pipe'] });
		const done = await new Proc(child).done();
		expect(done.code, done.stderr.join('\n')).toBe(7);
		expect(arr.typed(u32, u64).get(1)).toBe(10_000n);
		expect(bpftoolDump(kernelMapId(registry, arr)).get(1)).toBe(10_000n);
	});
});
