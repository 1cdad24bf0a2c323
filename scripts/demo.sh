#!/usr/bin/env bash
# The main job, on the defaults, from a fresh clone: installs and builds what
# it needs, then runs the demo.
#
# Until the end-to-end tracing demo exists, the demo is examples/shm-counter:
# processes counting into one bpftime shared-memory segment under a robust
# lock, printed once a second, checked, and the segment removed.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bash "$root/scripts/setup.sh"
cd "$root"
exec node examples/shm-counter/demo.mjs
