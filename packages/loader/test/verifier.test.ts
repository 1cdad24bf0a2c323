// The verifier's type discipline against the kernel's: one program per class
// of what the kernel refuses (and the near miss it accepts), loaded into a
// bpftime registry (where the verifier runs at program creation) and, where
// bpf(2) is allowed here, into the kernel as a kprobe program with maps of
// the same attributes. Each row's verdict is written from the kernel's
// verifier (kernel/bpf/verifier.c); both must give it.
import '@bpftime/maps-userspace';
import { existsSync } from 'node:fs';
import { MapType, ProgType, Registry } from '@bpftime/handlers';
import { Segment } from '@bpftime/shm';
import { assemble } from '@bpftime/vm';
import { describe, expect, it, onTestFinished } from 'vitest';
import { useFixtures, useKernelTarget } from './helpers.js';

const fx = useFixtures();
const kernel = useKernelTarget(fx);
let count = 0;

function freshRegistry(): Registry {
	const name = `bpftime_verifier_test_${process.pid}_${count++}`;
	const seg = Segment.create({ name, sizeMb: 8 });
	const reg = Registry.create(seg);
	onTestFinished(() => {
		reg.close();
		seg.close();
		if (existsSync(`/dev/shm/${name}`)) Segment.remove({ name });
	});
	return reg;
}

// map_by_fd(0): a hash map of u32 -> u64; map_by_fd(1): an array of four
// 16-byte values.
const MAPS = [
	{ type: MapType.Hash, keySize: 4, valueSize: 8, maxEntries: 16, name: 'h' },
	{ type: MapType.Array, keySize: 4, valueSize: 16, maxEntries: 4, name: 'a' },
];

// A key of 0 at fp-4 in r2, then bpf_map_lookup_elem(map N, key).
const lookup = (map: number) =>
	`r1 = 0\n*(u32 *)(r10 - 4) = r1\nr2 = r10\nr2 += -4\nr1 = map_by_fd(${map}) ll\ncall 1\n`;

interface Case {
	what: string;
	asm: string;
	/** The kernel's verdict: accepted, or a substring of our refusal. */
	refused?: RegExp;
	/** Raw edits after assembling: [insn index, byte offset, value]. */
	patch?: [number, number, number][];
}

const cases: Case[] = [
	{
		what: 'a lookup result dereferenced without a NULL check',
		asm: `${lookup(0)}r1 = *(u64 *)(r0 + 0)\nr0 = 0\nexit`,
		refused: /R0 invalid mem access 'map_value_or_null'/,
	},
	{
		what: 'a lookup result compared against a non-zero constant instead of NULL',
		asm: `${lookup(0)}if r0 == 0x2000 goto +2\nr1 = *(u64 *)(r0 + 0)\nr0 = r1\nr0 = 0\nexit`,
		refused: /R0 invalid mem access 'map_value_or_null'/,
	},
	{
		what: 'a NULL-checked lookup result (accepted)',
		asm: `${lookup(0)}if r0 == 0 goto +2\nr1 = *(u64 *)(r0 + 0)\nr1 += 1\nr0 = 0\nexit`,
	},
	{
		what: 'register 15 in the destination and source fields',
		asm: 'r0 = 0\nexit',
		patch: [[0, 1, 0xff]],
		refused: /invalid register r15/,
	},
	{
		what: 'r0 read after its call was replaced by a conditional jump',
		asm: `r1 = 0\n*(u32 *)(r10 - 4) = r1\nr2 = r10\nr2 += -4\nr1 = map_by_fd(0) ll\nif r1 == 0 goto +0\nif r0 == 0 goto +1\nr1 = *(u64 *)(r0 + 0)\nr0 = 0\nexit`,
		refused: /R0 !read_ok/,
	},
	{
		what: 'a map value read past its value_size',
		asm: `${lookup(1)}if r0 == 0 goto +1\nr1 = *(u64 *)(r0 + 16)\nr0 = 0\nexit`,
		refused: /invalid access to map value, value_size=16 off=16 size=8/,
	},
	{
		what: 'an array lookup of a constant key in range, used without a NULL check (accepted)',
		asm: `${lookup(1)}r1 = *(u64 *)(r0 + 8)\nr0 = 0\nexit`,
	},
	{
		what: 'a map value read at its last 8 bytes (accepted)',
		asm: `${lookup(1)}if r0 == 0 goto +1\nr1 = *(u64 *)(r0 + 8)\nr0 = 0\nexit`,
	},
	{
		what: 'a store below the 512-byte stack through a pointer',
		asm: 'r1 = r10\nr1 += -512\nr1 += -8\nr2 = 0\n*(u64 *)(r1 + 0) = r2\nr0 = 0\nexit',
		refused: /invalid write to stack R1 off=-520 size=8/,
	},
	{
		what: 'a context read past pt_regs',
		asm: 'r0 = *(u64 *)(r1 + 168)\nexit',
		refused: /invalid bpf_context access off=168 size=8/,
	},
	{
		what: 'a context read of the last pt_regs field (accepted)',
		asm: 'r0 = *(u64 *)(r1 + 160)\nexit',
	},
	{
		what: 'a number used as a pointer',
		asm: 'r1 = 4096\nr0 = *(u64 *)(r1 + 0)\nexit',
		refused: /R1 invalid mem access 'scalar'/,
	},
	{
		what: 'a pointer multiplied',
		asm: 'r0 = r10\nr0 *= 2\nr0 = 0\nexit',
		refused: /R0 pointer arithmetic with .* operator prohibited/,
	},
	{
		what: 'pointer arithmetic on a lookup result before its NULL check',
		asm: `${lookup(0)}r0 += 8\nif r0 == 0 goto +1\nr1 = *(u64 *)(r0 + 0)\nr0 = 0\nexit`,
		refused: /R0 pointer arithmetic on map_value_or_null prohibited, null-check it first/,
	},
	{
		what: 'a loop that never ends',
		asm: 'r0 = 0\nl: goto l\nexit',
		refused: /infinite loop detected|no reachable exit/,
	},
	{
		what: 'a loop on a random number that the exploration cannot bound',
		asm: 'call 7\nl: r0 += 1\nif r0 != 0 goto l\nexit',
		refused: /BPF program is too large|infinite loop detected/,
	},
	{
		what: 'a bounded loop (accepted)',
		asm: 'r1 = 0\nr0 = 0\nl: r0 += r1\nr1 += 1\nif r1 < 100 goto l\nexit',
	},
	{
		what: 'a write to the frame pointer',
		asm: 'r0 = 0\nr10 = 0\nexit',
		refused: /frame pointer is read only/,
	},
	{
		what: 'a helper size argument without an upper bound',
		asm: 'r6 = r1\nr1 = r10\nr1 += -8\nr2 = *(u64 *)(r6 + 0)\nr3 = 0\ncall 112\nr0 = 0\nexit',
		refused: /R2 min value is negative|R2 unbounded memory access/,
	},
	{
		what: 'a helper size argument bounded by a mask (accepted)',
		asm: 'r6 = r1\nr1 = r10\nr1 += -8\nr2 = *(u64 *)(r6 + 0)\nr2 &= 7\nr3 = 0\ncall 112\nr0 = 0\nexit',
	},
	{
		what: 'a helper buffer that leaves the stack',
		asm: 'r1 = r10\nr1 += -8\nr2 = 16\nr3 = 0\ncall 112\nr0 = 0\nexit',
		refused: /invalid indirect access to stack R1 off=-8 size=16/,
	},
	{
		what: 'a variable offset bounded by a mask inside the value (accepted)',
		asm: `r6 = r1\n${lookup(1)}if r0 == 0 goto +4\nr1 = *(u64 *)(r6 + 0)\nr1 &= 8\nr0 += r1\nr2 = *(u64 *)(r0 + 0)\nr0 = 0\nexit`,
	},
	{
		what: 'a variable offset whose mask lets it leave the value',
		asm: `r6 = r1\n${lookup(1)}if r0 == 0 goto +4\nr1 = *(u64 *)(r6 + 0)\nr1 &= 15\nr0 += r1\nr2 = *(u64 *)(r0 + 0)\nr0 = 0\nexit`,
		refused: /R0 max value is outside of the allowed memory range/,
	},
	{
		what: 'a variable offset bounded by a 32-bit compare (accepted)',
		asm: `r6 = r1\n${lookup(1)}if r0 == 0 goto +5\nr1 = *(u32 *)(r6 + 0)\nif w1 > 8 goto +3\nr0 += r1\nr2 = *(u64 *)(r0 + 0)\nr0 = 0\nexit`,
	},
	{
		what: 'a variable offset unchecked below zero',
		asm: `r6 = r1\n${lookup(1)}if r0 == 0 goto +5\nr1 = *(u64 *)(r6 + 0)\nif r1 s> 8 goto +3\nr0 += r1\nr2 = *(u64 *)(r0 + 0)\nr0 = 0\nexit`,
		refused: /R0 min value is negative|math between map_value pointer and register with unbounded min value/,
	},
	{
		what: 'a map value pointer spilled to the stack and reloaded (accepted)',
		asm: `${lookup(1)}if r0 == 0 goto +4\n*(u64 *)(r10 - 16) = r0\nr1 = *(u64 *)(r10 - 16)\nr2 = *(u64 *)(r1 + 8)\nr0 = 0\nexit`,
	},
	{
		what: 'a stack pointer passed to a bpf-to-bpf call (accepted)',
		asm: 'r1 = 7\n*(u64 *)(r10 - 8) = r1\nr1 = r10\nr1 += -8\ncall sub\nexit\nsub: r0 = *(u64 *)(r1 + 0)\nexit',
	},
	{
		what: 'a number passed to a bpf-to-bpf call and dereferenced there',
		asm: 'r1 = 7\ncall sub\nexit\nsub: r0 = *(u64 *)(r1 + 0)\nexit',
		refused: /R1 invalid mem access 'scalar'/,
	},
	{
		what: 'a number as the map argument of a lookup',
		asm: 'r1 = 0\n*(u32 *)(r10 - 4) = r1\nr2 = r10\nr2 += -4\ncall 1\nr0 = 0\nexit',
		refused: /R1 type=scalar expected=map_ptr/,
	},
	{
		what: 'a lookup key that does not fit in the stack',
		asm: 'r2 = r10\nr2 += -2\nr1 = map_by_fd(0) ll\ncall 1\nr0 = 0\nexit',
		refused: /invalid indirect access to stack R2 off=-2 size=4/,
	},
];

/** Instructions with map_by_fd(n) pointed at ids[n]. */
function withMaps(code: Buffer, ids: number[]): Buffer {
	const out = Buffer.from(code);
	for (let i = 0; i + 8 <= out.length; i += 8) {
		if (out[i] === 0x18 && (out[i + 1] as number) >> 4 === 1) {
			out.writeInt32LE(ids[out.readInt32LE(i + 4)] as number, i + 4);
			i += 8;
		}
	}
	return out;
}

function build(c: Case): Buffer {
	const code = assemble(c.asm);
	for (const [insn, byte, value] of c.patch ?? []) code.writeUInt8(value, insn * 8 + byte);
	return code;
}

/** Our verdict: undefined when the registry accepts the program, else its message. */
function ours(c: Case): string | undefined {
	const reg = freshRegistry();
	const ids = MAPS.map((m) => reg.createMap(m).id);
	try {
		reg.loadProg({ type: ProgType.Kprobe, name: 'v', license: 'GPL', insns: withMaps(build(c), ids) });
		return undefined;
	} catch (e) {
		return (e as Error).message;
	}
}

describe('the verifier refuses what the kernel refuses, and accepts what it accepts', () => {
	it.each(cases)('$what', (c) => {
		const got = ours(c);
		if (c.refused) {
			expect(got, 'bpftime accepted it').toBeDefined();
			expect(got).toMatch(c.refused);
		} else {
			expect(got).toBeUndefined();
		}
	});

	it.for(cases)('the kernel agrees: $what', async (c, ctx) => {
		const k = kernel(ctx);
		const ids: number[] = [];
		for (const m of MAPS) {
			ids.push(
				await k.createMap({
					...m,
					flags: 0,
					mapExtra: 0n,
					numaNode: 0,
					innerMapId: undefined,
					pinning: 'none',
					btfId: undefined,
					btfKeyTypeId: 0,
					btfValueTypeId: 0,
				} as never),
			);
		}
		const verdict = await k
			.loadProgram({
				name: 'v',
				type: ProgType.Kprobe,
				expectedAttachType: 0,
				instructions: withMaps(build(c), ids),
				license: 'GPL',
				kernelVersion: 0,
				flags: 0,
				mapIds: ids,
				btfId: undefined,
				funcInfo: Buffer.alloc(0),
				lineInfo: Buffer.alloc(0),
			} as never)
			.then(
				() => 'accepted',
				() => `refused: ${k.lastLog.trim().split('\n').slice(-2).join(' | ')}`,
			);
		expect(verdict.startsWith('refused'), verdict).toBe(c.refused !== undefined);
	});
});

// Every eBPF object the repository's tests, examples and benchmarks compile
// loads with the verifier on: the precision the kernel's verifier has for
// what clang emits (bounded loops, masked and compared offsets, 32-bit
// bounds, spills, sub-programs, callbacks, CO-RE accesses).
const repo = new URL('../../../', import.meta.url).pathname;
const corpus = [
	'examples/malloc/malloc.bpf.c',
	'examples/override/allow.bpf.c',
	'examples/uretprobe-latency/latency.bpf.c',
	'bench/programs/agent/bench.bpf.c',
	'packages/agent/test/fixtures/probes.bpf.c',
	'packages/maps-userspace/test/fixtures/count_bytes.bpf.c',
	'packages/maps-userspace/test/fixtures/perf.bpf.c',
	'packages/maps-userspace/test/fixtures/ringbuf.bpf.c',
	'packages/maps-userspace/test/fixtures/user_ringbuf.bpf.c',
	'packages/agent/test/fixtures/syscalls.bpf.c',
	'examples/opensnoop/opensnoop.bpf.c',
	'examples/syscount/syscount.bpf.c',
	'bench/programs/syscall/syscall.bpf.c',
	...['attach', 'core', 'count', 'globals', 'legacy', 'maps', 'pinned', 'strings', 'subprogs', 'user-types'].map(
		(f) => `packages/loader/test/fixtures/${f}.bpf.c`,
	),
];

describe('the corpus of accepted tracing programs', () => {
	it.for(corpus.flatMap((src) => ['-mcpu=v3', '-mcpu=v4'].map((cpu) => ({ src, cpu }))))(
		'$src ($cpu) loads into the registry with every program verified',
		async ({ src, cpu }) => {
			const { compileBpf } = await import('@bpftime/test-support');
			const { BpfObject } = await import('../src/index.js');
			const { clang } = await import('./helpers.js');
			const out = `${fx.dir}/corpus-${(src as string).replaceAll('/', '_')}${cpu}.o`;
			await compileBpf(clang, `${repo}${src}`, out, [
				cpu as string,
				'-D__TARGET_ARCH_x86',
				'-DTARGET="/bin/true"',
				'-DCALLBACK_IN_TEXT',
				`-I${repo}bench/programs`,
			]);
			// user-types relocates against the types of a user program
			// (target-types.c), as the CO-RE tests load it; without them its
			// accesses are poisoned, and the kernel refuses those too.
			let targetBtf: string | undefined;
			if ((src as string).endsWith('user-types.bpf.c')) {
				targetBtf = `${fx.dir}/corpus-target-types${cpu}.o`;
				await compileBpf(clang, `${repo}packages/loader/test/fixtures/target-types.c`, targetBtf, [cpu as string]);
			}
			const reg = freshRegistry();
			const o = BpfObject.open(out, targetBtf ? { targetBtf } : {});
			const loaded = await o.load(reg);
			expect(loaded.programs.size).toBe(o.programs.length);
		},
	);
});
