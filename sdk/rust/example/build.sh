#!/usr/bin/env bash
# Compiles passthrough.rs into passthrough.wasm, as examples/rust-average/build.sh does.
set -euo pipefail
"$REPO/scripts/apt-need.sh" rustc libstd-rust-dev-wasm32
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
/usr/bin/rustc --edition 2021 --target wasm32-unknown-unknown --crate-type cdylib \
  -C opt-level=s -C lto -C codegen-units=1 -C panic=abort -C strip=symbols \
  -o "$tmp/passthrough.wasm" passthrough.rs
mv "$tmp/passthrough.wasm" passthrough.wasm
echo "sdk/rust/example: passthrough.wasm $(wc -c <passthrough.wasm) bytes" >&2
