#!/usr/bin/env node
// The long kill loop of issue 17 (the cli's kill-loop.test.ts runs a bounded
// one with a fixed seed): processes changing the registry are killed with
// SIGKILL at random moments, `--kills` times, by the native kill worker of
// @bpftime/maps-userspace; after every batch, the CLI, the API (a fresh Node
// process) and a target under the agent open the segment, and the worker's
// own check says whether any byte was lost.
//
//   node bench/kill-loop.mjs [--kills 10000] [--batch 500] [--seed N] [--delay-us 3000]
//
// Prints one line per batch and a summary; exits 1 when a batch leaked,
// found something broken, or an opener failed. The segment of a failed run
// is kept (its name is printed) for a look at what broke.
import { spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { Registry } from '@bpftime/handlers';
import '@bpftime/maps-userspace';
import { Segment } from '@bpftime/shm';

const { values } = parseArgs({
	options: {
		kills: { type: 'string', default: '10000' },
		batch: { type: 'string', default: '500' },
		seed: { type: 'string' },
		'delay-us': { type: 'string', default: '3000' },
	},
});
const kills = Number(values.kills);
const batch = Number(values.batch);
const seed = values.seed === undefined ? Math.floor(Math.random() * 2 ** 31) : Number(values.seed);
const require = createRequire(import.meta.url);
// The API opener's imports resolve from here (bench depends on the packages).
const here = fileURLToPath(new URL('.', import.meta.url));
const worker = join(
	dirname(require.resolve('@bpftime/maps-userspace/package.json')),
	'build/Release/bpftime-kill-worker',
);
const cli = join(dirname(require.resolve('@bpftime/handlers/package.json')), '../cli/dist/cli.js');

const name = `bpftime_kill_loop_${process.pid}`;
let seg = Segment.create({ name, sizeMb: 16 });
Registry.create(seg).close();
const baseline = seg.stats().free;
console.log(`segment ${name}, seed ${seed}, ${kills} kills in batches of ${batch}`);

function opener(label, command, args, ok) {
	const r = spawnSync(command, args, {
		cwd: here,
		encoding: 'utf8',
		timeout: 30_000,
		env: { ...process.env, SPDLOG_LEVEL: 'warn' },
	});
	if (ok(r)) return null;
	return `${label}: status ${r.status} signal ${r.signal}: ${(r.stderr || r.stdout || '').trim().slice(-400)}`;
}

let done = 0;
let failures = 0;
let broken = 0;
const started = Date.now();
for (let b = 0; done < kills; b++) {
	const n = Math.min(batch, kills - done);
	const r = spawnSync(worker, [name, String(seed + b), String(n), values['delay-us']], { encoding: 'utf8' });
	done += n;
	const summary = r.stdout.trim().split('\n').pop() ?? '';
	const problems = [];
	if (r.status !== 0)
		problems.push(
			`worker: status ${r.status} signal ${r.signal}: ${r.stdout.trim().split('\n').slice(-5).join(' | ')} ${r.stderr.trim()}`,
		);
	problems.push(
		opener('cli map list', process.execPath, [cli, '--segment', name, 'map', 'list'], (x) => x.status === 0),
		opener(
			'api',
			process.execPath,
			[
				'--input-type=module',
				'-e',
				`import { Registry } from '@bpftime/handlers'; import '@bpftime/maps-userspace'; import { Segment } from '@bpftime/shm'; Registry.open(Segment.open({ name: '${name}' })).list();`,
			],
			(x) => x.status === 0,
		),
		opener(
			'target under the agent',
			process.execPath,
			[cli, '--segment', name, 'start', 'sh', '-c', 'exit 7'],
			(x) => x.status === 7,
		),
	);
	const found = problems.filter(Boolean);
	failures += found.length;
	console.log(`batch ${b} (seed ${seed + b}): ${summary}${found.length ? `\n  ${found.join('\n  ')}` : ''}`);
	// A leak is counted; a crash, a refusal or a failed opener starts over.
	const leakedOnly = r.status === 1 && / bad 0 /.test(summary) && found.length === 1;
	if (!leakedOnly && found.length > 0) {
		// Kept for a look; the next batch starts on a fresh segment.
		const kept = `${name}_failed_${b}`;
		spawnSync('cp', [`/dev/shm/${name}`, `/dev/shm/${kept}`]);
		console.log(`  kept the segment as ${kept}; going on with a fresh one`);
		seg.close();
		Segment.remove({ name });
		seg = Segment.create({ name, sizeMb: 16 });
		Registry.create(seg).close();
		broken++;
	}
}
const free = seg.stats().free;
console.log(
	`kills ${done} in ${((Date.now() - started) / 1000).toFixed(0)} s, failures ${failures}, batches that broke the segment ${broken}, free ${free} (baseline ${baseline}, difference ${baseline - free})`,
);
seg.close();
if (failures === 0 && free === baseline) Segment.remove({ name });
else console.log(`kept segment ${name}`);
process.exit(failures === 0 && free === baseline ? 0 : 1);
