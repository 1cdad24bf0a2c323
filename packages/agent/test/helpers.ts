// What the agent's tests share: fixtures built at test time (clang for the
// eBPF objects, cc for the target and the library it dlopen()s) and a
// registry with the userspace map types in a segment of its own. Segments,
// child processes and builds come from @bpftime/test-support.
import { join } from 'node:path';
import { Registry } from '@bpftime/handlers';
import '@bpftime/maps-userspace';
import { Segment } from '@bpftime/shm';
import * as support from '@bpftime/test-support';

export { Proc } from '@bpftime/test-support';

const fixtureDir = new URL('./fixtures/', import.meta.url).pathname;

export interface Fixtures {
	/** test/fixtures/target.c, built once per test file. */
	target(): Promise<string>;
	/** test/fixtures/<name>.bpf.c, built once per test file. */
	bpf(name: string): Promise<string>;
	/** test/fixtures/lib.c as a shared library (the target dlopen()s it). */
	lib(): Promise<string>;
	/** test/fixtures/segv_target.c: a program with SIGSEGV handlers of its own. */
	segvTarget(): Promise<string>;
	/** test/fixtures/sigbus_target.c: passes target_fn a pointer whose read raises SIGBUS. */
	sigbusTarget(): Promise<string>;
	/** test/fixtures/syscall-victim.c, the system call tests' target. */
	syscallVictim(): Promise<string>;
}

export function useFixtures(): Fixtures {
	const { dir, once } = support.useBuildDir('agent');
	const cc = async (out: string, args: string[]) => {
		await support.run('cc', [...args, '-o', join(dir, out)]);
		return join(dir, out);
	};
	return {
		target: () => once('target', () => cc('target', ['-O2', '-pthread', join(fixtureDir, 'target.c'), '-ldl'])),
		lib: () => once('lib', () => cc('libprobed.so', ['-O2', '-shared', '-fPIC', join(fixtureDir, 'lib.c')])),
		segvTarget: () => once('segv_target', () => cc('segv_target', ['-O2', join(fixtureDir, 'segv_target.c')])),
		sigbusTarget: () => once('sigbus_target', () => cc('sigbus_target', ['-O2', join(fixtureDir, 'sigbus_target.c')])),
		syscallVictim: () =>
			once('syscall-victim', () => cc('syscall-victim', ['-O2', '-pthread', join(fixtureDir, 'syscall-victim.c')])),
		bpf: (name) =>
			once(`bpf:${name}`, () =>
				support.compileBpf('clang', join(fixtureDir, `${name}.bpf.c`), join(dir, `${name}.bpf.o`), [
					'-D__TARGET_ARCH_x86',
				]),
			),
	};
}

/** A fresh segment name, removed (if it was created) when the current test finishes. */
export const segmentName = (): string => support.uniqueSegmentName('agent');

/** A registry in a new segment that is closed and removed when the current test finishes. */
export function newRegistry(): { name: string; registry: Registry } {
	const { name, reg } = support.freshRegistry({ Segment, Registry }, 'agent');
	return { name, registry: reg };
}

/** Runs a command without the agent: the reference a run with the agent is compared with. */
export function runPlain(command: string, args: string[], env: NodeJS.ProcessEnv = process.env) {
	return new support.Proc(support.startProcess(command, args, { env })).done();
}
