// Differential tests against libbpf: the system's libbpf opens and loads the
// same objects into the kernel (test/fixtures/libbpf-dump.c) and prints what
// it made of them; the loader must agree on maps (names, attributes, initial
// values) and programs (names, types, instructions after relocation).
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { beforeAll, describe, expect, it } from 'vitest';
import { BpfObject, mapCreateRequest, resolveMapReferences } from '../src/index.js';
import { bpfAllowed, hasClang19, hasVmlinux, useFixtures } from './helpers.js';

const run = promisify(execFile);
const fx = useFixtures();

interface Dump {
	stage: 'open' | 'load' | 'loaded';
	errno?: number;
	log?: string;
	maps?: { name: string; initial: string | null }[];
	loaded_maps?: {
		name: string;
		type: number;
		key_size: number;
		value_size: number;
		max_entries: number;
		flags: number;
		map_extra: number;
	}[];
	programs?: {
		name: string;
		section: string;
		type: number;
		expected_attach_type: number;
		insn_cnt: number;
		insns: string;
	}[];
}

let tool = '';
let skip = '';

beforeAll(async () => {
	const allowed = await bpfAllowed(fx);
	if (!allowed.ok) {
		skip = allowed.why;
		return;
	}
	tool = await fx.host('libbpf-dump', ['-lbpf']);
});

async function dump(obj: string, btf?: string): Promise<Dump> {
	const { stdout } = await run(tool, btf ? [obj, btf] : [obj], { maxBuffer: 1 << 24 });
	return JSON.parse(stdout) as Dump;
}

/** Map fds (lddw src_reg 1 and 2) differ between two loads: zero them. */
function maskFds(code: Buffer): string {
	const c = Buffer.from(code);
	for (let i = 0; i < c.length / 8; i++) {
		const src = (c[i * 8 + 1] as number) >> 4;
		if (c[i * 8] === 0x18 && (src === 1 || src === 2)) c.writeInt32LE(0, i * 8 + 4);
	}
	return c.toString('hex');
}

async function compare(path: string, targetBtf?: string): Promise<void> {
	const want = await dump(path, targetBtf);
	expect(want.stage, `libbpf failed: ${want.log}`).toBe('loaded');
	const o = BpfObject.open(path, targetBtf ? { targetBtf } : {});

	expect(o.maps.map((m) => m.name)).toEqual(want.loaded_maps?.map((m) => m.name));
	expect(
		o.maps.map((m) => {
			const r = mapCreateRequest(m);
			return {
				name: m.name,
				type: r.type,
				key_size: r.keySize,
				value_size: r.valueSize,
				max_entries: r.maxEntries,
				flags: r.flags,
				map_extra: Number(r.mapExtra),
			};
		}),
	).toEqual(want.loaded_maps);
	expect(o.maps.map((m) => ({ name: m.name, initial: m.contents ? m.contents.toString('hex') : null }))).toEqual(
		want.maps,
	);

	// Same programs in the same order (ELF section order, then offset).
	expect(
		o.programs.map((p) => ({
			name: p.name,
			section: p.section,
			type: p.type,
			expected_attach_type: p.expectedAttachType,
			insn_cnt: p.insnCount,
			insns: maskFds(resolveMapReferences(p.instructions, p.mapReferences, () => 0)),
		})),
	).toEqual((want.programs ?? []).map((p) => ({ ...p, insns: maskFds(Buffer.from(p.insns, 'hex')) })));
}

describe('the same objects through libbpf', () => {
	it.for(['maps', 'globals', 'subprogs', 'attach', 'count', 'strings'])(
		'agrees with libbpf on %s.bpf.o: maps, initial values, programs and their instructions',
		async (name, ctx) => {
			if (skip) {
				console.log(`skipped: ${skip}`);
				ctx.skip();
				return;
			}
			await compare(
				await fx.bpf(name, name === 'attach' || name === 'count' ? [`-DTARGET="${await fx.victim()}"`] : []),
			);
		},
	);

	it('agrees with libbpf on CO-RE against the running kernel (core.bpf.o)', async (ctx) => {
		if (skip || !hasVmlinux) {
			console.log(`skipped: ${skip || '/sys/kernel/btf/vmlinux does not exist'}`);
			ctx.skip();
			return;
		}
		await compare(await fx.bpf('core'));
	});

	it('agrees with libbpf on CO-RE against a BTF given by the user (user-types.bpf.o)', async (ctx) => {
		if (skip) {
			console.log(`skipped: ${skip}`);
			ctx.skip();
			return;
		}
		await compare(await fx.bpf('user-types'), await fx.bpf('target-types'));
	});

	it('agrees with libbpf on objects built for -mcpu=v4', async (ctx) => {
		if (skip || !hasClang19) {
			console.log(`skipped: ${skip || '-mcpu=v4 needs clang-19'}`);
			ctx.skip();
			return;
		}
		await compare(await fx.bpf('subprogs', ['-mcpu=v4']));
		await compare(await fx.bpf('globals', ['-mcpu=v4']));
	});

	it('opens legacy maps sections, which libbpf 1.x refuses with EOPNOTSUPP', async (ctx) => {
		if (skip) {
			console.log(`skipped: ${skip}`);
			ctx.skip();
			return;
		}
		const path = await fx.bpf('legacy');
		const want = await dump(path);
		expect(want).toMatchObject({ stage: 'open', errno: 95 });
		expect(BpfObject.open(path).maps).toHaveLength(2);
	});
});
