// Terminal output shared by the registry commands: colour (only when stdout
// is a terminal and NO_COLOR is unset, https://no-color.org) and aligned
// tables.
import type { Io } from '../command.js';

/** Whether the CLI's own stdout should get colour: a TTY, and NO_COLOR unset or empty. */
export function colorWanted(stream: { isTTY?: boolean }, env: NodeJS.ProcessEnv = process.env): boolean {
	return stream.isTTY === true && !env.NO_COLOR;
}

const CODES = { bold: 1, dim: 2, red: 31, green: 32, yellow: 33, cyan: 36 } as const;
export type Style = keyof typeof CODES;

/** `text` in a style when io wants colour; the text unchanged otherwise. */
export function paint(io: Io, style: Style, text: string): string {
	return io.color ? `\x1b[${CODES[style]}m${text}\x1b[0m` : text;
}

export interface Column {
	header: string;
	/** Right-align (numbers). */
	right?: boolean;
}

/**
 * Rows under a header, each column as wide as its widest cell, two spaces
 * apart; the last column is not padded. The header is bold on a terminal.
 */
export function table(io: Io, columns: readonly Column[], rows: readonly (readonly string[])[]): string {
	const widths = columns.map((c, i) => Math.max(c.header.length, ...rows.map((r) => (r[i] ?? '').length)));
	const line = (cells: readonly string[]) =>
		cells
			.map((cell, i) => {
				const last = i === cells.length - 1;
				const w = widths[i] ?? 0;
				if (columns[i]?.right) return cell.padStart(w);
				return last ? cell : cell.padEnd(w);
			})
			.join('  ');
	const head = line(columns.map((c) => c.header));
	return `${paint(io, 'bold', head)}\n${rows.map((r) => `${line(r)}\n`).join('')}`;
}
