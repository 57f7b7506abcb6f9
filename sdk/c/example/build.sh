#!/usr/bin/env bash
# Compiles passthrough.c into passthrough.wasm with the binding's cc.sh.
set -euo pipefail
../cc.sh passthrough.wasm passthrough.c
