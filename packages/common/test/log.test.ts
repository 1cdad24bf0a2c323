// The one native log (native/src/log.cpp): level and output selection from
// SPDLOG_LEVEL and BPFTIME_LOG_OUTPUT, and the line format, through a small
// program built here that configures it as the agent's constructor does.
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const native = fileURLToPath(new URL('../native', import.meta.url));
const work = mkdtempSync(join(tmpdir(), 'bpftime-log-test-'));
const driver = join(work, 'log-driver');

beforeAll(() => {
	execFileSync('c++', [
		'-std=c++20',
		'-O1',
		`-I${join(native, 'include')}`,
		join(native, 'src/log.cpp'),
		join(native, 'test/log_driver.cpp'),
		'-o',
		driver,
	]);
}, 120_000);
afterAll(() => rmSync(work, { recursive: true, force: true }));

function run(env: Record<string, string | undefined>) {
	const base = { ...process.env };
	delete base.SPDLOG_LEVEL;
	delete base.BPFTIME_LOG_OUTPUT;
	const r = spawnSync(driver, [], { env: { ...base, ...env }, encoding: 'utf8' });
	if (r.status !== 0) throw new Error(`log driver exited ${r.status}: ${r.stderr}`);
	const lines = (s: string) => s.split('\n').filter(Boolean);
	return { pid: r.pid, stdout: lines(r.stdout), stderr: lines(r.stderr) };
}

const levels = ['trace', 'debug', 'info', 'warning', 'error', 'critical'];
const from = (first: string) => levels.slice(levels.indexOf(first));
/** The lines the driver writes at these levels, both sources, in its order. */
const expected = (pid: number, shown: string[]) =>
	shown.flatMap((l) => [
		`[bpftime-agent ${pid}] [${l}] agent line at ${l}`,
		`[bpftime attach] [${l}] attach line at ${l}`,
	]);

describe('the native log', () => {
	it.each([
		[undefined, from('info')],
		['trace', from('trace')],
		['debug', from('debug')],
		['info', from('info')],
		['warn', from('warning')],
		['warning', from('warning')],
		['err', from('error')],
		['error', from('error')],
		['critical', from('critical')],
		['off', []],
		['bogus', from('info')],
		['debug,attach=off', from('debug')],
		['agent=err,attach=trace', from('error')],
	])('with SPDLOG_LEVEL=%s writes the lines of the levels from that one up, on stderr', (level, shown) => {
		const r = run({ SPDLOG_LEVEL: level });
		expect(r.stderr).toEqual(expected(r.pid, shown));
		expect(r.stdout).toEqual([]);
	});

	it.each([['console'], ['stderr'], ['']])('with BPFTIME_LOG_OUTPUT=%j writes to stderr', (output) => {
		const r = run({ BPFTIME_LOG_OUTPUT: output, SPDLOG_LEVEL: 'warn' });
		expect(r.stderr).toEqual(expected(r.pid, from('warning')));
		expect(r.stdout).toEqual([]);
	});

	it('with BPFTIME_LOG_OUTPUT=stdout writes to stdout', () => {
		const r = run({ BPFTIME_LOG_OUTPUT: 'stdout', SPDLOG_LEVEL: 'warn' });
		expect(r.stdout).toEqual(expected(r.pid, from('warning')));
		expect(r.stderr).toEqual([]);
	});

	it('with BPFTIME_LOG_OUTPUT=<file> appends to the file, nothing on stderr or stdout', () => {
		const file = join(work, 'appended.log');
		const a = run({ BPFTIME_LOG_OUTPUT: file, SPDLOG_LEVEL: 'error' });
		const b = run({ BPFTIME_LOG_OUTPUT: file, SPDLOG_LEVEL: 'critical' });
		expect([a.stdout, a.stderr, b.stdout, b.stderr]).toEqual([[], [], [], []]);
		expect(readFileSync(file, 'utf8').split('\n').filter(Boolean)).toEqual([
			...expected(a.pid, from('error')),
			...expected(b.pid, from('critical')),
		]);
	});

	it('expands ~/ in BPFTIME_LOG_OUTPUT to $HOME', () => {
		const r = run({ BPFTIME_LOG_OUTPUT: '~/home.log', HOME: work, SPDLOG_LEVEL: 'critical' });
		expect(r.stderr).toEqual([]);
		expect(readFileSync(join(work, 'home.log'), 'utf8').split('\n').filter(Boolean)).toEqual(
			expected(r.pid, ['critical']),
		);
	});

	it('falls back to stderr, saying why at warning level, when the file cannot be opened', () => {
		const bad = join(work, 'no-such-dir', 'x.log');
		const r = run({ BPFTIME_LOG_OUTPUT: bad, SPDLOG_LEVEL: 'warn' });
		expect(r.stderr).toEqual([
			`[bpftime-agent ${r.pid}] [warning] BPFTIME_LOG_OUTPUT: cannot open '${bad}': No such file or directory; logging to stderr`,
			...expected(r.pid, from('warning')),
		]);
		const quiet = run({ BPFTIME_LOG_OUTPUT: bad, SPDLOG_LEVEL: 'error' });
		expect(quiet.stderr).toEqual(expected(quiet.pid, from('error')));
	});
});
