#!/usr/bin/env bash
# Compiles average.rs, with the Rust binding sdk/rust/switchyard.rs, into average.wasm
# (sdk/rust/rustc.sh: Debian's rustc and its wasm32 standard library, no cargo, no crates).
set -euo pipefail
"$REPO/sdk/rust/rustc.sh" average.rs average.wasm
