#!/usr/bin/env bash
# Makes sure the Debian packages named as arguments are installed, so that a
# fresh machine builds the examples with nothing installed by hand:
#
#   scripts/apt-need.sh clang lld wasi-libc
#
# Packages already installed cost one dpkg query each; the rest are installed
# with apt-get (as root; otherwise the script says what to run).
set -euo pipefail
missing=()
for p in "$@"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
[[ ${#missing[@]} -eq 0 ]] && exit 0
if [[ "$(id -u)" -ne 0 ]]; then
  echo "apt-need: missing ${missing[*]}; run: sudo apt-get update && sudo apt-get install -y ${missing[*]}" >&2
  exit 1
fi
echo "apt-need: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >&2
apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
