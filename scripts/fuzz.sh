#!/usr/bin/env bash
# Runs every native fuzz target in the module for FUZZTIME (default 5s) each,
# so `make test` exercises each decoder beyond its seed corpus. A crasher is
# written to the package's testdata/fuzz folder by go test and fails the run.
#
# Go 1.26's fuzz coordinator can fail a run with a bare "context deadline
# exceeded" at the end of -fuzztime when a worker is slow to stop
# (golang/go#75804, fixed in Go 1.27): no input failed and nothing is
# written. Such a run is retried, twice at most; any other failure, or one
# that wrote a crasher, fails at once.
set -euo pipefail
cd "$(dirname "$0")/.."
fuzztime=${FUZZTIME:-5s}
count=0
out=$(mktemp)
trap 'rm -f "$out"' EXIT

corpus() { { ls -1 "$1" 2>/dev/null || true; } | sort; }

fuzz_one() {
  local module=$1 pkg=$2 target=$3 dir before
  dir="$(cd "$module" && go list -f '{{.Dir}}' "$pkg")/testdata/fuzz/$target"
  for attempt in 1 2 3; do
    before=$(corpus "$dir")
    if (cd "$module" && go test -run '^$' -fuzz "^${target}\$" -fuzztime "$fuzztime" "$pkg") 2>&1 | tee "$out"; then
      return 0
    fi
    if [[ "$(corpus "$dir")" == "$before" ]] &&
      grep -A1 -- "^--- FAIL: $target " "$out" | tail -n 1 | grep -qx '[[:space:]]*context deadline exceeded'; then
      echo "fuzz: $target stopped with Go's fuzztime deadline race (golang/go#75804), no crasher; retrying ($attempt)" >&2
      continue
    fi
    return 1
  done
  return 1
}

for module in . sdk; do
  for pkg in $(cd "$module" && go list ./...); do
    for target in $(cd "$module" && go test -list '^Fuzz' "$pkg" | grep '^Fuzz' || true); do
      echo "fuzz $pkg $target ($fuzztime)"
      fuzz_one "$module" "$pkg" "$target"
      count=$((count + 1))
    done
  done
done
echo "fuzz: $count target(s) ran for $fuzztime each"
