import { constants } from 'node:os';

const errnoByName = constants.errno as Record<string, number>;
const nameByErrno = new Map<number, string>();
for (const [name, value] of Object.entries(errnoByName)) {
	// EWOULDBLOCK and EDEADLOCK alias EAGAIN and EDEADLK: keep the names the
	// kernel's man pages use.
	if (!nameByErrno.has(value) || name === 'EAGAIN' || name === 'EDEADLK') nameByErrno.set(value, name);
}
// Kernel-internal codes that bpf(2) can still return (include/linux/errno.h).
nameByErrno.set(524, 'ENOTSUPP');

/** The errno name of a number (`2` → `'ENOENT'`), or `'E<n>'` if unknown. */
export function errnoName(errno: number): string {
	return nameByErrno.get(errno) ?? `E${errno}`;
}

/** The number of an errno name (`'ENOENT'` → `2`), or undefined. */
export function errnoNumber(name: string): number | undefined {
	if (name === 'ENOTSUPP') return 524;
	return errnoByName[name];
}

/**
 * The one error class of every @bpftime package. `code` is the errno name
 * (`'ENOENT'`), `errno` its number (2); the message names the object and the
 * operation: `map 'counts': update: E2BIG`.
 *
 * Native bindings construct it directly, so `instanceof BpftimeError` holds
 * for errors from any package.
 */
export class BpftimeError extends Error {
	readonly code: string;
	readonly errno: number;

	constructor(errnoOrCode: number | string, message: string, options?: ErrorOptions) {
		super(message, options);
		this.name = 'BpftimeError';
		if (typeof errnoOrCode === 'number') {
			this.errno = errnoOrCode;
			this.code = errnoName(errnoOrCode);
		} else {
			this.code = errnoOrCode;
			this.errno = errnoNumber(errnoOrCode) ?? 0;
		}
	}
}
