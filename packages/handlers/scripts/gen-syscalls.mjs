#!/usr/bin/env node
// Writes the x86-64 system call numbers by name, from the kernel's uapi
// header <asm/unistd_64.h>, as the two halves of one table of the attach
// vocabulary (see native/include/bpftime/handlers/attach_kinds.hpp):
//
//   src/syscalls-x86-64.ts                                  TypeScript
//   native/include/bpftime/handlers/syscalls_x86_64.hpp     C++
//
// The numbers are the kernel's ABI and never change; new calls only add
// lines. Run it again after a kernel-headers upgrade to pick up new system
// calls (test/syscalls.test.ts fails until the committed files equal a fresh
// generation from the system's header):
//
//   node scripts/gen-syscalls.mjs [--out-dir DIR] [HEADER]
//
// HEADER defaults to /usr/include/x86_64-linux-gnu/asm/unistd_64.h; --out-dir
// writes both files under DIR (same relative paths) instead of the package.
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const DEFAULT_HEADER = '/usr/include/x86_64-linux-gnu/asm/unistd_64.h';
export const TS_FILE = 'src/syscalls-x86-64.ts';
export const HPP_FILE = 'native/include/bpftime/handlers/syscalls_x86_64.hpp';

/** [name, number] of every `#define __NR_<name> <number>` in the header text, by number. */
export function parseUnistd(text, header) {
	const entries = [];
	for (const line of text.split('\n')) {
		const m = /^#define __NR_([a-z0-9_]+)\s+(\d+)$/.exec(line.trim());
		if (m) entries.push([m[1], Number(m[2])]);
	}
	if (entries.length < 300) throw new Error(`${header}: found only ${entries.length} system calls`);
	return entries.sort((a, b) => a[1] - b[1]);
}

/** The two files' contents, by their path in the package. */
export function render(entries) {
	const ts = `// x86-64 system call numbers by name, from <asm/unistd_64.h>: written by
// scripts/gen-syscalls.mjs with its C++ twin syscalls_x86_64.hpp. A syscall
// tracepoint (syscalls/sys_enter_<name>) becomes a bpftime syscall perf event
// for the number of <name>.

export const SYSCALLS_X86_64: Readonly<Record<string, number>> = {
${entries.map(([name, nr]) => `\t${name}: ${nr},`).join('\n')}
};
`;
	const hpp = `// syscalls_x86_64.hpp: x86-64 system call numbers by name, from
// <asm/unistd_64.h>: written by scripts/gen-syscalls.mjs with its TypeScript
// twin src/syscalls-x86-64.ts. The numbers of syscall_tracepoint perf events
// (attach_kinds.hpp).
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

namespace bpftime::handlers {

struct syscall_entry {
	const char *name;
	int32_t nr;
};

// By number, ascending.
inline constexpr syscall_entry SYSCALLS_X86_64[] = {
${entries.map(([name, nr]) => `\t{ "${name}", ${nr} },`).join('\n')}
};

// The number of system call \`name\` ("openat"), or nullopt.
constexpr std::optional<int32_t> syscall_number(std::string_view name) noexcept
{
	for (const syscall_entry &e : SYSCALLS_X86_64)
		if (name == e.name)
			return e.nr;
	return std::nullopt;
}

// The name of system call \`nr\`, or nullptr.
constexpr const char *syscall_name(int32_t nr) noexcept
{
	for (const syscall_entry &e : SYSCALLS_X86_64)
		if (e.nr == nr)
			return e.name;
	return nullptr;
}

} // namespace bpftime::handlers
`;
	return { [TS_FILE]: ts, [HPP_FILE]: hpp };
}

function main(argv) {
	let outDir = fileURLToPath(new URL('..', import.meta.url));
	let header = DEFAULT_HEADER;
	for (let i = 0; i < argv.length; i++) {
		if (argv[i] === '--out-dir') outDir = argv[++i];
		else header = argv[i];
	}
	const entries = parseUnistd(readFileSync(header, 'utf8'), header);
	for (const [file, text] of Object.entries(render(entries))) {
		const out = join(outDir, file);
		mkdirSync(dirname(out), { recursive: true });
		writeFileSync(out, text);
		console.log(`wrote ${entries.length} system calls to ${out}`);
	}
}

if (process.argv[1] === fileURLToPath(import.meta.url)) main(process.argv.slice(2));
