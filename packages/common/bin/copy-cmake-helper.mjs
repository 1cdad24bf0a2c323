#!/usr/bin/env node
// Runs as `prepack` of every native @bpftime package: a packed package has no
// repository root above it, so it carries its own copy of cmake/bpftime.cmake,
// which native/CMakeLists.txt prefers over the workspace copy.
//
//   bpftime-copy-cmake-helper            prepack: copy it into <package>/cmake/
//   bpftime-copy-cmake-helper --remove   postpack: remove that copy again, so
//                                        that later workspace builds do not
//                                        pick up a stale helper
import { copyFileSync, existsSync, mkdirSync, rmSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';

const pkgDir = process.cwd();
let dir = pkgDir;
let source;
for (;;) {
	const candidate = join(dir, 'cmake', 'bpftime.cmake');
	if (dir !== pkgDir && existsSync(candidate) && existsSync(join(dir, 'pnpm-workspace.yaml'))) {
		source = candidate;
		break;
	}
	const parent = dirname(dir);
	if (parent === dir) break;
	dir = parent;
}
if (!source) {
	console.error(`bpftime-copy-cmake-helper: no workspace cmake/bpftime.cmake above ${pkgDir}`);
	process.exit(1);
}
if (process.argv.includes('--remove')) {
	rmSync(join(pkgDir, 'cmake'), { recursive: true, force: true });
	process.exit(0);
}
mkdirSync(join(pkgDir, 'cmake'), { recursive: true });
copyFileSync(source, resolve(pkgDir, 'cmake', 'bpftime.cmake'));
