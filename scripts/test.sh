#!/usr/bin/env bash
# The whole test suite, from a fresh clone: installs and builds what it needs,
# then lint, typecheck and every package's tests. Prints one closing line,
# "bpftime: N passed, N failed, N skipped", and exits non-zero on any failure.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bash "$root/scripts/setup.sh"
cd "$root"
export COREPACK_ENABLE_DOWNLOAD_PROMPT=0 PATH="$root/.corepack/bin:$PATH" TURBO_TELEMETRY_DISABLED=1 DO_NOT_TRACK=1

find packages bench examples -name test-results.json -not -path '*/node_modules/*' -delete 2>/dev/null || true
status=0
pnpm lint || status=1
pnpm turbo run typecheck --output-logs=errors-only || status=1
pnpm turbo run test --concurrency=1 --continue || status=1
node scripts/test-summary.mjs || status=1
exit $status
