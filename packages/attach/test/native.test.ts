import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildDriver, type Driver, type Layout } from './build-driver.js';

const run = promisify(execFile);
const work = mkdtempSync(join(tmpdir(), 'bpftime-attach-test-'));
let driver: Driver;

beforeAll(async () => {
	driver = await buildDriver(work);
}, 120_000);
afterAll(() => rmSync(work, { recursive: true, force: true }));

// Runs one scenario of native/test/attach_driver.cpp in its own process;
// the driver prints a line per check and exits 1 if any failed.
async function scenario(layout: Layout, name: string, ...args: string[]): Promise<string[]> {
	const r = await run(driver[layout], [name, ...args], {
		env: { ...process.env, SPDLOG_LEVEL: 'info' },
		maxBuffer: 16 << 20,
	}).catch((e: { stdout?: string; stderr?: string; message: string }) => {
		throw new Error(`${name} (${layout}) failed:\n${e.stdout ?? ''}\n${e.stderr ?? e.message}`);
	});
	const lines = r.stdout.trim().split('\n');
	expect(lines.filter((l) => l.startsWith('FAIL'))).toEqual([]);
	expect(lines.at(-1)).toMatch(/^[1-9]\d* passed, 0 failed$/);
	return lines;
}

describe.each(['pie', 'nopie'] as Layout[])('probes in a %s executable', (layout) => {
	it('hooks every prologue shape with exact arguments, return values, ip and sp, and restores the bytes', async () => {
		const lines = await scenario(layout, 'prologues');
		// The mechanism each shape needs, from the issue: a jump where five
		// bytes can move, a breakpoint where they cannot.
		const mechanism = (fn: string) => lines.find((l) => l.startsWith(`ok ${fn}: mechanism `))?.split(' ')[3];
		for (const fn of [
			'p_endbr64',
			'p_push_rbp',
			'p_sub_rsp',
			'p_rip_lea',
			'p_rip_mov',
			'p_call_first',
			'p_jcc_first',
		]) {
			expect(mechanism(fn), fn).toBe('inline_jump');
		}
		for (const fn of ['p_short', 'p_ret_only', 'p_jump_back']) {
			expect(mechanism(fn), fn).toBe('breakpoint');
		}
	});

	// Scenarios whose driver checks are the whole test: [title, scenario, timeout].
	const checkedByDriver = (rows: [string, string, number?][]) => {
		for (const [title, name, timeout] of rows) {
			it(
				title,
				async () => {
					await scenario(layout, name);
				},
				timeout,
			);
		}
	};

	checkedByDriver([
		['counts exactly with 8 threads calling the hooked functions', 'threads'],
		['reports every return of a recursive function, innermost first, on several threads', 'recursion'],
		['survives longjmp out of probed frames and counts their returns as missed', 'longjmp'],
		['reports returns of a signal handler on a sigaltstack and of the code it interrupted', 'altstack'],
		['skips the function and returns the chosen value with an override', 'override'],
		['hooks a function of a shared library, by symbol and by file offset', 'shared'],
	]);

	it('rewrites only the sites it can write at once while a thread blocks every signal, and that thread lives on', async () => {
		await scenario(layout, 'syscalls-masked');
	});

	it('hooks every system call, of threads started later and of a library dlopen()ed later, with the kernel-layout registers, skips and exact counts', async () => {
		await scenario(layout, 'syscalls', driver.dlopenLib);
	});

	it('attaches a pending probe when dlopen loads its library', async () => {
		await scenario(layout, 'dlopen', driver.dlopenLib);
	});

	it('refuses bad targets with a clear errno and leaves the process unharmed', async () => {
		const lines = await scenario(layout, 'errors');
		expect(lines.find((l) => l.includes('EFAULT'))).toMatch(/not in an executable mapping/);
	});

	checkedByDriver([
		['emits trampolines that decode as designed, with ymm and with xmm saves', 'encodings'],
		['serialises attach and detach from several threads at once', 'parallel-attach', 60_000],
		['keeps the probes in a forked child, apart from the parent', 'fork'],
		['allocates nothing on a probe hit', 'allocations'],
		['patches safely while other threads call the function, and restores the bytes', 'concurrent', 60_000],
	]);
});
