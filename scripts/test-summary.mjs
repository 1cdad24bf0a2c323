#!/usr/bin/env node
// Adds up the JSON reports that each package's `vitest run` writes
// (test-results.json) into the one closing line CI reads:
//   bpftime: N passed, N failed, N skipped
// Exits 1 when a test failed or no test ran at all.
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

const root = new URL('..', import.meta.url).pathname;
const dirs = [];
for (const group of ['packages', '.']) {
	const base = join(root, group);
	for (const name of group === '.' ? ['bench', 'examples'] : readdirSync(base)) dirs.push(join(base, name));
}

let passed = 0;
let failed = 0;
let skipped = 0;
for (const dir of dirs) {
	const report = join(dir, 'test-results.json');
	if (!existsSync(report)) continue;
	const r = JSON.parse(readFileSync(report, 'utf8'));
	passed += r.numPassedTests;
	failed += r.numFailedTests;
	skipped += r.numPendingTests + r.numTodoTests;
	// A suite that failed to load counts as a failure even with no test in it.
	for (const file of r.testResults) if (file.status === 'failed' && file.assertionResults.length === 0) failed++;
}
console.log(`bpftime: ${passed} passed, ${failed} failed, ${skipped} skipped`);
process.exit(failed > 0 || passed === 0 ? 1 : 0);
