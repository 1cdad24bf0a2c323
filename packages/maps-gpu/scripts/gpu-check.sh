#!/usr/bin/env bash
# gpu-check.sh: the whole GPU check of @bpftime/maps-gpu, for a machine with
# an NVIDIA GPU, its driver and the CUDA toolkit: builds the package (and what
# it needs), runs its tests with the GPU tests required (a missing device
# fails instead of skipping), then the benchmark. Under five minutes on one
# GPU once the workspace's other packages are built.
#
#   bash packages/maps-gpu/scripts/gpu-check.sh        (or: pnpm --filter @bpftime/maps-gpu gpu-check)
#
# Environment: BPFTIME_GPU_CHECK_NO_BUILD=1 skips the build (already built);
# BPFTIME_CUDA_DEVICE picks the device (default 0); BPFTIME_BENCH_ROUNDS the
# benchmark's rounds (default 11).
set -euo pipefail
pkg=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
root=$(cd "$pkg/../.." && pwd)
start=$SECONDS
step() { echo "gpu-check: [$((SECONDS - start)) s] $*"; }

command -v nvidia-smi >/dev/null && nvidia-smi -L || echo "gpu-check: no nvidia-smi here"
if [ "${BPFTIME_GPU_CHECK_NO_BUILD:-0}" != 1 ]; then
	step "building @bpftime/maps-gpu and its dependencies"
	(cd "$root" && timeout 240 pnpm turbo run build --filter=@bpftime/maps-gpu... --output-logs=errors-only)
fi
for exe in bpftime-maps-gpu-writer bpftime-maps-gpu-bench; do
	if [ ! -x "$pkg/build/Release/$exe" ]; then
		echo "gpu-check: $pkg/build/Release/$exe is not built (is nvcc on PATH?)" >&2
		exit 1
	fi
done

step "device"
(cd "$pkg" && node --input-type=module -e "
const { isAvailable } = await import('./dist/index.js');
const a = isAvailable();
console.log(a.available ? 'gpu-check: ' + a.device : 'gpu-check: no usable GPU: ' + a.reason);
process.exit(a.available ? 0 : 1);
")

step "tests (GPU tests required)"
(cd "$pkg" && BPFTIME_REQUIRE_GPU=1 timeout 180 pnpm exec vitest run)

step "benchmark"
(cd "$root" && timeout 120 node bench/suites/maps-gpu.mjs)
step "done"
