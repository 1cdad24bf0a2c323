import { createHash } from 'node:crypto';
import { closeSync, openSync, readFileSync, writeFileSync, writeSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { LAYOUT_VERSION, Segment } from '../src/index.js';
import { uniqueName } from './helpers.js';

const digest = (path: string) => createHash('sha256').update(readFileSync(path)).digest('hex');

describe('Segment bad input', () => {
	it.each([
		['an empty name', ''],
		['a name with a slash', 'a/b'],
		['a name with NUL', 'a\0b'],
		['a name of 256 bytes', 'x'.repeat(256)],
		['the name ..', '..'],
	])('refuses %s with EINVAL', (_what, name) => {
		expect(() => Segment.create({ name, sizeMb: 1 })).toThrow(expect.objectContaining({ code: 'EINVAL' }));
		expect(() => Segment.open({ name })).toThrow(expect.objectContaining({ code: 'EINVAL' }));
	});

	it('refuses a name that is not a string, saying what it received', () => {
		expect(() => Segment.create({ name: 7 as unknown as string })).toThrow(
			'Expected string for name but received 7 (number)',
		);
	});

	it.each([
		['0 MiB', 0, /Expected a positive integer for sizeMb but received 0 \(number\)/],
		['-1 MiB', -1, /Expected a positive integer for sizeMb but received -1 \(number\)/],
		['1.5 MiB', 1.5, /Expected a positive integer for sizeMb/],
		['2 TiB', 2 * 1024 * 1024, /outside \[65536, 1099511627776\] bytes/],
	])('refuses a size of %s with EINVAL', (_what, sizeMb, message) => {
		const name = uniqueName('size');
		expect(() => Segment.create({ name, sizeMb })).toThrow(expect.objectContaining({ code: 'EINVAL' }));
		expect(() => Segment.create({ name, sizeMb })).toThrow(message);
		expect(Segment.exists({ name })).toBe(false);
	});

	it('refuses a size larger than /dev/shm can hold with ENOSPC and leaves no file', () => {
		const name = uniqueName('nospc');
		expect(() => Segment.create({ name, sizeMb: 1024 * 1024 })).toThrow(expect.objectContaining({ code: 'ENOSPC' }));
		expect(Segment.exists({ name })).toBe(false);
	});

	it('refuses to open a missing segment with ENOENT', () => {
		expect(() => Segment.open({ name: uniqueName('missing') })).toThrow(expect.objectContaining({ code: 'ENOENT' }));
	});

	it('refuses to create over an existing segment with EEXIST and keeps its contents', () => {
		const name = uniqueName('exists');
		using seg = Segment.create({ name, sizeMb: 1 });
		seg.allocate('keep', 4).writeUInt32LE(1234);
		expect(() => Segment.create({ name, sizeMb: 1 })).toThrow(expect.objectContaining({ code: 'EEXIST' }));
		using again = Segment.open({ name });
		expect(again.lookup('keep')?.readUInt32LE()).toBe(1234);
	});

	it('refuses a foreign file of the same name with EBADMSG and leaves it untouched', () => {
		const name = uniqueName('foreign');
		const path = `/dev/shm/${name}`;
		const junk = Buffer.alloc(64 * 1024);
		for (let i = 0; i < junk.length; i++) junk[i] = (i * 7 + 3) & 0xff;
		writeFileSync(path, junk);
		const before = digest(path);
		expect(() => Segment.open({ name })).toThrow(expect.objectContaining({ code: 'EBADMSG' }));
		expect(() => Segment.open({ name })).toThrow(/is not a bpftime segment \(magic 0x/);
		expect(() => Segment.openOrCreate({ name, sizeMb: 1 })).toThrow(expect.objectContaining({ code: 'EBADMSG' }));
		expect(digest(path)).toBe(before);
	});

	it('refuses a file shorter than the header with EBADMSG', () => {
		const name = uniqueName('short');
		writeFileSync(`/dev/shm/${name}`, 'not a segment');
		expect(() => Segment.open({ name })).toThrow(expect.objectContaining({ code: 'EBADMSG' }));
	});

	it('refuses a segment of another layout version with EPROTONOSUPPORT and leaves it untouched', () => {
		const name = uniqueName('version');
		Segment.create({ name, sizeMb: 1 }).close();
		const path = `/dev/shm/${name}`;
		const fd = openSync(path, 'r+');
		const version = Buffer.alloc(4);
		version.writeUInt32LE(LAYOUT_VERSION + 1);
		writeSync(fd, version, 0, 4, 8);
		closeSync(fd);
		const before = digest(path);
		expect(() => Segment.open({ name })).toThrow(expect.objectContaining({ code: 'EPROTONOSUPPORT' }));
		expect(() => Segment.open({ name })).toThrow(
			`has layout version ${LAYOUT_VERSION + 1}, this bpftime uses ${LAYOUT_VERSION}`,
		);
		expect(digest(path)).toBe(before);
	});

	it('refuses a segment whose header disagrees with its file size with EBADMSG', () => {
		const name = uniqueName('corrupt');
		Segment.create({ name, sizeMb: 1 }).close();
		const fd = openSync(`/dev/shm/${name}`, 'r+');
		const size = Buffer.alloc(8);
		size.writeBigUInt64LE(5n << 20n);
		writeSync(fd, size, 0, 8, 16);
		closeSync(fd);
		expect(() => Segment.open({ name })).toThrow(/is corrupt: header says 5242880 bytes, file has 1048576/);
	});

	it('reports ENOMEM when an object does not fit and keeps what is there', () => {
		const name = uniqueName('full');
		using seg = Segment.create({ name, sizeMb: 1 });
		seg.allocate('small', 16).write('kept');
		expect(() => seg.allocate('huge', 2 << 20)).toThrow(expect.objectContaining({ code: 'ENOMEM' }));
		expect(seg.lookup('small')?.toString('utf8', 0, 4)).toBe('kept');
	});

	it('refuses a second object of the same name with EEXIST', () => {
		const name = uniqueName('dup');
		using seg = Segment.create({ name, sizeMb: 1 });
		seg.allocate('a', 8);
		expect(() => seg.allocate('a', 8)).toThrow(expect.objectContaining({ code: 'EEXIST' }));
	});

	it('refuses to free an object that does not exist with ENOENT', () => {
		const name = uniqueName('free');
		using seg = Segment.create({ name, sizeMb: 1 });
		expect(() => seg.free('nothing')).toThrow(expect.objectContaining({ code: 'ENOENT' }));
	});
});
