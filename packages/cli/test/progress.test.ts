// The spinner of slow commands (progress.ts): drawn on a terminal after the
// delay, erased when the work ends; nothing at all on a pipe, on a dumb
// terminal, or for work quicker than the delay.
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, expect, it, onTestFinished } from 'vitest';
import { withProgress } from '../src/progress.js';

/** A terminal stream that keeps what is written to it. */
function terminal(isTTY: boolean) {
	const writes: string[] = [];
	return { isTTY, writes, write: (t: string) => writes.push(t) };
}

describe('withProgress', () => {
	it('redraws the label in place after the delay and erases its line at the end', async () => {
		const tty = terminal(true);
		const result = await withProgress('injecting the agent into process 7', sleep(400, 42), tty, 50);
		expect(result).toBe(42);
		expect(tty.writes.length).toBeGreaterThanOrEqual(2);
		const ESC = String.fromCharCode(0x1b);
		for (const w of tty.writes.slice(0, -1)) {
			expect(w.startsWith('\r') && w.endsWith(`${ESC}[K`)).toBe(true);
			expect(w.slice(1, -3)).toMatch(/^[|/\\-] injecting the agent into process 7 \(0s\)$/);
		}
		expect(tty.writes.at(-1)).toBe('\r\x1b[K');
	});

	it('shows nothing for work quicker than the delay', async () => {
		const tty = terminal(true);
		await withProgress('quick', sleep(10), tty, 200);
		await sleep(250);
		expect(tty.writes).toEqual([]);
	});

	it('shows nothing where stderr is no terminal, or a dumb one', async () => {
		const pipe = terminal(false);
		await withProgress('slow', sleep(150), pipe, 20);
		expect(pipe.writes).toEqual([]);
		const term = process.env.TERM;
		process.env.TERM = 'dumb';
		onTestFinished(() => {
			if (term === undefined) delete process.env.TERM;
			else process.env.TERM = term;
		});
		const dumb = terminal(true);
		await withProgress('slow', sleep(150), dumb, 20);
		expect(dumb.writes).toEqual([]);
	});

	it('erases its line and passes the error on when the work fails', async () => {
		const tty = terminal(true);
		const failing = sleep(150).then(() => {
			throw new Error('EPERM: ptrace refused');
		});
		await expect(withProgress('slow', failing, tty, 20)).rejects.toThrow('EPERM: ptrace refused');
		expect(tty.writes.at(-1)).toBe('\r\x1b[K');
	});
});
