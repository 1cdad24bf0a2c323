// Robust process-shared mutex, uncontended lock + unlock from Node, against
// the cheapest lock JavaScript can take itself (Atomics CAS on shared memory).
import { Segment } from '@bpftime/shm';
import { measure, report } from '../lib.mjs';

const name = `bpftime_bench_${process.pid}`;
const seg = Segment.create({ name, sizeMb: 1 });
try {
	const mutex = seg.mutex('bench');
	const word = new Int32Array(new SharedArrayBuffer(4));
	const atomics = measure((n) => {
		for (let i = 0; i < n; i++) {
			while (Atomics.compareExchange(word, 0, 0, 1) !== 0);
			Atomics.store(word, 0, 0);
		}
	});
	const robust = measure((n) => {
		for (let i = 0; i < n; i++) {
			mutex.lock();
			mutex.unlock();
		}
	});
	report('shm: lock + unlock, uncontended, from Node', [
		['Atomics CAS spinlock (baseline)', atomics],
		['SharedMutex (robust pthread, via addon)', robust],
	]);
} finally {
	seg.close();
	Segment.remove({ name });
}
