#!/usr/bin/env bash
# Compiles passthrough.ts into passthrough.wasm with the binding's asc.sh.
set -euo pipefail
../asc.sh passthrough.ts passthrough.wasm
