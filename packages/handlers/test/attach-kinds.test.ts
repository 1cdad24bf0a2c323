import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it, onTestFinished } from 'vitest';
import { ATTACH_KINDS, HOOK_FAMILIES, PERF_EVENT_TYPES, SYSCALLS_X86_64 } from '../src/attach-kinds.js';
import { native } from '../src/native.js';

const pkg = fileURLToPath(new URL('..', import.meta.url));
// What scripts/gen-syscalls.mjs reads and writes.
const HEADER = '/usr/include/x86_64-linux-gnu/asm/unistd_64.h';
const GENERATED = ['src/syscalls-x86-64.ts', 'native/include/bpftime/handlers/syscalls_x86_64.hpp'];

describe('the attach vocabulary', () => {
	it('names the perf event types in TypeScript as the C++ X-macro does', () => {
		expect([...PERF_EVENT_TYPES]).toEqual(native.perfEventTypeNames);
	});

	it('names the hook families in TypeScript as the C++ X-macro does', () => {
		expect([...HOOK_FAMILIES]).toEqual(native.hookFamilyNames);
	});

	it('gives every attach kind the same name and hook family in TypeScript as in C++', () => {
		expect(ATTACH_KINDS.map((k) => ({ name: k.name, family: k.family }))).toEqual(native.attachKinds);
	});

	it('keeps the JSON names of the perf event types that existing exports use', () => {
		expect(PERF_EVENT_TYPES.slice(0, 4)).toEqual(['uprobe', 'uretprobe', 'syscall_tracepoint', 'custom']);
	});

	it('has the same system call table in TypeScript as in C++', () => {
		expect(native.syscallsX86_64).toEqual({ ...SYSCALLS_X86_64 });
		expect(SYSCALLS_X86_64.openat).toBe(257);
	});
});

const haveHeader = existsSync(HEADER);
describe.skipIf(!haveHeader)(
	haveHeader ? 'the generated system call table' : `the generated system call table (skipped: no ${HEADER} here)`,
	() => {
		it(`equals a fresh generation from ${HEADER}`, () => {
			const out = mkdtempSync(join(tmpdir(), 'bpftime-gen-syscalls-'));
			onTestFinished(() => rmSync(out, { recursive: true, force: true }));
			execFileSync(process.execPath, [join(pkg, 'scripts/gen-syscalls.mjs'), '--out-dir', out, HEADER]);
			for (const file of GENERATED) {
				expect(readFileSync(join(pkg, file), 'utf8'), `${file}: run node scripts/gen-syscalls.mjs`).toBe(
					readFileSync(join(out, file), 'utf8'),
				);
			}
		});
	},
);
