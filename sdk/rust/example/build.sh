#!/usr/bin/env bash
# Compiles passthrough.rs into passthrough.wasm with the binding's rustc.sh.
set -euo pipefail
../rustc.sh passthrough.rs passthrough.wasm
