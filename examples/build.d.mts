// Types of build.mjs, for the TypeScript tests that import it.
import type { ExecFileSyncOptions } from 'node:child_process';

/** packages/cli/dist/cli.js: the bpftime command as `pnpm build` leaves it. */
export const cli: string;

/** `bpftime --segment <segment> …`: runs to the end, returns stdout, throws when it exits non-zero. */
export function bpftimeIn(segment: string): (args: string[], options?: ExecFileSyncOptions) => string;

/** Builds `<here>/<bpfSource>` and `<here>/victim.c` into `dir`; resolves with the two paths. */
export function buildExample(here: string, bpfSource: string, dir: string): Promise<{ object: string; victim: string }>;
