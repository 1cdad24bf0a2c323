import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it, onTestFinished } from 'vitest';

const packages = new URL('../..', import.meta.url).pathname;
const env = { ...process.env, COREPACK_ENABLE_DOWNLOAD_PROMPT: '0' };

function pack(pkg: string, dest: string): string {
	execFileSync('corepack', ['pnpm', 'pack', '--pack-destination', dest], {
		cwd: join(packages, pkg),
		env,
		stdio: 'pipe',
	});
	const file = readdirSync(dest).find((f) => f.startsWith(`bpftime-${pkg}-`) && f.endsWith('.tgz'));
	if (!file) throw new Error(`pnpm pack of ${pkg} produced no tarball in ${dest}`);
	return join(dest, file);
}

function listTarball(tgz: string): string[] {
	return execFileSync('tar', ['-tzf', tgz], { encoding: 'utf8' }).trim().split('\n');
}

describe('@bpftime/shm from a packed tarball', () => {
	it('installs into an empty project, builds its addon there, and works from Node', () => {
		const dir = mkdtempSync(join(tmpdir(), 'bpftime-pack-'));
		onTestFinished(() => rmSync(dir, { recursive: true, force: true }));
		const common = pack('common', dir);
		const shm = pack('shm', dir);

		const files = listTarball(shm);
		expect(files).toContain('package/cmake/bpftime.cmake');
		expect(files).toContain('package/native/CMakeLists.txt');
		expect(files).toContain('package/native/src/segment.cpp');
		expect(files).toContain('package/dist/index.js');
		expect(files).toContain('package/README.md');
		expect(files.filter((f) => /\/(build|node_modules)\//.test(f))).toEqual([]);

		const project = join(dir, 'consumer');
		mkdirSync(project);
		writeFileSync(join(project, 'package.json'), JSON.stringify({ name: 'consumer', private: true, type: 'module' }));
		// npm runs the package's install script, which builds the addon with
		// cmake-js inside node_modules, against headers from npm only.
		execFileSync('npm', ['install', '--no-audit', '--no-fund', common, shm], { cwd: project, env, stdio: 'pipe' });

		const name = `bpftime_test_pack_${process.pid}`;
		const script = `
			import { Segment } from '@bpftime/shm';
			const seg = Segment.create({ name: '${name}', sizeMb: 1 });
			seg.allocate('x', 8).writeUInt32LE(77);
			const again = Segment.open({ name: '${name}' });
			console.log(again.lookup('x').readUInt32LE(), again.info.creatorPid === process.pid);
			Segment.remove({ name: '${name}' });
		`;
		const out = execFileSync(process.execPath, ['--input-type=module', '-e', script], {
			cwd: project,
			encoding: 'utf8',
		});
		expect(out.trim()).toBe('77 true');
	}, 600_000);
});
