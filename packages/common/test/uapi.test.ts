import { execFileSync, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { describe, expect, it, onTestFinished } from 'vitest';
import {
	AttachType,
	attachTypeNames,
	BPF_OBJ_NAME_LEN,
	BPF_PSEUDO_KFUNC_CALL,
	BPF_PSEUDO_MAP_FD,
	BPF_PSEUDO_MAP_IDX_VALUE,
	BpfCmd,
	bpfCmdNames,
	HelperId,
	helperNames,
	LinkType,
	MapFlags,
	MapType,
	mapTypeNames,
	ProgFlags,
	ProgType,
	progTypeNames,
	UAPI_SOURCE_SHA256,
	UpdateFlags,
} from '../src/index.js';

const packageDir = resolve(import.meta.dirname, '..');
const script = join(packageDir, 'scripts/gen-uapi.mjs');
const outputs = ['src/uapi.ts', 'native/include/bpftime/common/bpf_uapi.hpp'];
const systemHeader = '/usr/include/linux/bpf.h';

function tempDir(): string {
	const dir = mkdtempSync(join(tmpdir(), 'bpftime-uapi-'));
	onTestFinished(() => rmSync(dir, { recursive: true, force: true }));
	return dir;
}

/** Why the committed files cannot be compared with this machine's header, or undefined when they can. */
function headerMismatch(): string | undefined {
	if (!existsSync(systemHeader)) return `${systemHeader} is missing (apt-get install linux-libc-dev)`;
	const sha = createHash('sha256').update(readFileSync(systemHeader)).digest('hex');
	if (sha !== UAPI_SOURCE_SHA256) {
		return `the committed files come from a bpf.h with sha256 ${UAPI_SOURCE_SHA256}, this machine's has ${sha}`;
	}
	return undefined;
}

describe('gen-uapi.mjs', () => {
	it('writes the committed uapi.ts and bpf_uapi.hpp from this machine’s linux/bpf.h', (ctx) => {
		const why = headerMismatch();
		if (why) ctx.skip(why);
		const out = tempDir();
		execFileSync(process.execPath, [script, '--out', out]);
		for (const file of outputs) {
			const fresh = readFileSync(join(out, file), 'utf8');
			const committed = readFileSync(join(packageDir, file), 'utf8');
			expect(
				fresh === committed,
				`${file} differs from what gen-uapi.mjs writes: run \`pnpm --filter @bpftime/common gen:uapi\` and commit the result`,
			).toBe(true);
		}
	});

	// A header written for the test: every group the generator needs, in the
	// forms bpf.h uses (implicit and explicit values, an alias, a sentinel, a
	// #define between entries, the FN(name, id, ##ctx) helper list of 6.2+),
	// as long as Linux 6.1's enums so that the NEWER entries follow on.
	const filler = (prefix: string, from: number, to: number, sep = ',') =>
		Array.from({ length: to - from }, (_, i) => `${prefix}${from + i}${sep}`).join('\n');
	const header = (mapTypes: string) => `
/* enum bpf_cmd { NOT_THIS } */
enum bpf_cmd {
	BPF_MAP_CREATE,
	BPF_MAP_LOOKUP_ELEM,
${filler('BPF_CMD_T', 2, 10)}
	BPF_PROG_TEST_RUN = 10,
	BPF_PROG_RUN = BPF_PROG_TEST_RUN,
	BPF_PROG_GET_NEXT_ID,
};
enum bpf_map_type {
${mapTypes}
};
enum bpf_prog_type { BPF_PROG_TYPE_UNSPEC, BPF_PROG_TYPE_SOCKET_FILTER,
${filler('BPF_PROG_TYPE_T', 2, 32)}
};
enum bpf_attach_type {
	BPF_CGROUP_INET_INGRESS,
${filler('BPF_ATTACH_T', 1, 44)}
	__MAX_BPF_ATTACH_TYPE
};
enum bpf_link_type { BPF_LINK_TYPE_UNSPEC = 0, BPF_LINK_TYPE_RAW_TRACEPOINT = 1, MAX_BPF_LINK_TYPE, };
#define BPF_F_STRICT_ALIGNMENT	(1U << 0)
#define BPF_F_ANY_ALIGNMENT	(1U << 1)
#define BPF_F_TEST_RND_HI32	(1U << 2)
#define BPF_F_TEST_STATE_FREQ	(1U << 3)
#define BPF_F_SLEEPABLE		(1U << 4)
#define BPF_F_XDP_HAS_FRAGS	(1U << 5)
#define BPF_OBJ_NAME_LEN 16U
#define BPF_PSEUDO_MAP_FD	1
#define BPF_PSEUDO_MAP_IDX	5
#define BPF_PSEUDO_MAP_VALUE		2
#define BPF_PSEUDO_MAP_IDX_VALUE	6
#define BPF_PSEUDO_BTF_ID	3
#define BPF_PSEUDO_FUNC		4
#define BPF_PSEUDO_CALL		1
#define BPF_PSEUDO_KFUNC_CALL	2
enum { BPF_ANY = 0, BPF_NOEXIST = 1, BPF_EXIST = 2, BPF_F_LOCK = 4, };
enum {
	BPF_F_NO_PREALLOC = (1U << 0),
#define BPF_F_NOT_A_MEMBER (BPF_F_NO_PREALLOC | 2)
	BPF_F_NO_COMMON_LRU = (1U << 1), BPF_F_NUMA_NODE = (1U << 2), BPF_F_RDONLY = (1U << 3),
	BPF_F_WRONLY = (1U << 4), BPF_F_STACK_BUILD_ID = (1U << 5), BPF_F_ZERO_SEED = (1U << 6),
	BPF_F_RDONLY_PROG = (1U << 7), BPF_F_WRONLY_PROG = (1U << 8), BPF_F_CLONE = (1U << 9),
	BPF_F_MMAPABLE = (1U << 10), BPF_F_PRESERVE_ELEMS = (1U << 11), BPF_F_INNER_MAP = (1U << 12),
};
#define __BPF_FUNC_MAPPER(FN, ctx...)	\\
	FN(unspec, 0, ##ctx)		\\
	FN(map_lookup_elem, 1, ##ctx)	\\
${Array.from({ length: 208 }, (_, i) => `\tFN(h${i + 2}, ${i + 2}, ##ctx)\t\\`).join('\n')}
	/* */
`;

	function generateFrom(text: string): { ok: boolean; ts: string; stderr: string } {
		const dir = tempDir();
		writeFileSync(join(dir, 'bpf.h'), text);
		const r = spawnSync(process.execPath, [script, '--header', join(dir, 'bpf.h'), '--out', dir], { encoding: 'utf8' });
		const ts = r.status === 0 ? readFileSync(join(dir, 'src/uapi.ts'), 'utf8') : '';
		return { ok: r.status === 0, ts, stderr: r.stderr };
	}

	it('numbers implicit entries after explicit ones, keeps aliases and drops sentinels', () => {
		const { ok, ts, stderr } = generateFrom(
			header(`BPF_MAP_TYPE_UNSPEC, BPF_MAP_TYPE_HASH,\n${filler('BPF_MAP_TYPE_T', 2, 32)}`),
		);
		expect(stderr).toBe('');
		expect(ok).toBe(true);
		expect(ts).toContain('\tProgTestRun: 10,');
		expect(ts).toContain('\tProgRun: 10,');
		expect(ts).toContain('\tProgGetNextId: 11,');
		expect(ts).not.toContain('MaxBpfAttachType');
		expect(ts).not.toContain('NotAMember');
		expect(ts).toContain('\tMapLookupElem: 1,');
		// Entries this header lacks come from NEWER, marked.
		expect(ts).toContain('/** BPF_MAP_TYPE_ARENA (newer) */\n\tArena: 33,');
	});

	it('refuses a header whose number for a NEWER entry differs', () => {
		const { ok, stderr } = generateFrom(header('BPF_MAP_TYPE_UNSPEC, BPF_MAP_TYPE_ARENA = 7,'));
		expect(ok).toBe(false);
		expect(stderr).toContain('BPF_MAP_TYPE_ARENA: header says 7, NEWER says 33');
	});

	it('refuses a header without one of the enums it writes', () => {
		const { ok, stderr } = generateFrom(
			header(filler('BPF_MAP_TYPE_T', 0, 32)).replace('enum bpf_link_type', 'enum other'),
		);
		expect(ok).toBe(false);
		expect(stderr).toContain('no enum bpf_link_type in the header');
	});
});

// Expected values are the kernel's (include/uapi/linux/bpf.h), not our output.
describe('uapi numbers', () => {
	it.each([
		['MapType.Hash', MapType.Hash, 1],
		['MapType.PercpuArray', MapType.PercpuArray, 6],
		['MapType.Ringbuf', MapType.Ringbuf, 27],
		['MapType.Arena', MapType.Arena, 33],
		['ProgType.Kprobe', ProgType.Kprobe, 2],
		['ProgType.Syscall', ProgType.Syscall, 31],
		['AttachType.TraceFentry', AttachType.TraceFentry, 24],
		['AttachType.TraceUprobeMulti', AttachType.TraceUprobeMulti, 48],
		['LinkType.PerfEvent', LinkType.PerfEvent, 7],
		['BpfCmd.ProgLoad', BpfCmd.ProgLoad, 5],
		['BpfCmd.ProgRun', BpfCmd.ProgRun, 10],
		['BpfCmd.LinkCreate', BpfCmd.LinkCreate, 28],
		['HelperId.MapLookupElem', HelperId.MapLookupElem, 1],
		['HelperId.TailCall', HelperId.TailCall, 12],
		['HelperId.RingbufOutput', HelperId.RingbufOutput, 130],
		['HelperId.Loop', HelperId.Loop, 181],
		['MapFlags.Mmapable', MapFlags.Mmapable, 1 << 10],
		['UpdateFlags.NoExist', UpdateFlags.NoExist, 1],
		['UpdateFlags.Lock', UpdateFlags.Lock, 4],
		['ProgFlags.Sleepable', ProgFlags.Sleepable, 1 << 4],
		['BPF_OBJ_NAME_LEN', BPF_OBJ_NAME_LEN, 16],
		['BPF_PSEUDO_MAP_FD', BPF_PSEUDO_MAP_FD, 1],
		['BPF_PSEUDO_MAP_IDX_VALUE', BPF_PSEUDO_MAP_IDX_VALUE, 6],
		['BPF_PSEUDO_KFUNC_CALL', BPF_PSEUDO_KFUNC_CALL, 2],
	])('%s is %i', (_name, value, expected) => {
		expect(value).toBe(expected);
	});

	it('names each value as the kernel does', () => {
		expect(mapTypeNames[MapType.LruPercpuHash]).toBe('BPF_MAP_TYPE_LRU_PERCPU_HASH');
		expect(progTypeNames[ProgType.RawTracepoint]).toBe('BPF_PROG_TYPE_RAW_TRACEPOINT');
		expect(attachTypeNames[AttachType.TraceKprobeMulti]).toBe('BPF_TRACE_KPROBE_MULTI');
		expect(bpfCmdNames[BpfCmd.ProgRun]).toBe('BPF_PROG_TEST_RUN');
		expect(helperNames[HelperId.GetCurrentPidTgid]).toBe('get_current_pid_tgid');
	});
});
