#!/usr/bin/env bash
# A single-node Dgraph (zero + alpha, ACL on, loopback only) for development
# and tests, from the repository alone.
#
#   scripts/dgraph.sh bin     build the pinned server into the cache when missing; print its path
#   scripts/dgraph.sh run     start zero + alpha in the foreground; print "dgraph: up …" once the
#                             alpha is healthy; stop both on SIGTERM/SIGINT (what tests use)
#   scripts/dgraph.sh up      run in the background and wait until healthy (make dgraph-up)
#   scripts/dgraph.sh down    stop a background run (data stays in DGRAPH_DIR)
#   scripts/dgraph.sh status  say whether it runs
#
# Environment:
#   DGRAPH_BIN          the server binary (default: the cache path below)
#   DGRAPH_DIR          data, logs and pid file (default: data/dgraph)
#   DGRAPH_PORT_OFFSET  added to Dgraph's usual ports (default 100: zero 5180/6180,
#                       alpha 7180, HTTP 8180, gRPC 9180 — off 8080, where the
#                       relay's gateway listens; plugins.yaml's store.dgraph
#                       defaults point here)
#   DGRAPH_ACL_TTL      access token lifetime in s, m or h (default 6h);
#                       refresh tokens live twice as long
#   DGRAPH_TLS          "" (plain), "on" (the alpha serves gRPC and HTTP over TLS) or
#                       "mutual" (and requires a client certificate). The CA, the
#                       alpha's certificate and a client certificate (client.switchyard.*)
#                       are made by `dgraph cert` into DGRAPH_DIR/tls on first use.
#
# The guardian is groot with Dgraph's initial password "password": this
# cluster is for development on loopback only. The pinned version lives in
# deploy/dgraph/go.mod.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
version=v25.1.0
cache="${XDG_CACHE_HOME:-$HOME/.cache}/switchyard/dgraph-$version"
bin="${DGRAPH_BIN:-$cache/dgraph}"
dir="${DGRAPH_DIR:-$root/data/dgraph}"
offset="${DGRAPH_PORT_OFFSET:-100}"
ttl="${DGRAPH_ACL_TTL:-6h}"
tls="${DGRAPH_TLS:-}"
scheme=http
curl_tls=()
if [[ -n "$tls" ]]; then
  scheme=https
  curl_tls=(--cacert "$dir/tls/ca.crt" --cert "$dir/tls/client.switchyard.crt" --key "$dir/tls/client.switchyard.key")
fi
http="$scheme://127.0.0.1:$((8080 + offset))"

build() {
  if [[ -x "$bin" ]]; then return; fi
  echo "dgraph: building the pinned Dgraph $version into $bin (a few minutes, once)" >&2
  mkdir -p "$(dirname "$bin")"
  (cd "$root/deploy/dgraph" && go build -o "$bin.tmp" github.com/dgraph-io/dgraph/v25/dgraph)
  mv "$bin.tmp" "$bin"
}

# healthy: the alpha answers /health and the guardian can log in (the ACL
# bootstrap creates groot a moment after /health first answers).
healthy() {
  curl -fsS "${curl_tls[@]}" "$http/health" 2>/dev/null | grep -q '"status":"healthy"' &&
    curl -fsS "${curl_tls[@]}" "$http/admin" -H 'Content-Type: application/json' \
      -d '{"query":"mutation { login(userId: \"groot\", password: \"password\", namespace: 0) { response { accessJWT } } }"}' \
      2>/dev/null | grep -q accessJWT
}

# stop_process pid seconds: SIGTERM, and again each second (zero finishes
# its shutdown only on a second signal), then SIGKILL after seconds.
stop_process() {
  local pid=$1 left=$(($2 * 10))
  kill -TERM "$pid" 2>/dev/null || return 0
  while kill -0 "$pid" 2>/dev/null && ((left-- > 0)); do
    if ((left % 10 == 0)); then kill -TERM "$pid" 2>/dev/null || true; fi
    sleep 0.1
  done
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}

background_running() { [[ -f "$dir/run.pid" ]] && kill -0 "$(cat "$dir/run.pid")" 2>/dev/null; }

run() {
  build
  for p in 5080 6080 7080 8080 9080; do
    if (exec 3<>"/dev/tcp/127.0.0.1/$((p + offset))") 2>/dev/null; then
      echo "dgraph: port $((p + offset)) on 127.0.0.1 is already taken; set DGRAPH_PORT_OFFSET or stop what listens there" >&2
      exit 1
    fi
  done
  mkdir -p "$dir"
  if [[ ! -f "$dir/hmac" ]]; then
    head -c 48 /dev/urandom | base64 | tr -d '\n/+=' | head -c 40 >"$dir/hmac"
    chmod 600 "$dir/hmac"
  fi
  local n=${ttl%[smh]} unit=${ttl: -1} zero alpha tls_flags=()
  case "$tls" in
    "") ;;
    on | mutual)
      if [[ ! -f "$dir/tls/node.crt" ]]; then
        "$bin" cert --dir "$dir/tls" -n 127.0.0.1,localhost >/dev/null 2>&1
        "$bin" cert --dir "$dir/tls" -c switchyard >/dev/null 2>&1
      fi
      local auth=VERIFYIFGIVEN
      [[ "$tls" == mutual ]] && auth=REQUIREANDVERIFY
      tls_flags=(--tls "ca-cert=$dir/tls/ca.crt; server-cert=$dir/tls/node.crt; server-key=$dir/tls/node.key; client-auth-type=$auth; internal-port=false; use-system-ca=false")
      ;;
    *) echo "dgraph: DGRAPH_TLS=$tls: want on, mutual or nothing" >&2; exit 2 ;;
  esac
  (cd "$dir" && exec "$bin" zero --my="127.0.0.1:$((5080 + offset))" --port_offset "$offset" \
      --wal zw --bindall=false >>zero.log 2>&1) &
  zero=$!
  (cd "$dir" && exec "$bin" alpha --my="127.0.0.1:$((7080 + offset))" --port_offset "$offset" \
      --zero="127.0.0.1:$((5080 + offset))" --postings p --wal w --tmp t --bindall=false \
      --cache "size-mb=256" --security "whitelist=127.0.0.1" \
      --acl "secret-file=$dir/hmac; access-ttl=$ttl; refresh-ttl=$((n * 2))$unit" "${tls_flags[@]}" >>alpha.log 2>&1) &
  alpha=$!
  # The alpha first, so that it leaves the zero cleanly.
  # shellcheck disable=SC2064 # the pids are fixed now
  trap "stop_process $alpha 20; stop_process $zero 5; exit 0" TERM INT HUP
  for _ in $(seq 1 240); do
    if healthy; then
      echo "dgraph: up — gRPC 127.0.0.1:$((9080 + offset)), HTTP $http, guardian groot/password, data $dir${tls:+, TLS $tls (certificates in $dir/tls)}"
      wait -n "$alpha" "$zero" || true
      echo "dgraph: a process exited; stopping" >&2
      stop_process "$alpha" 20
      stop_process "$zero" 5
      exit 1
    fi
    if ! kill -0 "$zero" 2>/dev/null || ! kill -0 "$alpha" 2>/dev/null; then break; fi
    sleep 0.25
  done
  echo "dgraph: did not become healthy; last lines of its logs:" >&2
  tail -n 20 "$dir/zero.log" "$dir/alpha.log" >&2 || true
  stop_process "$alpha" 20
  stop_process "$zero" 5
  exit 1
}

up() {
  if background_running; then
    echo "dgraph: already running from $dir (scripts/dgraph.sh down first)" >&2
    exit 1
  fi
  build
  mkdir -p "$dir"
  nohup "$0" run >"$dir/run.log" 2>&1 &
  echo $! >"$dir/run.pid"
  for _ in $(seq 1 240); do
    if grep -q '^dgraph: up' "$dir/run.log"; then grep '^dgraph: up' "$dir/run.log"; return; fi
    if ! background_running; then break; fi
    sleep 0.25
  done
  cat "$dir/run.log" >&2
  down
  exit 1
}

down() {
  if background_running; then
    local pid
    pid=$(cat "$dir/run.pid")
    kill "$pid"
    for _ in $(seq 1 300); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  fi
  rm -f "$dir/run.pid"
}

case "${1:-}" in
  bin) build; echo "$bin" ;;
  run) run ;;
  up) up ;;
  down) down; echo "dgraph: stopped" ;;
  status) if background_running; then echo "dgraph: running (pid $(cat "$dir/run.pid"), $dir)"; else echo "dgraph: stopped"; fi ;;
  *) echo "usage: scripts/dgraph.sh bin|run|up|down|status" >&2; exit 2 ;;
esac
