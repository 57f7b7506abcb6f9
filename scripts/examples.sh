#!/usr/bin/env bash
# Builds every example guest: runs examples/<name>/build.sh in its folder,
# and each binding's minimal example, sdk/<language>/example/build.sh.
# Each build.sh installs what its language needs when it is missing (Debian
# packages through scripts/apt-need.sh, npm packages from the folder's
# package-lock.json) and writes the example's .wasm module beside its
# sources. `make examples` calls this; `make test` runs it before the tests,
# which load the modules.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
for b in examples/*/build.sh sdk/*/example/build.sh; do
  dir=$(dirname "$b")
  echo "examples: $dir" >&2
  (cd "$dir" && REPO="$root" ./build.sh)
done
