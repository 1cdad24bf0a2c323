import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { BpftimeError } from './errors.js';

const require = createRequire(import.meta.url);

/** What every bpftime addon exports besides its own API. */
export interface NativeAddon {
	__setErrorClass(cls: typeof BpftimeError): void;
}

/** Build configurations searched, in order. */
const CONFIGS = ['Release', 'Debug'];

/**
 * Loads `build/<config>/bpftime_<name>.node` of the package at `packageDir`
 * and registers BpftimeError with it, so its errors are BpftimeErrors.
 * Fails with every path it tried and how to build the addon.
 */
export function loadNative<T extends NativeAddon>(packageDir: string, name: string): T {
	const tried: string[] = [];
	for (const config of CONFIGS) {
		const path = join(packageDir, 'build', config, `bpftime_${name}.node`);
		tried.push(path);
		if (!existsSync(path)) continue;
		const addon = require(path) as T;
		addon.__setErrorClass(BpftimeError);
		return addon;
	}
	throw new BpftimeError(
		'ENOENT',
		`@bpftime/${name}: the native addon is not built. Tried:\n  ${tried.join('\n  ')}\n` +
			`In the bpftime workspace run \`pnpm turbo run build --filter @bpftime/${name}\`. ` +
			`Installed from the registry, the package builds it in its install script: reinstall it, and with pnpm allow the build (onlyBuiltDependencies: ['@bpftime/${name}']). ` +
			'The build needs cmake, a C++20 compiler and the system libraries listed in the package README.',
	);
}

/** A file built next to the addon (an executable or a shared library), or undefined. */
export function findBuilt(packageDir: string, file: string): string | undefined {
	for (const config of CONFIGS) {
		const path = join(packageDir, 'build', config, file);
		if (existsSync(path)) return path;
	}
	return undefined;
}
