#!/usr/bin/env bash
# Compiles an AssemblyScript guest with the binding of this folder:
#
#   sdk/assemblyscript/asc.sh assembly/index.ts rate.wasm
#
# run from the guest's folder. The compiler is the one pinned in this
# folder's package.json and package-lock.json, installed with npm ci when
# node_modules is missing or older than the lock file. Flags, explained in
# README.md:
#   --runtime incremental      the garbage-collected runtime: memory is reclaimed as calls go
#   --exportStart _initialize  top-level code runs when the host calls _initialize
#   --use abort=...            AssemblyScript's abort reports with the ABI's fail and traps,
#                              instead of importing env.abort, which the host refuses
#   -O3 --shrinkLevel 1        optimise for speed, and for size where it costs nothing
# Does nothing but print the size when the output is newer than everything it
# is built from (the entry's folder, the binding, the pinned compiler).
set -euo pipefail
entry=$1 out=$2
sdk=$(cd "$(dirname "$0")" && pwd)
sources=("$(dirname "$entry")"/*.ts "$sdk"/*.ts "$sdk/package-lock.json" "$0")
if [[ -f "$out" && -z "$(find "${sources[@]}" -newer "$out")" ]]; then
  echo "asc: $out $(wc -c <"$out") bytes (up to date)" >&2
  exit 0
fi
command -v npm >/dev/null || "$sdk/../../scripts/apt-need.sh" nodejs npm
if [[ ! -d "$sdk/node_modules" || "$sdk/package-lock.json" -nt "$sdk/node_modules" ]]; then
  (cd "$sdk" && npm ci --no-audit --no-fund >&2 && touch node_modules)
fi
# --use takes the binding's path relative to where asc runs.
binding=$(realpath --relative-to=. "$sdk/switchyard")
"$sdk/node_modules/.bin/asc" "$entry" --outFile "$out" \
  --runtime incremental \
  --exportStart _initialize \
  --use "abort=$binding/switchyardAbort" \
  -O3 --shrinkLevel 1
echo "asc: $out $(wc -c <"$out") bytes" >&2
