#!/usr/bin/env bash
# Mosquitto (the MQTT broker) for development and tests, from the repository
# alone. Tests start their own private broker through
# plugins/mosquittotest, which needs the binaries this script makes sure of.
#
#   scripts/mosquitto.sh bin   make sure mosquitto and mosquitto_passwd exist
#                              (apt-get install mosquitto mosquitto-clients when
#                              running as root, else say what to run); print the
#                              path of mosquitto
#
# Environment:
#   MOSQUITTO_BIN   the broker binary (default: mosquitto on PATH, or /usr/sbin/mosquitto)
set -euo pipefail

find_bin() {
  if [[ -n "${MOSQUITTO_BIN:-}" ]]; then
    [[ -x "$MOSQUITTO_BIN" ]] && echo "$MOSQUITTO_BIN"
    return
  fi
  # Debian puts the broker in /usr/sbin, which is not on every user's PATH.
  command -v mosquitto 2>/dev/null || { [[ -x /usr/sbin/mosquitto ]] && echo /usr/sbin/mosquitto; } || true
}

have_passwd() { command -v mosquitto_passwd >/dev/null 2>&1 || [[ -x /usr/bin/mosquitto_passwd ]]; }

bin() {
  local b
  b=$(find_bin)
  if [[ -n "$b" ]] && have_passwd; then echo "$b"; return; fi
  if [[ -n "${MOSQUITTO_BIN:-}" && -z "$b" ]]; then
    echo "mosquitto: MOSQUITTO_BIN=$MOSQUITTO_BIN is not an executable" >&2
    exit 1
  fi
  if [[ "$(id -u)" -ne 0 ]]; then
    echo "mosquitto: not installed; run: sudo apt-get update && sudo apt-get install -y mosquitto mosquitto-clients" >&2
    exit 1
  fi
  echo "mosquitto: installing mosquitto and mosquitto-clients with apt-get" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update >&2
  apt-get install -y --no-install-recommends mosquitto mosquitto-clients >&2
  b=$(find_bin)
  if [[ -z "$b" ]]; then
    echo "mosquitto: apt-get finished but no mosquitto binary was found" >&2
    exit 1
  fi
  echo "$b"
}

case "${1:-}" in
  bin) bin ;;
  *) echo "usage: scripts/mosquitto.sh bin" >&2; exit 2 ;;
esac
