#!/usr/bin/env bash
# Compiles assembly/index.ts into rate.wasm with the AssemblyScript binding's
# compiler script (the pinned asc and its flags: sdk/assemblyscript/asc.sh).
set -euo pipefail
"$REPO/sdk/assemblyscript/asc.sh" assembly/index.ts rate.wasm
