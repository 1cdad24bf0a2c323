// A process killed inside the segment's allocator (issue 17, item 1): Boost's
// free-block tree cannot be repaired after an interrupted change, so the
// segment counts such deaths in its header (segment_header::allocator_deaths,
// the 4 bytes at offset 40) and checks the allocator in a child process on a
// private copy before the segment is used again. The kill loop of the cli's
// kill-loop.test.ts kills processes inside the allocator for real; here the
// header and the allocator's own header are written by hand.
import { closeSync, openSync, readFileSync, writeSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { Segment } from '../src/index.js';
import { uniqueName } from './helpers.js';

const DEATHS_AT = 40;
const HEADER_SIZE = 4096;
// The allocator's header after its 40-byte mutex: the free-block tree's root
// and ends, the counts of bytes.
const TREE_AT = HEADER_SIZE + 40;

function write(path: string, at: number, bytes: Buffer): void {
	const fd = openSync(path, 'r+');
	try {
		writeSync(fd, bytes, 0, bytes.length, at);
	} finally {
		closeSync(fd);
	}
}

const deaths = (path: string) => readFileSync(path).readUInt32LE(DEATHS_AT);

describe('a process that died inside the allocator', () => {
	it('leaves a segment that opens once a check finds the allocator whole, and the count is cleared', () => {
		const name = uniqueName('death_ok');
		Segment.create({ name, sizeMb: 1 }).close();
		const path = `/dev/shm/${name}`;
		const n = Buffer.alloc(4);
		n.writeUInt32LE(1);
		write(path, DEATHS_AT, n);
		const seg = Segment.open({ name });
		expect(seg.stats().free).toBeGreaterThan(0n);
		seg.close();
		expect(deaths(path)).toBe(0);
	});

	it('refuses a segment whose allocator it left damaged with EBADMSG, saying so, and leaves the count', () => {
		const name = uniqueName('death_bad');
		Segment.create({ name, sizeMb: 1 }).close();
		const path = `/dev/shm/${name}`;
		const n = Buffer.alloc(4);
		n.writeUInt32LE(2);
		write(path, DEATHS_AT, n);
		write(path, TREE_AT, Buffer.alloc(56, 0x5a));
		const started = Date.now();
		expect(() => Segment.open({ name })).toThrow(
			expect.objectContaining({
				code: 'EBADMSG',
				message: expect.stringMatching(
					new RegExp(
						`^segment '${name}': 2 process\\(es\\) died inside its allocator and left it damaged: .+; remove the segment$`,
					),
				),
			}),
		);
		// The check is bounded: a tree made circular cannot hang the opener.
		expect(Date.now() - started).toBeLessThan(10_000);
		expect(deaths(path)).toBe(2);
	});
});
