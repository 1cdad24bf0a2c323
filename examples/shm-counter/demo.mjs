// The shm-counter example: see README.md.
import { fork } from 'node:child_process';
import { once } from 'node:events';
import { Segment } from '@bpftime/shm';

const WORKERS = 2;
const SECONDS = 3;

if (process.argv[2] === 'worker') {
	// Worker: count until told to stop; every increment under the lock.
	const seg = Segment.open({ name: process.argv[3] });
	const counter = seg.lookup('counter');
	const lock = seg.mutex('counter-lock');
	let mine = 0n;
	let running = true;
	process.on('message', () => {
		running = false;
	});
	const burst = () => {
		for (let i = 0; i < 1000 && running; i++) {
			lock.lock();
			counter.writeBigUInt64LE(counter.readBigUInt64LE() + 1n);
			lock.unlock();
			mine++;
		}
		if (running) setImmediate(burst);
		else process.send(mine.toString(), () => process.exit(0));
	};
	process.send('ready');
	burst();
} else {
	const name = `bpftime_demo_${process.pid}`;
	const seg = Segment.create({ name, sizeMb: 1 });
	try {
		const counter = seg.allocate('counter', 8);
		seg.mutex('counter-lock');
		const info = seg.info;
		console.log(
			`segment ${name}: ${info.size} bytes, layout v${info.layoutVersion}, created by pid ${info.creatorPid}`,
		);

		const workers = [];
		for (let i = 0; i < WORKERS; i++) {
			const w = fork(new URL(import.meta.url).pathname, ['worker', name]);
			await once(w, 'message');
			workers.push(w);
		}
		for (let s = 1; s <= SECONDS; s++) {
			await new Promise((r) => setTimeout(r, 1000));
			console.log(`t=${s}s counter ${counter.readBigUInt64LE()} (${WORKERS} processes)`);
		}
		const totals = await Promise.all(
			workers.map(async (w) => {
				const done = once(w, 'message');
				w.send('stop');
				const [count] = await done;
				await once(w, 'exit');
				return BigInt(count);
			}),
		);
		const expected = totals.reduce((a, b) => a + b, 0n);
		const final = counter.readBigUInt64LE();
		const s = seg.stats();
		console.log(
			`final counter ${final}, increments reported by workers ${expected}; segment used ${s.used} of ${s.size} bytes`,
		);
		if (final !== expected) {
			console.error('lost updates: the counter does not match the workers’ totals');
			process.exitCode = 1;
		}
	} finally {
		seg.close();
		Segment.remove({ name });
		console.log(`segment ${name} removed`);
	}
}
