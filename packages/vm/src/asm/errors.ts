// The error the assembler, disassembler and encoder throw for bad input.
//
// It carries the same `code` and `errno` fields as the project's BpftimeError
// (EINVAL, 22), so callers can test `err.code === 'EINVAL'` whichever class
// they receive. For assembler errors `line` is the 1-based line number and
// `text` the offending source line; both also appear in the message:
//
//   line 3: unknown register 'r11' in 'r11 = 1'

export class AsmError extends Error {
	readonly code = 'EINVAL';
	readonly errno = 22;

	constructor(
		message: string,
		readonly line?: number,
		readonly text?: string,
	) {
		super(message);
		this.name = 'AsmError';
	}
}
