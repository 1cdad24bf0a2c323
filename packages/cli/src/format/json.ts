// JSON text for --json output. u64 values stay exact: a bigint is written as
// a plain JSON number of any length (JSON has no limit; JSON.parse in Node
// rounds past 2^53, jq and Python read it exactly), so a field has one type
// whatever its value.

function write(v: unknown, indent: string, step: string, out: string[]): void {
	if (typeof v === 'bigint') {
		out.push(v.toString());
		return;
	}
	if (v === null || typeof v !== 'object') {
		out.push(v === undefined ? 'null' : JSON.stringify(v));
		return;
	}
	const inner = indent + step;
	const nl = step ? '\n' : '';
	if (Array.isArray(v)) {
		if (v.length === 0) {
			out.push('[]');
			return;
		}
		out.push(`[${nl}`);
		v.forEach((x, i) => {
			out.push(inner);
			write(x, inner, step, out);
			out.push(i + 1 < v.length ? `,${nl}` : nl);
		});
		out.push(`${indent}]`);
		return;
	}
	const keys = Object.keys(v).filter((k) => (v as Record<string, unknown>)[k] !== undefined);
	if (keys.length === 0) {
		out.push('{}');
		return;
	}
	out.push(`{${nl}`);
	keys.forEach((k, i) => {
		out.push(`${inner}${JSON.stringify(k)}:${step ? ' ' : ''}`);
		write((v as Record<string, unknown>)[k], inner, step, out);
		out.push(i + 1 < keys.length ? `,${nl}` : nl);
	});
	out.push(`${indent}}`);
}

/** `value` as JSON, indented by two spaces, bigints exact, undefined fields left out; ends with a newline. */
export function jsonText(value: unknown): string {
	const out: string[] = [];
	write(value, '', '  ', out);
	return `${out.join('')}\n`;
}

/** `value` as one line of JSON (a record of a JSON Lines stream), bigints exact; ends with a newline. */
export function jsonLine(value: unknown): string {
	const out: string[] = [];
	write(value, '', '', out);
	return `${out.join('')}\n`;
}
