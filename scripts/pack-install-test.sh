#!/usr/bin/env bash
# The CLI as users get it from the registry: packs every publishable package
# of the workspace (`pnpm pack`, as a release would), installs them with npm
# into a fresh prefix (the native packages build in their install scripts,
# dependencies first), then runs the installed `bpftime --version` and the
# malloc demo (examples/malloc, copied there) with the installed CLI and
# packages. Prints "pack-install: ok" and exits 0, or says what failed.
#
#   scripts/pack-install-test.sh          (after `pnpm turbo run build`)
#
# Not part of `pnpm test`: the native builds dominate. With ccache warm from
# the workspace's own build (CCACHE_BASEDIR at or above the repository) most
# objects are cache hits and the whole run takes a minute or two; a cold
# cache compiles every native package once (many minutes on 2 cores). Third-party packages
# (cmake-js, node-addon-api) come from npm's cache when it has them
# (--prefer-offline), else from the registry.
#
# Environment: BPFTIME_PACK_KEEP=1 keeps the prefix (.pack-test/ of the
# repository) for a look afterwards.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export COREPACK_ENABLE_DOWNLOAD_PROMPT=0 PATH="$root/.corepack/bin:$PATH"
export CCACHE_BASEDIR=${CCACHE_BASEDIR:-$root} CMAKE_BUILD_PARALLEL_LEVEL=${CMAKE_BUILD_PARALLEL_LEVEL:-2}
started=$(date +%s)
step() { echo "pack-install: $* ($(($(date +%s) - started))s)"; }

# Under the repository (ignored by git), not /tmp: the native builds then
# have the same paths relative to CCACHE_BASEDIR as the workspace's.
mkdir -p "$root/.pack-test"
work=$(mktemp -d "$root/.pack-test/run-XXXXXX")
[ "${BPFTIME_PACK_KEEP:-0}" = 1 ] || trap 'rm -rf "$work"' EXIT
mkdir -p "$work/tarballs" "$work/prefix"

cd "$root"
pnpm -r --filter './packages/*' pack --pack-destination "$work/tarballs" >/dev/null
tarballs=()
for dir in packages/*/; do
	# Private packages are not released: a user cannot install them either.
	node -e "process.exit(require('./${dir}package.json').private ? 1 : 0)" || continue
	tarballs+=("$work/tarballs/$(node -p "const p = require('./${dir}package.json'); p.name.replace('@', '').replace('/', '-') + '-' + p.version + '.tgz'")")
done
step "packed ${#tarballs[@]} packages"

cd "$work/prefix"
echo '{ "name": "bpftime-pack-install-test", "private": true }' >package.json
if ! npm install --no-audit --no-fund --prefer-offline --loglevel=error "${tarballs[@]}" >"$work/npm.log" 2>&1; then
	tail -n 40 "$work/npm.log" >&2
	echo "pack-install: FAILED: npm install of the tarballs (log above)" >&2
	exit 1
fi
step "installed with npm"

bin="$work/prefix/node_modules/.bin/bpftime"
want=$(node -p "require('$root/packages/cli/package.json').version")
got=$("$bin" --version)
if [ "$got" != "bpftime $want" ]; then
	echo "pack-install: FAILED: bpftime --version printed '$got', expected 'bpftime $want'" >&2
	exit 1
fi
step "$bin --version: $got"

# The demo resolves @bpftime/* from the prefix, not from the workspace.
mkdir -p "$work/prefix/examples"
cp "$root/examples/build.mjs" "$work/prefix/examples/"
cp -r "$root/examples/malloc" "$work/prefix/examples/"
if ! BPFTIME_CLI="$bin" node "$work/prefix/examples/malloc/demo.mjs" 2; then
	echo "pack-install: FAILED: the malloc demo with the installed bpftime" >&2
	exit 1
fi
step "the malloc demo ran with the installed bpftime"
echo "pack-install: ok"
