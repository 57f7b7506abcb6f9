#!/bin/sh
# Assembles every testdata/*.wat into the .wasm next to it with wat2wasm
# (Debian package wabt). Run through go generate in runtime/host.
set -eu
cd "$(dirname "$0")"
for f in *.wat; do
	wat2wasm --output="${f%.wat}.wasm" "$f"
done
