// The override example: the same program run twice, without and with
// allow.bpf.o, which makes check_access(1000) return 1 without running it.
//
//   node examples/override/demo.mjs
//
// Exits 1 unless the first run denies uid 1000, the second allows it, and
// the other answers stay as they were. Needs the workspace built
// (`pnpm build`).
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Segment } from '@bpftime/shm';
import { bpftimeIn, buildExample } from '../build.mjs';

const here = fileURLToPath(new URL('.', import.meta.url));
const segment = `bpftime_override_demo_${process.pid}`;
const dir = mkdtempSync(join(tmpdir(), 'bpftime-override-'));
const bpftime = bpftimeIn(segment);

try {
	const { object, victim } = await buildExample(here, 'allow.bpf.c', dir);

	const plain = execFileSync(victim, { encoding: 'utf8' });
	process.stdout.write(`$ ./victim\n${plain}`);
	Segment.create({ name: segment, sizeMb: 16 }).close();
	process.stdout.write(
		`$ bpftime load --binary ./victim allow.bpf.o\n${bpftime(['load', '--binary', victim, object])}`,
	);
	const traced = bpftime(['start', victim], {
		env: { ...process.env, SPDLOG_LEVEL: process.env.SPDLOG_LEVEL ?? 'warn' },
	});
	process.stdout.write(`$ bpftime start ./victim\n${traced}`);
	const count = JSON.parse(bpftime(['map', 'dump', '--json', 'overridden'])).entries[0].value;
	console.log(`calls overridden: ${count}`);

	const expectedPlain = 'uid 0: allowed\nuid 1000: denied\nuid 1001: denied\n';
	const expectedTraced = 'uid 0: allowed\nuid 1000: allowed\nuid 1001: denied\n';
	if (plain !== expectedPlain) throw new Error(`without bpftime the victim printed:\n${plain}`);
	if (traced !== expectedTraced) throw new Error(`with allow.bpf.o the victim printed:\n${traced}`);
	if (count !== '1') throw new Error(`expected 1 overridden call, the map says ${count}`);
	console.log('check_access(1000) returned 1 without running: overridden by the eBPF program');
} catch (e) {
	console.error(`override demo FAILED: ${e.message}`);
	process.exitCode = 1;
} finally {
	if (Segment.exists({ name: segment })) Segment.remove({ name: segment });
	rmSync(dir, { recursive: true, force: true });
}
