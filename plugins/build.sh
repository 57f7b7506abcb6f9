#!/usr/bin/env bash
# Builds every shipped WASM plugin, plugins/<kind>/<name>/wasm, into
# bin/plugins/<kind>.<name>.wasm (or the folder given as $1). `make plugins`
# calls it.
#
# Staleness is left to the go command, which knows every file, flag and
# toolchain a build depends on: each module is built into a temporary file
# (a no-op build is a cache hit, well under a second) and an output whose
# bytes did not change is left untouched, so its time stamp stays and make
# rules that depend on it do not run again.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-bin/plugins}
mkdir -p "$out"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

for dir in plugins/*/*/wasm; do
  rel=${dir#plugins/}
  kind=${rel%%/*}
  name=${rel#*/}
  name=${name%/wasm}
  target="$out/$kind.$name.wasm"
  GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -trimpath -o "$tmp/module.wasm" "./$dir"
  if cmp -s "$tmp/module.wasm" "$target"; then
    echo "plugins: $target is up to date"
  else
    mv "$tmp/module.wasm" "$target"
    echo "plugins: built $target ($(wc -c <"$target") bytes)"
  fi
done
