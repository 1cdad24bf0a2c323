// The device header is built by nvcc here, with no GPU: the compile-only
// test of the API every CUDA kernel uses, and the kernels of the GPU test
// and the benchmark (built with the package).
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { findBuilt } from '@bpftime/common';
import { describe, expect, it, onTestFinished } from 'vitest';
import { findNvcc, packageDir } from './helpers.js';

const run = promisify(execFile);
const nvcc = findNvcc();
if (!nvcc) console.log('skipped: no nvcc (the CUDA toolkit) here: the device header cannot be compiled');

describe.skipIf(!nvcc)('device API (nvcc)', () => {
	it('compiles device.cuh and a kernel that calls every device function, warnings as errors', async () => {
		const dir = mkdtempSync(join(tmpdir(), 'bpftime-gpu-cu-'));
		onTestFinished(() => rmSync(dir, { recursive: true, force: true }));
		const out = join(dir, 'device_api.o');
		await run(
			nvcc as string,
			[
				'-c',
				'-std=c++17',
				'-arch=sm_90',
				'-Werror',
				'all-warnings',
				'-I',
				join(packageDir, 'native/include'),
				join(packageDir, 'test/fixtures/device_api.cu'),
				'-o',
				out,
			],
			{ timeout: 120_000 },
		);
		expect(statSync(out).size).toBeGreaterThan(0);
		// The kernels are in the object: one entry per __global__ function.
		const { stdout } = await run('nm', ['-C', out]);
		expect(stdout).toMatch(/uses_everything/);
		expect(stdout).toMatch(/from_constant/);
	}, 180_000);

	it('refuses device.cuh in a host compiler with an error that says it is for nvcc', async () => {
		const dir = mkdtempSync(join(tmpdir(), 'bpftime-gpu-cxx-'));
		onTestFinished(() => rmSync(dir, { recursive: true, force: true }));
		const src = join(dir, 'host.cpp');
		writeFileSync(src, '#include <bpftime/maps_gpu/device.cuh>\n');
		const err = await run('c++', ['-fsyntax-only', '-I', join(packageDir, 'native/include'), src])
			.then(() => undefined)
			.catch((e: { stderr: string }) => e);
		expect(err?.stderr).toMatch(/device\.cuh is for nvcc/);
	});

	it('built the GPU test writer and the benchmark with their kernels', () => {
		expect(findBuilt(packageDir, 'bpftime-maps-gpu-writer'), 'built with the package').toBeDefined();
		expect(findBuilt(packageDir, 'bpftime-maps-gpu-bench'), 'built with the package').toBeDefined();
	});
});
