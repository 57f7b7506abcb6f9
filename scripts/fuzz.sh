#!/usr/bin/env bash
# Runs every native fuzz target in the module for FUZZTIME (default 5s) each,
# so `make test` exercises each decoder beyond its seed corpus. A crasher is
# written to the package's testdata/fuzz folder by go test and fails the run.
set -euo pipefail
cd "$(dirname "$0")/.."
fuzztime=${FUZZTIME:-5s}
count=0
for module in . sdk; do
  for pkg in $(cd "$module" && go list ./...); do
    for target in $(cd "$module" && go test -list '^Fuzz' "$pkg" | grep '^Fuzz' || true); do
      echo "fuzz $pkg $target ($fuzztime)"
      (cd "$module" && go test -run '^$' -fuzz "^${target}\$" -fuzztime "$fuzztime" "$pkg")
      count=$((count + 1))
    done
  done
done
echo "fuzz: $count target(s) ran for $fuzztime each"
