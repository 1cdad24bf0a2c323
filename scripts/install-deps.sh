#!/usr/bin/env bash
# Installs what a fresh Debian/Ubuntu machine lacks to build and test bpftime:
# the compilers and system libraries (apt-get), and pnpm through corepack.
# Skips what is already present; uses sudo when not root.
#
#   scripts/install-deps.sh           everything the build and the tests need
#
# Environment: BPFTIME_SKIP_APT=1 skips the system packages (for machines whose
# packages are managed another way).
#
# Not installed here: the CUDA toolkit (NVIDIA's, /usr/local/cuda with nvcc
# on PATH), which only @bpftime/maps-gpu uses; without it that package builds
# nothing and says so, and everything else is unaffected.
set -euo pipefail

# Each entry: a Debian package, and a file whose presence means it is there.
PACKAGES=(
	"cmake:/usr/bin/cmake"
	"g++:/usr/bin/g++"
	"make:/usr/bin/make"
	"ccache:/usr/bin/ccache"
	"clang:/usr/bin/clang"
	"clang-19:/usr/bin/clang-19"
	"llvm:/usr/bin/llvm-objcopy"
	"llvm-19:/usr/bin/llvm-objdump-19"
	"llvm-19-dev:/usr/lib/llvm-19/lib/cmake/llvm/LLVMConfig.cmake"
	"libboost-dev:/usr/lib/x86_64-linux-gnu/cmake/Boost-1.74.0/BoostConfig.cmake"
	"libzydis-dev:/usr/lib/x86_64-linux-gnu/cmake/zydis/zydis-config.cmake"
	"libelf-dev:/usr/include/libelf.h"
	"zlib1g-dev:/usr/include/zlib.h"
	"libbpf-dev:/usr/include/bpf/libbpf.h"
	"nlohmann-json3-dev:/usr/include/nlohmann/json.hpp"
	"bpftool:/usr/sbin/bpftool"
	"bpftrace:/usr/bin/bpftrace"
)

missing=()
for entry in "${PACKAGES[@]}"; do
	pkg=${entry%%:*}
	file=${entry#*:}
	[ -e "$file" ] || missing+=("$pkg")
done

if [ "${BPFTIME_SKIP_APT:-0}" != 1 ] && [ ${#missing[@]} -gt 0 ]; then
	if ! command -v apt-get >/dev/null; then
		echo "install-deps: these packages are missing and this is not a Debian-like system: ${missing[*]}" >&2
		exit 1
	fi
	SUDO=""
	[ "$(id -u)" = 0 ] || SUDO="sudo"
	echo "install-deps: installing ${missing[*]}"
	$SUDO apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# pnpm comes from corepack at the version pinned in package.json's
# packageManager, with no prompt. Its shims go into .corepack/bin of the
# checkout (not the system's Node directory), which the other scripts put on
# PATH: turbo and the package scripts call `pnpm` by name.
export COREPACK_ENABLE_DOWNLOAD_PROMPT=0
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
mkdir -p "$root/.corepack/bin"
corepack enable pnpm --install-directory "$root/.corepack/bin"
if ! "$root/.corepack/bin/pnpm" --version >/dev/null 2>&1; then
	echo "install-deps: corepack could not provide pnpm (is Node >= 20.19 installed?)" >&2
	exit 1
fi
