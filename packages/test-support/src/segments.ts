// Segments and registries private to one test, gone when it finishes.
//
// This package sits below every @bpftime package in the test graph, so it
// does not import @bpftime/shm or @bpftime/handlers (that would be a cycle:
// their own tests use it). Callers pass their Segment and Registry classes.
import { rmSync } from 'node:fs';
import { onTestFinished } from 'vitest';

let counter = 0;

/**
 * A segment name private to this test (`bpftime_test_<tag>_<pid>_<n>`). When
 * the test finishes the segment is removed if it exists: POSIX shared memory
 * on Linux is the file /dev/shm/<name>, and unlinking it is shm_unlink(3),
 * what `Segment.remove()` calls.
 */
export function uniqueSegmentName(tag: string): string {
	const name = `bpftime_test_${tag}_${process.pid}_${counter++}`;
	onTestFinished(() => rmSync(`/dev/shm/${name}`, { force: true }));
	return name;
}

/** The two classes `freshRegistry` needs: @bpftime/shm's Segment and @bpftime/handlers' Registry. */
export interface RegistryClasses<S extends { close(): void }, R extends { close(): void }, O> {
	Segment: { create(options: { name: string; sizeMb?: number }): S };
	Registry: { create(seg: S, options?: O): R };
}

/** A new segment (8 MiB unless `sizeMb` says) and a registry in it, both closed and removed when the test finishes. */
export function freshRegistry<S extends { close(): void }, R extends { close(): void }, O extends object>(
	classes: RegistryClasses<S, R, O>,
	tag: string,
	options: O & { sizeMb?: number } = {} as O,
): { seg: S; reg: R; name: string } {
	const name = uniqueSegmentName(tag);
	const seg = classes.Segment.create({ name, sizeMb: options.sizeMb ?? 8 });
	const reg = classes.Registry.create(seg, options);
	onTestFinished(() => {
		reg.close();
		seg.close();
	});
	return { seg, reg, name };
}
