// Damaged segments (issue 17, item 3): copies of a populated segment with 1
// to 8 bytes changed, each read in a child process the way `bpftime map list`
// and `map dump` read one (bpftime-segment-fuzz of @bpftime/maps-userspace).
// The reader works or refuses with an error, within 3 s, and writes nothing.
// Here a bounded, seeded run over the regions whose every offset is checked
// before use: the segment header, the registry's slot table and the maps'
// states. The other regions (the registry object's lock word, the
// allocator's header, a map handler's sizes, a hash map's chains) still hang
// or write readers (bench/RESULTS.md, "Segment fuzz");
// bench/segment-fuzz.mjs runs them all.
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { describe, expect, it } from 'vitest';

const require = createRequire(import.meta.url);
const fuzz = join(
	dirname(require.resolve('@bpftime/maps-userspace/package.json')),
	'build/Release/bpftime-segment-fuzz',
);

describe('a damaged segment', { timeout: 60_000 }, () => {
	it('is read whole or refused, never crashes, hangs or is written, for 200 mutants of its header, slot table and map states (seed 3)', async () => {
		const child = spawn(fuzz, ['3', '200', '', 'segment header,slot table,map state'], {
			stdio: ['ignore', 'pipe', 'pipe'],
		});
		let stdout = '';
		let stderr = '';
		child.stdout.on('data', (d) => {
			stdout += d;
		});
		child.stderr.on('data', (d) => {
			stderr += d;
		});
		const [code] = await once(child, 'close');
		expect(stderr).toBe('');
		expect(stdout).toMatch(/^mutants 200 works \d+ refused \d+ crashed 0 hung 0 wrote 0$/m);
		expect(code).toBe(0);
	});
});
