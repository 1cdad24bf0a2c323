// A command bpftime runs in the foreground (start, load <command>): its exit
// status becomes bpftime's, and the signals that would end bpftime go to it.
import type { ChildProcess } from 'node:child_process';

/**
 * Waits for child to exit, passing SIGINT, SIGTERM and SIGHUP on to it;
 * resolves with its exit status, or 128 + the signal number when a signal
 * ended it.
 */
export async function foreground(child: ChildProcess): Promise<number> {
	const forward = (sig: NodeJS.Signals) => () => {
		child.kill(sig);
	};
	const handlers = (['SIGINT', 'SIGTERM', 'SIGHUP'] as const).map((s) => [s, forward(s)] as const);
	for (const [s, h] of handlers) process.on(s, h);
	try {
		const [code, signal] = await new Promise<[number | null, NodeJS.Signals | null]>((resolve) =>
			child.once('exit', (c, s) => resolve([c, s])),
		);
		if (signal) {
			const num = (await import('node:os')).constants.signals[signal] ?? 0;
			return 128 + num;
		}
		return code ?? 1;
	} finally {
		for (const [s, h] of handlers) process.off(s, h);
	}
}
