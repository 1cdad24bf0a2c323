#!/usr/bin/env bash
# The main job, on the defaults, from a fresh clone: installs and builds what
# it needs, then traces a demo target end to end (examples/malloc): the eBPF
# program is loaded into a fresh bpftime registry with `bpftime load`, the
# victim is started with the agent preloaded (`bpftime start`), and the
# victim's malloc count, counted by the uprobe inside it, is printed once a
# second for ten seconds. The demo removes its segment and exits non-zero if
# the count does not grow.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bash "$root/scripts/setup.sh"
cd "$root"
exec node examples/malloc/demo.mjs
