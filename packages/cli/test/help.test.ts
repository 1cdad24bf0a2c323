// The help of every command of the table, and the exit statuses of wrong
// arguments, as users see them (node dist/cli.js in its own process).
import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { COMMANDS } from '../src/commands/index.js';

const cli = new URL('../dist/cli.js', import.meta.url).pathname;

function bpftime(args: string[]) {
	const r = spawnSync(process.execPath, [cli, ...args], { encoding: 'utf8' });
	return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe('help', { timeout: 60_000 }, () => {
	it.each(COMMANDS.map((c) => [c.name]))('bpftime %s --help prints its usage with an example, exit 0', (name) => {
		const r = bpftime([name, '--help']);
		expect(r.code).toBe(0);
		expect(r.stdout).toMatch(new RegExp(`^Usage: bpftime ${name}\\b`));
		expect(r.stdout).toMatch(/\nExamples?:\n {2}\S/);
		// Every example line runs bpftime (or builds what it needs first).
		const examples = r.stdout.split(/\nExamples?:\n/)[1] as string;
		expect(examples).toMatch(new RegExp(`bpftime (--segment \\S+ )?${name}\\b`));
		expect(bpftime(['help', name]).stdout).toBe(r.stdout);
	});

	it('exits 2 with the usage for an unknown command, also with --help', () => {
		for (const args of [['frob'], ['frob', '--help'], ['--help', 'frob']]) {
			const r = bpftime(args);
			expect(r.code).toBe(2);
			expect(r.stdout).toBe('');
			expect(r.stderr).toMatch(/^bpftime: unknown command 'frob'\n\nUsage: bpftime /);
		}
	});

	it.each([
		['load', ['load', '--vm', 'ebpf', 'x.o'], /load: --vm: expected interpreter, jit or llvm but received 'ebpf'/],
		['load', ['load', '--shm-size', '0', 'x.o'], /load: --shm-size: expected a size in MiB from 1 to 1048576/],
		['start', ['start', '--shm-size', 'lots', 'true'], /start: --shm-size: expected a size in MiB/],
		['start', ['start', '--vm'], /option '--vm' needs a value/],
	])('%s: exits 2 for a bad VM option (%j)', (name, args, re) => {
		const r = bpftime(args);
		expect(r.code).toBe(2);
		expect(r.stderr).toMatch(re);
		expect(r.stderr).toContain(`Usage: bpftime ${name}`);
	});
});
