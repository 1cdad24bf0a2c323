#!/usr/bin/env bash
# clang-diff.sh: differential test of the vm against native code.
#
#   clang-diff.sh <bpftime-vm-plugin> [--interpret|--jit]
#
# Each test/clang/*.c (not native_main.c) is compiled twice: for BPF with
# clang-19 -target bpf -mcpu=v4 -O2 (its .text extracted as raw
# instructions) and natively with the host compiler. Both run on the same
# 64 bytes of memory; r0 of the plugin must equal the native return value.
# Exits 0 when all agree; skips (exit 0, saying why) without clang-19.
set -euo pipefail
plugin=${1:?usage: clang-diff.sh <bpftime-vm-plugin> [--interpret|--jit]}
mode=${2:---interpret}
here=$(cd "$(dirname "$0")" && pwd)
clang=${BPFTIME_CLANG:-clang-19}
objcopy=${BPFTIME_OBJCOPY:-llvm-objcopy}
if ! command -v "$clang" >/dev/null; then
	echo "skip: $clang not found (set BPFTIME_CLANG)"
	exit 0
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

mem=""
for i in $(seq 0 63); do
	mem+=$(printf '%02x ' $(((i * 37 + 11) % 256)))
done

fail=0
for src in "$here"/clang/*.c; do
	name=$(basename "$src" .c)
	[ "$name" = native_main ] && continue
	"$clang" -target bpf -mcpu=v4 -O2 -c "$src" -o "$work/$name.bpf.o"
	"$objcopy" -O binary --only-section=.text "$work/$name.bpf.o" "$work/$name.bin"
	"${CC:-cc}" -O2 -o "$work/$name.native" "$src" "$here/clang/native_main.c"
	want=$("$work/$name.native" "$mem")
	if ! got=$(od -An -v -tx1 "$work/$name.bin" | "$plugin" "$mem" "$mode" 2>"$work/err"); then
		got="error: $(cat "$work/err")"
	fi
	if [ "$got" = "$want" ]; then
		echo "ok   $name ($mode): $got"
	else
		echo "FAIL $name ($mode): plugin $got, native $want"
		fail=1
	fi
done
exit $fail
