// Runs the installed LLVM tools for the assembler tests and parses what
// llvm-objdump prints. Tools are looked up on PATH by their versioned names
// (clang-14, llvm-objdump-19, ...), as Debian and apt.llvm.org install them.

import { execFile } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import { delimiter, join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

/** Absolute path of an executable on PATH, or undefined. */
export function findTool(name: string): string | undefined {
	for (const dir of (process.env.PATH ?? '').split(delimiter)) {
		if (dir === '') continue;
		const candidate = join(dir, name);
		try {
			accessSync(candidate, constants.X_OK);
			return candidate;
		} catch {
			// not in this directory
		}
	}
	return undefined;
}

export async function runTool(tool: string, args: string[]): Promise<string> {
	const { stdout } = await run(tool, args, { maxBuffer: 256 * 1024 * 1024 });
	return stdout;
}

/** One instruction line of `llvm-objdump -d`. */
export interface ObjdumpLine {
	/** Slot index printed before the colon. */
	index: number;
	/** Raw bytes (8, or 16 for lddw); empty with --no-show-raw-insn. */
	bytes: Buffer;
	/** The instruction text, as printed. */
	text: string;
}

/** Instruction lines of each disassembled section, in order. */
export type ObjdumpSections = Map<string, ObjdumpLine[]>;

const SECTION = /^Disassembly of section (.+):$/;
const WITH_BYTES = /^\s*(\d+):\t((?:[0-9a-f]{2} )*[0-9a-f]{2})\s*\t(.*)$/;
const WITHOUT_BYTES = /^\s*(\d+):\t(.*)$/;

export function parseObjdump(output: string, rawBytes: boolean): ObjdumpSections {
	const sections: ObjdumpSections = new Map();
	let current: ObjdumpLine[] | undefined;
	for (const line of output.split('\n')) {
		const section = SECTION.exec(line);
		if (section) {
			current = [];
			sections.set(section[1] as string, current);
			continue;
		}
		if (current === undefined) continue;
		const m = (rawBytes ? WITH_BYTES : WITHOUT_BYTES).exec(line);
		if (!m) continue;
		current.push({
			index: Number(m[1]),
			bytes: rawBytes ? Buffer.from((m[2] as string).replace(/ /g, ''), 'hex') : Buffer.alloc(0),
			text: (rawBytes ? m[3] : m[2]) as string,
		});
	}
	return sections;
}

/**
 * The instruction text with runs of blanks made one space and, on branches,
 * the `<symbol+off>` target annotation dropped: llvm-objdump derives it from
 * the symbol table, not from the instruction.
 */
export function normalize(text: string): string {
	const spaced = text.replace(/\s+/g, ' ').trim();
	return /\bgoto/.test(spaced) ? spaced.replace(/ <[^<>\s]+>$/, '') : spaced;
}
