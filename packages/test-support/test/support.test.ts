import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
	compileBpf,
	findClang,
	finished,
	Proc,
	startProcess,
	uniqueSegmentName,
	useBuildDir,
	waitForLine,
} from '../src/index.js';

/** `node -e code` as a test's child. */
const node = (code: string) => startProcess(process.execPath, ['-e', code]);

describe('child processes', () => {
	it('resolves waitForLine with the first line that starts with the prefix', async () => {
		const child = node("console.log('noise'); console.log('ready 42'); setInterval(() => {}, 1000);");
		expect(await waitForLine(child, 'ready')).toBe('ready 42');
	});

	it('rejects waitForLine with the child’s stderr when it exits before the line', async () => {
		const child = node("console.error('no luck'); process.exit(3);");
		await expect(waitForLine(child, /^never$/)).rejects.toThrow(/exited \(3\).*no luck/s);
	});

	it('lets Proc.waitFor find a line printed before the call', async () => {
		const p = new Proc(node("console.log('early'); console.error('err line');"));
		await p.closed;
		expect(await p.waitFor('stdout', /^early$/)).toBe('early');
		expect(await p.waitFor('stderr', /^err/)).toBe('err line');
	});

	it('gives the exit code and output of a finished child', async () => {
		const r = await finished(node("process.stdout.write('out'); process.stderr.write('err'); process.exit(7);"));
		expect(r).toEqual({ code: 7, signal: null, stdout: 'out', stderr: 'err' });
	});
});

describe('segment names', () => {
	let previous = '';

	it('names a segment for this process and test', () => {
		previous = uniqueSegmentName('names');
		expect(previous).toMatch(new RegExp(`^bpftime_test_names_${process.pid}_\\d+$`));
		expect(uniqueSegmentName('names')).not.toBe(previous);
		writeFileSync(`/dev/shm/${previous}`, 'stands in for a segment');
	});

	it('removes the segment of a finished test', () => {
		expect(previous).not.toBe('');
		expect(existsSync(`/dev/shm/${previous}`)).toBe(false);
	});
});

describe('fixture builds', () => {
	const build = useBuildDir('support');
	const clang = findClang();

	it('compiles an eBPF C source once per key', async (ctx) => {
		if (!clang) ctx.skip('no clang on PATH (clang, clang-19, clang-14)');
		const source = join(build.dir, 'ret.bpf.c');
		writeFileSync(source, 'int f(void *ctx) { return 0; }\n');
		let builds = 0;
		const make = () => {
			builds++;
			return compileBpf(clang as string, source, join(build.dir, 'ret.bpf.o'));
		};
		const [a, b] = await Promise.all([build.once('ret', make), build.once('ret', make)]);
		expect(a).toBe(join(build.dir, 'ret.bpf.o'));
		expect(b).toBe(a);
		expect(builds).toBe(1);
		expect(existsSync(a)).toBe(true);
	});
});
