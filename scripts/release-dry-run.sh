#!/usr/bin/env bash
# A release rehearsal that changes nothing here: in a scratch copy of the
# workspace (built outputs included, node_modules reinstalled), applies the
# pending changesets (`changeset version`), runs a publish dry run of every
# publishable package, packs them, and checks each tarball: dist/, native
# sources, CMake files and README present; nothing of build/ or node_modules/.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export COREPACK_ENABLE_DOWNLOAD_PROMPT=0 PATH="$root/.corepack/bin:$PATH"
scratch=$(mktemp -d /tmp/bpftime-release-XXXXXX)
trap 'rm -rf "$scratch"' EXIT

tar -C "$root" --exclude=node_modules --exclude=.turbo --exclude='*.tgz' -cf - . | tar -C "$scratch" -xf -
cd "$scratch"
pnpm install --frozen-lockfile --reporter=silent
pnpm changeset version
git diff --stat -- '*.md' '*.json' | tail -n 3 || true
pnpm -r publish --dry-run --no-git-checks --access public 2>&1 | grep -E '^(\+|npm notice (name|version|filename|total files))' || true
mkdir -p "$scratch/tarballs"
for dir in packages/*/; do
	# Private packages (no code yet) are skipped by releases, so by this check.
	node -e "process.exit(require('./${dir}package.json').private ? 1 : 0)" || continue
	(cd "$dir" && pnpm pack --pack-destination "$scratch/tarballs" >/dev/null)
done

status=0
for tgz in "$scratch"/tarballs/*.tgz; do
	files=$(tar -tzf "$tgz")
	name=$(basename "$tgz")
	problems=()
	grep -q '^package/README.md$' <<<"$files" || problems+=("no README.md")
	grep -q '^package/dist/index.js$' <<<"$files" || problems+=("no dist/index.js")
	if grep -q '^package/native/' <<<"$files"; then
		grep -q '^package/native/CMakeLists.txt$' <<<"$files" || problems+=("no native/CMakeLists.txt")
		grep -q '^package/cmake/bpftime.cmake$' <<<"$files" || problems+=("no cmake/bpftime.cmake")
	fi
	if grep -qE '^package/(.*/)?(build|node_modules)/' <<<"$files"; then problems+=("contains build/ or node_modules/"); fi
	if [ ${#problems[@]} -eq 0 ]; then
		echo "ok   $name ($(wc -l <<<"$files") files)"
	else
		echo "FAIL $name: ${problems[*]}"
		status=1
	fi
done
exit $status
