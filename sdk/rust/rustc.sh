#!/usr/bin/env bash
# Compiles a Rust guest (one crate root that includes switchyard.rs) into a
# module, with Debian's rustc and its wasm32 standard library, no cargo and
# no crates:
#
#   sdk/rust/rustc.sh average.rs average.wasm
#
# Installs rustc and libstd-rust-dev-wasm32 when missing, and calls
# /usr/bin/rustc by its path: a rustup toolchain earlier on PATH usually has
# no wasm32 target. Intermediate files go to a temporary folder, and the
# output is replaced only by a complete build.
set -euo pipefail
src=$1 out=$2
sdk=$(cd "$(dirname "$0")" && pwd)
"$sdk/../../scripts/apt-need.sh" rustc libstd-rust-dev-wasm32
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
/usr/bin/rustc --edition 2021 --target wasm32-unknown-unknown --crate-type cdylib \
  -C opt-level=s -C lto -C codegen-units=1 -C panic=abort -C strip=symbols \
  -o "$tmp/module.wasm" "$src"
mv "$tmp/module.wasm" "$out"
echo "rustc: $out $(wc -c <"$out") bytes" >&2
