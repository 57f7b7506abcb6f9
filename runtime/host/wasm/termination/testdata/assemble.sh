#!/bin/sh
# Assembles every testdata/*.wat into the .wasm next to it with wat2wasm
# (Debian package wabt). A module that needs a proposal beyond WebAssembly
# 2.0 names wat2wasm's flags on a line ";; wat2wasm: <flags>". Run through
# go generate in runtime/host/wasm/termination.
set -eu
cd "$(dirname "$0")"
for f in *.wat; do
	flags=$(sed -n 's/^;; wat2wasm: //p' "$f")
	# shellcheck disable=SC2086 # the flags are words
	wat2wasm $flags --output="${f%.wat}.wasm" "$f"
done
