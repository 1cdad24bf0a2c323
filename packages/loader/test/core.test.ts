import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { beforeAll, describe, expect, it } from 'vitest';
import { BpfObject, Btf, loadBtf } from '../src/index.js';
import { hasVmlinux, useFixtures, VMLINUX } from './helpers.js';

const fx = useFixtures();
const POISON = 0xbad2310;

/** The instruction's patched value: imm for ALU and lddw, off for loads and stores. */
function patched(code: Buffer, i: number): number {
	const cls = (code[i * 8] as number) & 7;
	return cls === 1 || cls === 2 || cls === 3 ? code.readInt16LE(i * 8 + 2) : code.readInt32LE(i * 8 + 4);
}

describe('CO-RE against the running kernel', () => {
	// What the kernel says, read with bpftool (not with our BTF parser).
	const kernel = { pid: 0, tgid: 0, flags: 0, commSize: 16, size: 0, tgidEnum: -1, taskId: 0 };
	let obj: BpfObject;

	beforeAll(async () => {
		if (!hasVmlinux) return;
		const dump = execFileSync('bpftool', ['btf', 'dump', 'file', VMLINUX], { encoding: 'utf8', maxBuffer: 1 << 28 });
		const start = dump.indexOf("] STRUCT 'task_struct' size=");
		const block = dump.slice(start, dump.indexOf('\n[', start));
		kernel.size = Number(/size=(\d+)/.exec(block)?.[1]);
		kernel.taskId = Number(/\[(\d+)\] STRUCT 'task_struct' size=/.exec(dump)?.[1]);
		const off = (m: string) => Number(new RegExp(`'${m}' type_id=\\d+ bits_offset=(\\d+)`).exec(block)?.[1]) / 8;
		kernel.pid = off('pid');
		kernel.tgid = off('tgid');
		kernel.flags = off('flags');
		const e = dump.indexOf("] ENUM 'pid_type'");
		kernel.tgidEnum = Number(/'PIDTYPE_TGID' val=(\d+)/.exec(dump.slice(e, dump.indexOf('\n[', e)))?.[1]);
		obj = BpfObject.open(await fx.bpf('core'));
	});

	it('relocates field offsets, sizes, existence, type and enum relocations to what vmlinux says', (ctx) => {
		if (!hasVmlinux) {
			console.log(`skipped: ${VMLINUX} does not exist on this machine`);
			ctx.skip();
			return;
		}
		const rel = obj.coreRelocations;
		const find = (kind: string, local: RegExp) => rel.filter((r) => r.kind === kind && local.test(r.local));
		expect(find('byte_off', /\.pid /)[0]?.result.newVal).toBe(BigInt(kernel.pid));
		expect(find('byte_off', /\.tgid /)[0]?.result.newVal).toBe(BigInt(kernel.tgid));
		expect(find('byte_off', /\.flags /)[0]?.result.newVal).toBe(BigInt(kernel.flags));
		expect(find('byte_sz', /\.comm /)[0]?.result.newVal).toBe(BigInt(kernel.commSize));
		expect(find('type_size', /task_struct___local/)[0]?.result.newVal).toBe(BigInt(kernel.size));
		expect(find('enumval_value', /PIDTYPE_TGID___local/)[0]?.result.newVal).toBe(BigInt(kernel.tgidEnum));
		expect(find('enumval_exists', /PIDTYPE_NOPE___local/)[0]?.result.newVal).toBe(0n);
		expect(find('type_exists', /no_such_type___local/)[0]?.result.newVal).toBe(0n);
		expect(find('field_exists', /\.pid /)[0]?.result.newVal).toBe(1n);
		for (const r of find('field_exists', /no_such_field___local/)) expect(r.result.newVal).toBe(0n);
		// task_struct___local has a member the kernel lacks: it exists but does not match; list_head___local matches.
		expect(find('type_matches', /task_struct___local/)[0]?.result.newVal).toBe(0n);
		expect(find('type_matches', /list_head___local/)[0]?.result.newVal).toBe(1n);
		expect(find('target_type_id', /task_struct___local/)[0]?.result.newVal).toBe(BigInt(kernel.taskId));
		expect(find('local_type_id', /task_struct___local/)[0]?.result.newVal).toBe(
			BigInt(obj.btf?.findByName('task_struct___local')[0] ?? -1),
		);
		// The kernel's in_execve is a bitfield: the read is rewritten with shifts.
		expect(find('lshift_u64', /in_execve/)).toHaveLength(1);
	});

	it('writes each result into its instruction, and poisons the read of a field the kernel lacks', (ctx) => {
		if (!hasVmlinux) {
			console.log(`skipped: ${VMLINUX} does not exist on this machine`);
			ctx.skip();
			return;
		}
		const p = obj.program('read_task');
		expect(p.subprograms).toEqual([]);
		let poisoned = 0;
		for (const r of obj.coreRelocations) {
			if (r.result.poison) {
				poisoned++;
				expect(p.instructions[r.insnIdx * 8]).toBe(0x85);
				expect(p.instructions.readInt32LE(r.insnIdx * 8 + 4)).toBe(POISON);
			} else {
				expect(BigInt(patched(p.instructions, r.insnIdx))).toBe(BigInt.asIntN(32, r.result.newVal));
			}
		}
		expect(poisoned).toBe(1);
		expect(obj.describe()).toContain('poisoned (no match in the target)');
	});

	it('reads vmlinux from a path, from its bytes, or parsed', (ctx) => {
		if (!hasVmlinux) {
			console.log(`skipped: ${VMLINUX} does not exist on this machine`);
			ctx.skip();
			return;
		}
		const bytes = readFileSync(VMLINUX);
		const btf = Btf.parse(bytes, 'vmlinux');
		expect(btf.findByName('task_struct')).toHaveLength(1);
		const want = obj.program('read_task').instructions;
		for (const targetBtf of [VMLINUX, bytes, btf]) {
			expect(
				BpfObject.open(obj.path as string, { targetBtf })
					.program('read_task')
					.instructions.equals(want),
			).toBe(true);
		}
	});
});

describe('CO-RE against user-space types', () => {
	let path: string;
	let target: string;
	beforeAll(async () => {
		path = await fx.bpf('user-types');
		// target-types.c compiled with -g -target bpf: an ELF file with a .BTF section.
		target = await fx.bpf('target-types');
	});

	// target-types.c: struct request { int flags; int id; long pad; long size; }.
	it('moves a field to its offset in the given BTF, and finds types and fields there', () => {
		const o = BpfObject.open(path, { targetBtf: target });
		const rel = o.coreRelocations.map((r) => [r.kind, r.result.origVal, r.result.newVal]);
		expect(rel).toEqual([
			['byte_off', 8n, 16n],
			['type_exists', 1n, 1n],
			['field_exists', 1n, 1n],
		]);
		// Raw BTF bytes work as well as an ELF file.
		const raw = loadBtf(target, 'test');
		expect(raw.findByName('request')).toHaveLength(1);
	});

	it('says which BTF is missing, and which file could not be read', () => {
		expect(() => BpfObject.open(path, { targetBtf: '/no/such/btf' })).toThrow(
			expect.objectContaining({ code: 'ENOENT', message: expect.stringContaining("cannot read '/no/such/btf'") }),
		);
		expect(() => BpfObject.open(path, { targetBtf: Buffer.alloc(64, 0x41) })).toThrow(
			expect.objectContaining({ code: 'EINVAL', message: expect.stringContaining('target BTF: bad magic') }),
		);
	});

	it('never reads a target BTF for an object without CO-RE relocations', async () => {
		const o = BpfObject.open(await fx.bpf('subprogs'), { targetBtf: '/no/such/btf' });
		expect(o.coreRelocations).toEqual([]);
	});
});
