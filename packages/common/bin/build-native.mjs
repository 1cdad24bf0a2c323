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
// Installed, a package links against the native cores of the @bpftime
// packages it depends on, but npm runs the install scripts of a flat
// node_modules in no dependency order (by name, several at once): so each
// install builds the @bpftime dependencies that are not built yet first,
// each package under a lock (build/.lock), and marks a finished build
// (build/.bpftime-built) so that its own install script then has nothing
// left to do. Locks are taken from dependant to dependency, along the
// acyclic dependency graph, so two installs cannot wait on each other.
//
// Environment: BPFTIME_BUILD_TYPE (Release), CMAKE_BUILD_PARALLEL_LEVEL.
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { cpus } from 'node:os';
import { dirname, join, sep } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

const pkgDir = process.cwd();
const installed = pkgDir.split(sep).includes('node_modules');
if (process.argv.includes('--if-installed') && !installed) {
	process.exit(0);
}

process.env.CMAKE_BUILD_PARALLEL_LEVEL ||= String(cpus().length);
const config = process.env.BPFTIME_BUILD_TYPE || 'Release';
const DONE = '.bpftime-built';

async function compile(dir) {
	const require = createRequire(join(dir, 'package.json'));
	let cmakeJs;
	try {
		cmakeJs = require('cmake-js');
	} catch {
		console.error(`bpftime-build-native: cmake-js is not installed for ${dir}; run pnpm install`);
		process.exit(1);
	}
	const build = new cmakeJs.BuildSystem({
		directory: join(dir, 'native'),
		out: join(dir, 'build'),
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
			`bpftime-build-native: the native build of ${dir} failed: ${e?.message ?? e}\nIt needs cmake, a C++20 compiler and the system libraries that scripts/install-deps.sh installs (Debian: clang, libboost-dev, libzydis-dev, libelf-dev).`,
		);
		process.exit(1);
	}
}

/** Holds build/.lock of `dir` while `fn` runs; a lock whose holder died is taken over. */
async function withLock(dir, fn) {
	const lock = join(dir, 'build', '.lock');
	mkdirSync(join(dir, 'build'), { recursive: true });
	for (;;) {
		try {
			mkdirSync(lock);
			writeFileSync(join(lock, 'pid'), String(process.pid));
			break;
		} catch (e) {
			if (e.code !== 'EEXIST') throw e;
			let holder = 0;
			try {
				holder = Number(readFileSync(join(lock, 'pid'), 'utf8'));
			} catch {}
			let alive = true;
			if (holder > 0) {
				try {
					process.kill(holder, 0);
				} catch (k) {
					alive = k.code === 'EPERM';
				}
			}
			if (!alive) rmSync(lock, { recursive: true, force: true });
			else await sleep(200);
		}
	}
	try {
		return await fn();
	} finally {
		rmSync(lock, { recursive: true, force: true });
	}
}

const manifest = (dir) => JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8'));

/**
 * The folders of the @bpftime packages that `dir` depends on and that build
 * native code when installed (their install script is this one; common's
 * native/ is compiled into each of them instead).
 */
function nativeDependencies(dir) {
	const require = createRequire(join(dir, 'package.json'));
	const out = [];
	for (const name of Object.keys(manifest(dir).dependencies ?? {})) {
		if (!name.startsWith('@bpftime/')) continue;
		const depDir = dirname(require.resolve(`${name}/package.json`));
		if (/bpftime-build-native/.test(manifest(depDir).scripts?.install ?? '')) out.push(depDir);
	}
	return out;
}

async function buildInstalled(dir) {
	await withLock(dir, async () => {
		if (existsSync(join(dir, 'build', DONE))) return;
		for (const dep of nativeDependencies(dir)) await buildInstalled(dep);
		await compile(dir);
		writeFileSync(join(dir, 'build', DONE), '');
	});
}

if (installed) await buildInstalled(pkgDir);
else await compile(pkgDir);
