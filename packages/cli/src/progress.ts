// progress.ts: the spinner the CLI shows on stderr while something slow runs
// (building, injecting, waiting for targets). It appears only when stderr is
// a terminal, and only after a second, so that quick operations, pipes,
// scripts and tests see no trace of it; it erases its own line when done, so
// that what the command prints next starts on a clean line.

const FRAMES = ['|', '/', '-', '\\'];
/** Operations quicker than this show nothing. */
export const PROGRESS_DELAY_MS = 1000;
const FRAME_MS = 120;

/** Where the spinner draws: process.stderr, or a test's terminal stream. */
export interface ProgressStream {
	isTTY?: boolean;
	write(text: string): unknown;
}

/**
 * Resolves with what `work` resolves with; while it runs for longer than a
 * second and `stream` (the command's `io.progress`) is a terminal, a spinner and `label` (with the seconds
 * spent) are redrawn in place on `stream`.
 *
 *   const pid = await withProgress('injecting the agent into 1234', inject(1234), io.progress);
 */
export async function withProgress<T>(
	label: string,
	work: Promise<T>,
	stream: ProgressStream | undefined,
	delayMs = PROGRESS_DELAY_MS,
): Promise<T> {
	// A dumb terminal cannot erase a line: it would keep every frame.
	if (!stream?.isTTY || process.env.TERM === 'dumb') return work;
	const started = Date.now();
	let frame = 0;
	let shown = false;
	let timer: NodeJS.Timeout | undefined;
	const out = stream;
	const draw = () => {
		const seconds = Math.floor((Date.now() - started) / 1000);
		// \r and "erase to end of line" (CSI K) redraw the one line in place.
		out.write(`\r${FRAMES[frame++ % FRAMES.length]} ${label} (${seconds}s)\x1b[K`);
		shown = true;
	};
	const first = setTimeout(() => {
		draw();
		timer = setInterval(draw, FRAME_MS);
		timer.unref();
	}, delayMs);
	// A pending spinner never keeps the process alive on its own.
	first.unref();
	try {
		return await work;
	} finally {
		clearTimeout(first);
		if (timer) clearInterval(timer);
		if (shown) out.write('\r\x1b[K');
	}
}
