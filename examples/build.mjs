// What the demos (and packages/cli's test of examples/malloc) share: the
// bpftime command of the workspace, and the build of an example's eBPF
// object and victim program. Plain JavaScript, so that `node demo.mjs` runs
// with no build step of its own; build.d.mts types it for the TypeScript
// tests.
import { execFileSync, spawn } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * packages/cli/dist/cli.js: the bpftime command as `pnpm build` leaves it;
 * BPFTIME_CLI names another (an installed `bpftime`, for the packed install test).
 */
export const cli = process.env.BPFTIME_CLI || fileURLToPath(new URL('../packages/cli/dist/cli.js', import.meta.url));

/**
 * `bpftime --segment <segment> …` as a function: runs the command to its
 * end and returns its stdout; throws (execFileSync's error) when it exits
 * non-zero. `options` go to execFileSync (`env`, …).
 */
export function bpftimeIn(segment) {
	return (args, options = {}) =>
		execFileSync(process.execPath, [cli, '--segment', segment, ...args], { encoding: 'utf8', ...options });
}

// Runs a build tool with its output on ours; rejects naming the command when
// it fails.
function tool(command, args) {
	return new Promise((resolve, reject) => {
		const child = spawn(command, args, { stdio: ['ignore', 'inherit', 'inherit'] });
		child.once('error', reject);
		child.once('exit', (code, signal) => {
			if (code === 0) resolve();
			else reject(new Error(`${command} ${args.join(' ')}: exited (${code ?? signal})`));
		});
	});
}

/**
 * Builds the example in folder `here`: `bpfSource` (a *.bpf.c there) with
 * clang to `<dir>/<name>.bpf.o`, and `victim.c` there with cc to
 * `<dir>/victim`, both at once. Resolves with the two paths.
 */
export async function buildExample(here, bpfSource, dir) {
	const object = join(dir, bpfSource.replace(/\.c$/, '.o'));
	const victim = join(dir, 'victim');
	await Promise.all([
		tool('clang', [
			'-target',
			'bpf',
			'-O2',
			'-g',
			'-D__TARGET_ARCH_x86',
			'-I/usr/include/x86_64-linux-gnu',
			'-c',
			join(here, bpfSource),
			'-o',
			object,
		]),
		tool('cc', ['-O2', '-o', victim, join(here, 'victim.c')]),
	]);
	return { object, victim };
}
