#!/usr/bin/env bash
# Builds the Go guest of this folder (wasm/main.go and package jsonpath) into
# jsonpath.wasm, a WASI reactor. The folder is part of the repository's main
# module, so the go command of the repository is all it needs.
set -euo pipefail
GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -trimpath -o jsonpath.wasm ./wasm
echo "go-jsonpath: jsonpath.wasm $(wc -c <jsonpath.wasm) bytes" >&2
