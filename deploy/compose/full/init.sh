#!/usr/bin/env bash
# Makes the full stack's secrets, once, beside this script (or in the folder
# given): .env, the variables compose.yaml reads, and secrets/dgraph-hmac, the
# key Dgraph signs its ACL tokens with. Files that exist are kept, so running
# it again changes nothing; keep both: SWITCHYARD_ENCRYPTION_KEY seals the
# credentials of every tenant's Dgraph namespace.
set -euo pipefail
dir=${1:-$(cd "$(dirname "$0")" && pwd)}
hex() { od -An -tx1 -N"$1" /dev/urandom | tr -d ' \n'; }
umask 077
mkdir -p "$dir/secrets"
if [[ ! -s "$dir/secrets/dgraph-hmac" ]]; then
  hex 32 >"$dir/secrets/dgraph-hmac" # Dgraph wants 32 characters or more
  echo "init: wrote $dir/secrets/dgraph-hmac"
fi
if [[ ! -f "$dir/.env" ]]; then
  cat >"$dir/.env" <<ENV
# The full stack's secrets, made by init.sh. Keep this file, and keep it private.
# Dgraph's guardian (groot) gets this password instead of its initial one.
DGRAPH_GROOT_PASSWORD=$(hex 24)
# Seals each tenant namespace's credentials: lose it and the relay cannot open them.
SWITCHYARD_ENCRYPTION_KEY=$(hex 32)
# The admin API's operator key (Authorization: Bearer …).
SWITCHYARD_OPERATOR_KEY=syop_$(hex 24)
# MQTT clients on the LAN (sensors) log into Mosquitto with these.
MQTT_USERNAME=sensors
MQTT_PASSWORD=$(hex 24)
ENV
  echo "init: wrote $dir/.env"
fi
