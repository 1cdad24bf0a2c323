// The probes' log lines in a Node process: the addon is the edge that reads
// SPDLOG_LEVEL and BPFTIME_LOG_OUTPUT, and the core's lines follow what it
// configured, although the core and the addon are different shared objects.
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const entry = fileURLToPath(new URL('../dist/index.js', import.meta.url));
const script = `
import { attachProbe } from ${JSON.stringify(entry)};
const p = attachProbe({ kind: 'uprobe', module: 'libc.so.6', symbol: 'getuid' });
process.getuid();
p.close();
`;

function run(env: Record<string, string>) {
	const base = { ...process.env };
	delete base.SPDLOG_LEVEL;
	delete base.BPFTIME_LOG_OUTPUT;
	const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], {
		env: { ...base, ...env },
		encoding: 'utf8',
	});
	if (r.status !== 0) throw new Error(`node exited ${r.status}: ${r.stderr}`);
	const lines = (s: string) => s.split('\n').filter((l) => l.startsWith('[bpftime attach]'));
	return { stdout: lines(r.stdout), stderr: lines(r.stderr) };
}

const probeLine = /^\[bpftime attach\] \[info\] probe \d+: uprobe at libc\.so\.6:getuid\+0x0 .*: inline_jump/;

describe('the log of probes attached through the addon', () => {
	it('writes info lines on stderr by default', () => {
		const r = run({});
		expect(r.stderr.some((l) => probeLine.test(l))).toBe(true);
		expect(r.stdout).toEqual([]);
	});

	it('writes nothing with SPDLOG_LEVEL=off', () => {
		expect(run({ SPDLOG_LEVEL: 'off' })).toEqual({ stdout: [], stderr: [] });
	});

	it('writes to stdout with BPFTIME_LOG_OUTPUT=stdout', () => {
		const r = run({ BPFTIME_LOG_OUTPUT: 'stdout', SPDLOG_LEVEL: 'info' });
		expect(r.stdout.some((l) => probeLine.test(l))).toBe(true);
		expect(r.stderr).toEqual([]);
	});
});
