// The demos of examples/ that this package's command runs, run as users run
// them (node examples/<name>/demo.mjs), shortened where they take a duration.
import { execFile } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';

const run = promisify(execFile);
const examples = new URL('../../../examples/', import.meta.url).pathname;

async function demo(name: string, args: string[] = [], env: NodeJS.ProcessEnv = process.env) {
	const before = new Set(readdirSync('/dev/shm'));
	const r = await run(process.execPath, [`${examples}${name}/demo.mjs`, ...args], { encoding: 'utf8', env });
	const left = readdirSync('/dev/shm').filter((f) => !before.has(f) && f.includes('demo'));
	return { ...r, left };
}

describe('examples', { timeout: 60_000 }, () => {
	it('malloc: prints the growing malloc count of the victim each second and removes its segment', async () => {
		const { stdout, left } = await demo('malloc', ['2']);
		const counts = [...stdout.matchAll(/^t= *(\d+)s {2}malloc calls of victim \d+: (\d+)$/gm)].map((m) => Number(m[2]));
		expect(counts).toHaveLength(2);
		expect(counts[0]).toBeGreaterThan(0);
		expect(counts[1]).toBeGreaterThan(counts[0] as number);
		expect(stdout).toMatch(/segment 'bpftime_malloc_demo_\d+' removed/);
		expect(left).toEqual([]);
	});

	it('malloc: exits 1, saying so, when the count does not grow, and still removes its segment', async () => {
		// A VM backend name that names none: the agent cannot instantiate the program, so nothing counts.
		const before = new Set(readdirSync('/dev/shm'));
		const err = await demo('malloc', ['2'], { ...process.env, BPFTIME_VM_NAME: 'no-such-vm' }).catch((e) => e);
		expect(err.code).toBe(1);
		expect(err.stderr).toMatch(/malloc demo FAILED: the count did not grow between t=0s and t=1s \(0 -> 0\)/);
		expect(err.stdout).toMatch(/segment 'bpftime_malloc_demo_\d+' removed/);
		expect(readdirSync('/dev/shm').filter((f) => !before.has(f) && f.startsWith('bpftime_malloc_demo_'))).toEqual([]);
	});

	it('uretprobe-latency: measures every call of the function into the histogram', async () => {
		const { stdout, left } = await demo('uretprobe-latency', ['1']);
		const made = /: (\d+) calls of work\(\)$/m.exec(stdout)?.[1];
		expect(made).toBeDefined();
		expect(stdout).toContain(`\n${made} calls of work() measured\n`);
		expect(stdout).toMatch(/^ +8 -> 15 +: [1-9]\d* +\|\**/m);
		expect(left).toEqual([]);
	});

	it('libbpf-tool: an unmodified libbpf tool under bpftime load counts every call the victim makes', async () => {
		const { stdout, left } = await demo('libbpf-tool', ['400']);
		expect(stdout).toMatch(/^ {2}attached to .*victim:work$/m);
		expect(stdout).toContain('  x % 4 == 0: 100 calls\n');
		expect(stdout).toContain('\n400 calls of work() counted by the tool\n');
		expect(left).toEqual([]);
	});

	it('override: makes check_access(1000) return 1 without running it', async () => {
		const { stdout, left } = await demo('override');
		expect(stdout).toContain('$ ./victim\nuid 0: allowed\nuid 1000: denied\nuid 1001: denied\n');
		expect(stdout).toContain('$ bpftime start ./victim\nuid 0: allowed\nuid 1000: allowed\nuid 1001: denied\n');
		expect(stdout).toContain('calls overridden: 1\n');
		expect(left).toEqual([]);
	});
});
