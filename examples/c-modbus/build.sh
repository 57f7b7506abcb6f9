#!/usr/bin/env bash
# Compiles modbus.c into modbus.wasm with the C binding's cc.sh (Debian's
# clang, lld and wasi-libc; sdk/c/cc.sh).
set -euo pipefail
"$REPO/sdk/c/cc.sh" modbus.wasm modbus.c
