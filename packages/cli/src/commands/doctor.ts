// bpftime doctor: what this machine allows (bpf(), ptrace, huge pages,
// syscall user dispatch, protection keys, tracefs, /dev/shm) and what the
// runtime will use here (backend, segment, the built libraries). Every
// answer comes from the kernel's own files or a real call, never from a
// guess about the distribution.
import { accessSync, constants, existsSync, readFileSync, statfsSync } from 'node:fs';
import { release } from 'node:os';
import { gunzipSync } from 'node:zlib';
import { type Command, takeOptions, UsageError } from '../command.js';

/** One finding: `ok` true (allowed/present), false (refused/absent), null (only informative). */
export interface Check {
	name: string;
	ok: boolean | null;
	detail: string;
	/** What bpftime does with it. */
	use: string;
}

function read(path: string): string | undefined {
	try {
		return readFileSync(path, 'utf8');
	} catch {
		return undefined;
	}
}

/** Effective capabilities of this process (CapEff of /proc/self/status). */
function capEff(): bigint {
	const m = /^CapEff:\s*([0-9a-f]+)$/m.exec(read('/proc/self/status') ?? '');
	return m ? BigInt(`0x${m[1]}`) : 0n;
}
const CAP_SYS_PTRACE = 19n;
const CAP_SYS_ADMIN = 21n;
const CAP_BPF = 39n;
const has = (caps: bigint, cap: bigint) => ((caps >> cap) & 1n) === 1n;

/** The running kernel's build configuration, where it says it (/proc/config.gz, /boot/config-<release>). */
function kernelConfig(): { source: string; text: string } | undefined {
	try {
		return { source: '/proc/config.gz', text: gunzipSync(readFileSync('/proc/config.gz')).toString('utf8') };
	} catch {
		const path = `/boot/config-${release()}`;
		const text = read(path);
		return text === undefined ? undefined : { source: path, text };
	}
}

function configOption(cfg: { text: string } | undefined, option: string): boolean | undefined {
	if (!cfg) return undefined;
	return new RegExp(`^${option}=[ym]$`, 'm').test(cfg.text);
}

async function bpfCheck(caps: bigint): Promise<Check> {
	const unpriv = read('/proc/sys/kernel/unprivileged_bpf_disabled')?.trim();
	const use = 'kernel-backed maps (@bpftime/maps-shared) and the differential tests against the kernel';
	let describeKernelMap: (id: number) => unknown;
	try {
		({ describeKernelMap } = await import('@bpftime/maps-shared'));
	} catch (e) {
		return {
			name: 'bpf()',
			ok: null,
			detail: `not probed: @bpftime/maps-shared does not load (${(e as Error).message.split('\n')[0]})`,
			use,
		};
	}
	try {
		// Id 0 never names a map: ENOENT is the kernel answering, EPERM or ENOSYS a refusal.
		describeKernelMap(0);
		return { name: 'bpf()', ok: true, detail: 'allowed', use };
	} catch (e) {
		const code = (e as { code?: string }).code ?? 'EIO';
		if (code === 'ENOENT') {
			return {
				name: 'bpf()',
				ok: true,
				detail: `allowed (BPF_MAP_GET_FD_BY_ID answered ENOENT)${unpriv ? `; unprivileged_bpf_disabled=${unpriv}` : ''}`,
				use,
			};
		}
		const why =
			code === 'ENOSYS'
				? 'the kernel has no bpf() (CONFIG_BPF_SYSCALL off, or a seccomp filter)'
				: `${code}: needs CAP_BPF or CAP_SYS_ADMIN (have: ${has(caps, CAP_BPF) ? 'CAP_BPF ' : ''}${has(caps, CAP_SYS_ADMIN) ? 'CAP_SYS_ADMIN' : 'neither'})${unpriv ? `, unprivileged_bpf_disabled=${unpriv}` : ''}; run as root for kernel modes`;
		return { name: 'bpf()', ok: false, detail: `refused: ${why}`, use };
	}
}

function ptraceCheck(caps: bigint): Check {
	const scope = read('/proc/sys/kernel/yama/ptrace_scope')?.trim();
	const ptrace = has(caps, CAP_SYS_PTRACE);
	const use = '`bpftime attach <pid>` injects the agent into a running process with ptrace';
	const yama = scope === undefined ? 'no Yama LSM' : `Yama ptrace_scope=${scope}`;
	const capText = `CAP_SYS_PTRACE: ${ptrace ? 'yes' : 'no'}`;
	// Yama's rules (Documentation/admin-guide/LSM/Yama.rst): 0 classic, 1 descendants only, 2 admin only, 3 none.
	if (scope === '3')
		return {
			name: 'ptrace',
			ok: false,
			detail: `${yama} (no process may ptrace another until reboot); use \`bpftime start\` instead`,
			use,
		};
	if (ptrace) return { name: 'ptrace', ok: true, detail: `${yama}; ${capText}: any process`, use };
	if (scope === '2')
		return { name: 'ptrace', ok: false, detail: `${yama}; ${capText}: run bpftime attach as root`, use };
	if (scope === '1')
		return {
			name: 'ptrace',
			ok: false,
			detail: `${yama}; ${capText}: only descendants; run as root, or set kernel.yama.ptrace_scope=0`,
			use,
		};
	return { name: 'ptrace', ok: true, detail: `${yama}; ${capText}: processes of the same user`, use };
}

function hugePagesCheck(): Check {
	const meminfo = read('/proc/meminfo') ?? '';
	const field = (n: string) => new RegExp(`^${n}:\\s+(\\d+)`, 'm').exec(meminfo)?.[1];
	const total = field('HugePages_Total');
	const free = field('HugePages_Free');
	const size = field('Hugepagesize');
	const thp = /\[(\w+)\]/.exec(read('/sys/kernel/mm/transparent_hugepage/enabled') ?? '')?.[1];
	return {
		name: 'huge pages',
		ok: total === undefined ? false : Number(total) > 0,
		detail: `${total ?? '?'} reserved (${free ?? '?'} free) of ${size ?? '?'} kB; transparent huge pages: ${thp ?? 'absent'}`,
		use: 'not used: segments are ordinary /dev/shm pages',
	};
}

function dispatchCheck(cfg: ReturnType<typeof kernelConfig>): Check {
	const on = configOption(cfg, 'CONFIG_SYSCALL_USER_DISPATCH');
	const [major = 0, minor = 0] = release().split('.').map(Number);
	const recent = major > 5 || (major === 5 && minor >= 11);
	const ok = on ?? (recent ? null : false);
	const detail =
		on === undefined
			? `kernel ${release()} ${recent ? 'is 5.11 or later; no kernel config here to say whether CONFIG_SYSCALL_USER_DISPATCH is set' : 'is older than 5.11, which added it'}`
			: `CONFIG_SYSCALL_USER_DISPATCH ${on ? 'set' : 'not set'} (${cfg?.source})`;
	return {
		name: 'syscall user dispatch',
		ok,
		detail,
		use: 'the fallback for system call sites the rewriter leaves as they are (syscall tracepoints); without it their calls are not reported',
	};
}

function pkuCheck(cfg: ReturnType<typeof kernelConfig>): Check {
	const flags = /^flags\s*:(.*)$/m.exec(read('/proc/cpuinfo') ?? '')?.[1]?.split(/\s+/) ?? [];
	const cpu = flags.includes('pku');
	const os = flags.includes('ospke');
	const kernel = configOption(cfg, 'CONFIG_X86_INTEL_MEMORY_PROTECTION_KEYS');
	return {
		name: 'protection keys (PKU)',
		ok: cpu && os,
		detail: `CPU: ${cpu ? 'pku' : 'no pku'}; kernel: ${os ? 'enabled (ospke)' : 'not enabled'}${kernel === undefined ? '' : `; CONFIG_X86_INTEL_MEMORY_PROTECTION_KEYS ${kernel ? 'set' : 'not set'}`}`,
		use: 'not used: the segment is protected by file mode, not memory keys',
	};
}

function tracefsCheck(): Check {
	const mounts = (read('/proc/mounts') ?? '')
		.split('\n')
		.map((l) => l.split(' '))
		.filter((f) => f[2] === 'tracefs')
		.map((f) => f[1] as string);
	return {
		name: 'tracefs',
		ok: mounts.length > 0,
		detail: mounts.length
			? `mounted at ${mounts.join(', ')}`
			: 'not mounted (mount -t tracefs nodev /sys/kernel/tracing)',
		use: "the agent reads syscall events' ids (common_type) there, the syscall-server a tracepoint's id for perf_event_open",
	};
}

function vmlinuxCheck(): Check {
	const ok = existsSync('/sys/kernel/btf/vmlinux');
	return {
		name: 'kernel BTF',
		ok,
		detail: ok ? '/sys/kernel/btf/vmlinux' : 'no /sys/kernel/btf/vmlinux (CONFIG_DEBUG_INFO_BTF off)',
		use: 'the target BTF of CO-RE relocations in objects the loader opens',
	};
}

function shmCheck(): Check {
	try {
		accessSync('/dev/shm', constants.W_OK);
		const s = statfsSync('/dev/shm');
		const mib = Number((BigInt(s.bavail) * BigInt(s.bsize)) >> 20n);
		return {
			name: '/dev/shm',
			ok: true,
			detail: `writable, ${mib} MiB free`,
			use: 'the registry segment lives there',
		};
	} catch (e) {
		return {
			name: '/dev/shm',
			ok: false,
			detail: `${(e as NodeJS.ErrnoException).code ?? 'EIO'}: ${(e as Error).message}`,
			use: 'the registry segment lives there: nothing works without it',
		};
	}
}

interface Runtime {
	backend: string;
	backendFrom: string;
	llvm: string;
	segment: string;
	segmentSizeMb: number;
	segmentExists: boolean;
	agent: string;
	syscallServer: string;
	injector: string;
	vmPlugin: string;
	node: string;
}

/** A built artefact's path, or what its lookup says is missing. */
function built(find: () => string): string {
	try {
		return find();
	} catch (e) {
		return `missing (${((e as Error).message.split('\n')[0] ?? '').replace(/\.$/, '')})`;
	}
}

async function runtime(): Promise<Runtime> {
	const [{ defaultBackend }, { Segment }, agent, { syscallServerPath }, vm] = await Promise.all([
		import('@bpftime/handlers'),
		import('@bpftime/shm'),
		import('@bpftime/agent'),
		import('@bpftime/syscall-server'),
		import('@bpftime/vm'),
	]);
	const env = process.env;
	const backendFrom =
		env.BPFTIME_DISABLE_JIT !== undefined && env.BPFTIME_DISABLE_JIT !== '' && env.BPFTIME_DISABLE_JIT !== '0'
			? 'BPFTIME_DISABLE_JIT'
			: env.BPFTIME_VM_NAME
				? 'BPFTIME_VM_NAME'
				: 'default';
	const noLlvm = vm.backendUnavailable('llvm');
	const llvm = noLlvm === undefined ? 'available' : `unavailable (${noLlvm})`;
	const seg = Segment.defaultOptions();
	return {
		backend: defaultBackend(),
		backendFrom,
		llvm,
		segment: seg.name,
		segmentSizeMb: seg.sizeMb,
		segmentExists: Segment.exists({ name: seg.name }),
		agent: built(agent.agentPath),
		syscallServer: built(syscallServerPath),
		injector: built(agent.injectorPath),
		vmPlugin: existsSync(vm.pluginPath) ? vm.pluginPath : `missing (${vm.pluginPath})`,
		node: process.version,
	};
}

const MARK = { true: 'yes ', false: 'no  ', null: 'info' } as const;

export const doctor: Command = {
	name: 'doctor',
	overview: [['doctor [--json]', 'what this machine allows and what bpftime will use']],
	usage: `Usage: bpftime doctor [--json]

Checks what this machine allows bpftime: bpf() (kernel-backed maps and
kernel modes), ptrace (\`bpftime attach\`), huge pages, syscall user
dispatch, protection keys (PKU), tracefs, kernel BTF and /dev/shm; and says
what the runtime will use here: the VM backend (BPFTIME_VM_NAME,
BPFTIME_DISABLE_JIT), the segment (BPFTIME_GLOBAL_SHM_NAME,
BPFTIME_SHM_MEMORY_MB) and the built libraries. Each line of the machine
part starts with yes, no or info.

Options:
  --json   one JSON document: { machine: [{ name, ok, detail, use }],
           runtime: { backend, backendFrom, llvm, segment, segmentSizeMb,
           segmentExists, agent, syscallServer, injector, vmPlugin, node } }

Example:
  bpftime doctor
  bpftime doctor --json | jq '.machine[] | select(.name == "ptrace")'
`,
	async run(args, { io, segment }) {
		const { options, rest } = takeOptions(args, { '--json': 'flag' }, 'doctor', false);
		if (rest.length) throw new UsageError(`doctor: unexpected argument '${rest[0]}'`, 'doctor');
		const caps = capEff();
		const cfg = kernelConfig();
		const machine: Check[] = [
			await bpfCheck(caps),
			ptraceCheck(caps),
			hugePagesCheck(),
			dispatchCheck(cfg),
			pkuCheck(cfg),
			tracefsCheck(),
			vmlinuxCheck(),
			shmCheck(),
		];
		const rt = await runtime();
		if (segment !== undefined) {
			const { Segment } = await import('@bpftime/shm');
			rt.segment = segment;
			rt.segmentExists = Segment.exists({ name: segment });
		}
		if (options['--json'] === true) {
			io.out(`${JSON.stringify({ machine, runtime: rt }, null, 2)}\n`);
			return 0;
		}
		const width = Math.max(...machine.map((c) => c.name.length)) + 2;
		io.out(`Machine (kernel ${release()}):\n`);
		for (const c of machine) {
			io.out(`  ${MARK[String(c.ok) as 'true' | 'false' | 'null']}  ${c.name.padEnd(width)}${c.detail}\n`);
			io.out(`        ${''.padEnd(width)}-> ${c.use}\n`);
		}
		io.out('\nRuntime:\n');
		const rows: [string, string][] = [
			['backend', `${rt.backend} (${rt.backendFrom === 'default' ? 'the default' : `from ${rt.backendFrom}`})`],
			['llvm backend', rt.llvm],
			[
				'segment',
				`'${rt.segment}', ${rt.segmentSizeMb} MiB when created (${rt.segmentExists ? 'exists' : 'does not exist yet'})`,
			],
			['agent', rt.agent],
			['syscall-server', rt.syscallServer],
			['injector', rt.injector],
			['vm plugin', rt.vmPlugin],
			['node', rt.node],
		];
		const w2 = Math.max(...rows.map(([k]) => k.length)) + 2;
		for (const [k, v] of rows) io.out(`  ${k.padEnd(w2)}${v}\n`);
		return 0;
	},
};
