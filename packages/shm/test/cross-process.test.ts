import { describe, expect, it } from 'vitest';
import { Segment } from '../src/index.js';
import { runChild, startChild, uniqueName, waitForLine } from './helpers.js';

describe('Segment across processes', () => {
	it('lets a child process read what the parent wrote, and the parent see what the child wrote', async () => {
		const name = uniqueName('xproc');
		using seg = Segment.create({ name, sizeMb: 1 });
		const shared = seg.allocate('message', 32);
		shared.write('from parent');

		const read = await runChild('child.mjs', ['read', name, 'message']);
		expect(read.stdout.trim()).toBe('value from parent');

		const wrote = await runChild('child.mjs', ['write', name, 'message', 'from child!!']);
		expect(wrote.stdout.trim()).toBe('written');
		expect(shared.toString('utf8', 0, 12)).toBe('from child!!');
	});

	it('recovers a lock whose holder was killed with SIGKILL', async () => {
		const name = uniqueName('robust');
		using seg = Segment.create({ name, sizeMb: 1 });
		const mutex = seg.mutex('guard');

		const holder = startChild('child.mjs', ['hold-lock', name, 'guard']);
		expect(await waitForLine(holder, 'locked')).toBe('locked acquired');
		expect(mutex.tryLock()).toBeUndefined();
		expect(() => mutex.lock({ timeoutMs: 50 })).toThrow(expect.objectContaining({ code: 'ETIMEDOUT' }));

		holder.kill('SIGKILL');
		await new Promise((resolve) => holder.once('exit', resolve));

		expect(mutex.lock({ timeoutMs: 5000 })).toBe('recovered');
		mutex.unlock();
		expect(mutex.lock()).toBe('acquired');
		mutex.unlock();
	});

	it('recovers a lock whose holder had dropped and collected every object of the segment', async () => {
		const name = uniqueName('robust-gc');
		using seg = Segment.create({ name, sizeMb: 1 });
		const mutex = seg.mutex('guard');
		const holder = startChild('child.mjs', ['hold-lock-gc', name, 'guard'], { NODE_OPTIONS: '--expose-gc' });
		expect(await waitForLine(holder, 'locked')).toBe('locked acquired');
		expect(() => mutex.lock({ timeoutMs: 50 })).toThrow(expect.objectContaining({ code: 'ETIMEDOUT' }));
		holder.kill('SIGKILL');
		await new Promise((resolve) => holder.once('exit', resolve));
		expect(mutex.lock({ timeoutMs: 5000 })).toBe('recovered');
		mutex.unlock();
	});

	it('keeps the allocator usable after a process is killed while holding a lock', async () => {
		const name = uniqueName('robust-alloc');
		using seg = Segment.create({ name, sizeMb: 1 });
		seg.mutex('guard');
		const holder = startChild('child.mjs', ['hold-lock', name, 'guard']);
		await waitForLine(holder, 'locked');
		holder.kill('SIGKILL');
		await new Promise((resolve) => holder.once('exit', resolve));
		seg.allocate('after', 128).write('still works');
		const read = await runChild('child.mjs', ['read', name, 'after']);
		expect(read.stdout.trim()).toBe('value still works');
	});
});
