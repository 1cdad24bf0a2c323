import { closeSync, openSync, readFileSync, rmSync } from 'node:fs';
import { MapType, ProgType } from '@bpftime/handlers';
import { beforeAll, describe, expect, it } from 'vitest';
import { ProgArray, StackTraceMap } from '../src/index.js';
import { compileBpf, findClang, linkProgram, readBpfObject } from './bpf-object.js';
import { freshRegistry } from './helpers.js';

const source = new URL('./fixtures/fd_maps.bpf.c', import.meta.url).pathname;
let object: string | undefined;
let skipReason = '';

beforeAll(async () => {
	const clang = await findClang();
	if (!clang) {
		skipReason = 'no clang on PATH (clang, clang-19, clang-14) to build test/fixtures/fd_maps.bpf.c';
		return;
	}
	object = await compileBpf(clang, source);
	return () => {
		if (object) rmSync(object, { force: true });
	};
});

/** A struct pt_regs with ip, bp = 0 (a one-frame stack) and r15 = the tail-call index. */
function regs(ip: bigint, index: number): Buffer {
	const b = Buffer.alloc(168);
	b.writeBigUInt64LE(BigInt(index), 0); // r15
	b.writeBigUInt64LE(ip, 128);
	return b;
}

describe.each(['interpreter', 'jit'] as const)(
	'clang-built programs on prog, stack and cgroup maps, on the %s',
	(backend) => {
		it('tail-calls, records stack ids and filters by cgroup as libbpf-tools do', (ctx) => {
			if (!object) {
				console.log(`skipped: ${skipReason}`);
				ctx.skip();
				return;
			}
			const { reg } = freshRegistry(`clang_fd_${backend}`);
			const ids: Record<string, number> = {
				jmp: reg.createMap({ type: MapType.ProgArray, name: 'jmp', keySize: 4, valueSize: 4, maxEntries: 4 }).id,
				stacks: reg.createMap({ type: MapType.StackTrace, name: 'stacks', keySize: 4, valueSize: 32, maxEntries: 16 })
					.id,
				cgroup_map: reg.createMap({
					type: MapType.CgroupArray,
					name: 'cgroup_map',
					keySize: 4,
					valueSize: 4,
					maxEntries: 1,
				}).id,
			};
			const obj = readBpfObject(object);
			const load = (name: string) => {
				const code = obj.programs.get(`uprobe/${name}`);
				if (!code) throw new Error(`no program ${name}`);
				return reg.loadProg({
					type: ProgType.Kprobe,
					name,
					license: 'GPL',
					insns: linkProgram(code, (r) => ids[r.symbol] as number),
				});
			};
			const dispatch = load('dispatch');
			const record = load('record');
			const filter = load('filter');
			const jmp = new ProgArray(reg.map(ids.jmp as number));
			jmp.set(2, record);
			// Index 2: the stack of the context's ip; index 1: nothing stored.
			const id = Number(dispatch.run(regs(0x4010n, 2), { backend }));
			expect(id >= 0 && id < 16).toBe(true);
			expect(new StackTraceMap(reg.map(ids.stacks as number)).get(id)).toEqual([0x4010n]);
			expect(dispatch.run(regs(0x4010n, 1), { backend })).toBe(1001n);
			// An empty cgroup slot is -EAGAIN; the root of this thread's cgroup2 tree holds it.
			expect(BigInt.asIntN(32, filter.run(regs(0n, 0), { backend }))).toBe(-11n);
			const line = readFileSync('/proc/self/mountinfo', 'utf8')
				.split('\n')
				.find((l) => l.includes(' - cgroup2 '));
			if (line) {
				const fd = openSync(line.split(' ')[4] as string, 'r');
				try {
					reg.map(ids.cgroup_map as number).update(Buffer.alloc(4), Buffer.from(new Uint32Array([fd]).buffer));
				} finally {
					closeSync(fd);
				}
				expect(filter.run(regs(0n, 0), { backend })).toBe(1n);
			}
		});
	},
);
