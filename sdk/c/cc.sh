#!/usr/bin/env bash
# Compiles a C guest with the binding of this folder into a module, with
# Debian's clang, lld and wasi-libc (a WASI reactor: wasi-libc's
# _initialize, no main):
#
#   sdk/c/cc.sh modbus.wasm modbus.c
#
# Installs the Debian packages when missing. The flags are explained in
# README.md ("Compile").
set -euo pipefail
out=$1
shift
sdk=$(cd "$(dirname "$0")" && pwd)
"$sdk/../../scripts/apt-need.sh" clang lld wasi-libc libclang-rt-dev-wasm32
clang --target=wasm32-wasi --sysroot=/usr -mexec-model=reactor \
  -O2 -Wall -Wextra -I "$sdk" \
  -Wl,--strip-all -Wl,-z,stack-size=65536 -Wl,--stack-first \
  -o "$out" "$@"
echo "cc: $out $(wc -c <"$out") bytes" >&2
