#!/usr/bin/env bash
# Brings a fresh clone to a built workspace: system packages, pnpm (corepack),
# the workspace's npm dependencies, and the build of every package (turbo,
# cached). Sourced by demo.sh and test.sh; runnable on its own.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
export COREPACK_ENABLE_DOWNLOAD_PROMPT=0 PATH="$root/.corepack/bin:$PATH"
export TURBO_TELEMETRY_DISABLED=1 DO_NOT_TRACK=1

bash scripts/install-deps.sh
pnpm install --frozen-lockfile --reporter=append-only
pnpm turbo run build --output-logs=errors-only
