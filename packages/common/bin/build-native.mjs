#!/usr/bin/env node
// Builds the native part of the @bpftime package in the current directory
// with cmake-js: native/CMakeLists.txt into build/, the addon lands in
// build/Release/. Used as the package's `build` step in the workspace and as
// its `install` script when installed from the registry.
//
//   bpftime-build-native                 build (workspace, `pnpm build`)
//   bpftime-build-native --if-installed  build only when this package sits in
//                                        a node_modules tree; a source
//                                        checkout is built by `pnpm build`
//
// Environment: BPFTIME_BUILD_TYPE (Release), CMAKE_BUILD_PARALLEL_LEVEL.
import { createRequire } from 'node:module';
import { cpus } from 'node:os';
import { join, sep } from 'node:path';

const pkgDir = process.cwd();
if (process.argv.includes('--if-installed') && !pkgDir.split(sep).includes('node_modules')) {
	process.exit(0);
}

const require = createRequire(join(pkgDir, 'package.json'));
let cmakeJs;
try {
	cmakeJs = require('cmake-js');
} catch {
	console.error(`bpftime-build-native: cmake-js is not installed for ${pkgDir}; run pnpm install`);
	process.exit(1);
}

process.env.CMAKE_BUILD_PARALLEL_LEVEL ||= String(cpus().length);
const config = process.env.BPFTIME_BUILD_TYPE || 'Release';
const build = new cmakeJs.BuildSystem({
	directory: join(pkgDir, 'native'),
	out: join(pkgDir, 'build'),
	config,
	debug: config === 'Debug',
});
// cmake-js decides between Node-API headers from npm and a download of the
// full Node headers by looking for `binary.napi_versions` in the package.json
// of the CMake source directory. Our CMakeLists.txt lives in native/, one level
// below the package.json that declares Node-API 8, and this machine cannot
// download headers, so the decision is made here.
build.options.isNodeApi = true;
try {
	await build.compile();
} catch (e) {
	console.error(
		`bpftime-build-native: the native build of ${pkgDir} failed: ${e?.message ?? e}\nIt needs cmake, a C++20 compiler and the system libraries that scripts/install-deps.sh installs (Debian: clang, libboost-dev, libzydis-dev, libelf-dev).`,
	);
	process.exit(1);
}
