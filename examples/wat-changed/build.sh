#!/usr/bin/env bash
# Assembles changed.wat into changed.wasm with wabt's wat2wasm.
set -euo pipefail
"$REPO/scripts/apt-need.sh" wabt
wat2wasm --output=changed.wasm changed.wat
echo "wat-changed: changed.wasm $(wc -c <changed.wasm) bytes" >&2
