#!/usr/bin/env bash
# Compiles average.rs, with the Rust binding sdk/rust/switchyard.rs, into average.wasm: Debian's
# rustc and its wasm32 standard library, no cargo and no crates. rustc's intermediate files go
# to a temporary folder, and average.wasm is replaced only by a complete build.
set -euo pipefail
"$REPO/scripts/apt-need.sh" rustc libstd-rust-dev-wasm32
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
/usr/bin/rustc --edition 2021 --target wasm32-unknown-unknown --crate-type cdylib \
  -C opt-level=s -C lto -C codegen-units=1 -C panic=abort -C strip=symbols \
  -o "$tmp/average.wasm" average.rs
mv "$tmp/average.wasm" average.wasm
echo "rust-average: average.wasm $(wc -c <average.wasm) bytes" >&2
