#!/usr/bin/env node
// Writes src/syscalls-x86-64.ts, the x86-64 system call numbers by name,
// from the kernel's uapi header <asm/unistd_64.h> (the numbers are the
// kernel's ABI and never change; new calls only add lines). Run it again
// after a kernel-headers upgrade to pick up new system calls:
//
//   node scripts/gen-syscalls.mjs [/usr/include/x86_64-linux-gnu/asm/unistd_64.h]
import { readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const header = process.argv[2] ?? '/usr/include/x86_64-linux-gnu/asm/unistd_64.h';
const entries = [];
for (const line of readFileSync(header, 'utf8').split('\n')) {
	const m = /^#define __NR_([a-z0-9_]+)\s+(\d+)$/.exec(line.trim());
	if (m) entries.push([m[1], Number(m[2])]);
}
if (entries.length < 300) throw new Error(`${header}: found only ${entries.length} system calls`);
entries.sort((a, b) => a[1] - b[1]);
const out = fileURLToPath(new URL('../src/syscalls-x86-64.ts', import.meta.url));
const body = entries.map(([name, nr]) => `\t${name}: ${nr},`).join('\n');
writeFileSync(
	out,
	`// x86-64 system call numbers by name, from <asm/unistd_64.h>: written by
// scripts/gen-syscalls.mjs. A syscall tracepoint (syscalls/sys_enter_<name>)
// becomes a bpftime syscall perf event for the number of <name>.

export const SYSCALLS_X86_64: Readonly<Record<string, number>> = {
${body}
};
`,
);
console.log(`wrote ${entries.length} system calls to ${out}`);
