#!/usr/bin/env bash
# Gives Dgraph's guardian, groot, the password in DGRAPH_GROOT_PASSWORD in
# place of Dgraph's initial "password": the full stack's one-shot service
# dgraph-groot, started once the alpha is healthy. Idempotent: when groot
# already has that password it says so and exits 0. Needs bash, curl and jq
# (the dgraph/dgraph image has all three).
#
#   DGRAPH_HTTP            the alpha's HTTP endpoint (default http://dgraph-alpha:8080)
#   DGRAPH_GROOT_PASSWORD  the password to set (6 characters or more)
#   DGRAPH_WAIT            seconds to wait for groot to exist (default 60)
set -euo pipefail
http=${DGRAPH_HTTP:-http://dgraph-alpha:8080}
want=${DGRAPH_GROOT_PASSWORD:?set DGRAPH_GROOT_PASSWORD (deploy/compose/full/init.sh writes one into .env)}
wait=${DGRAPH_WAIT:-60}
if ((${#want} < 6)); then
  echo "dgraph-groot: DGRAPH_GROOT_PASSWORD must have 6 characters or more (Dgraph's rule)" >&2
  exit 1
fi

# admin TOKEN BODY: POST a GraphQL body to /admin, as TOKEN when not empty.
admin() {
  local auth=()
  [[ -n "$1" ]] && auth=(-H "X-Dgraph-AccessToken: $1")
  curl -fsS --max-time 10 "$http/admin" -H 'Content-Type: application/json' "${auth[@]}" --data-binary "$2"
}

# login PASSWORD: groot's access token, or nothing when refused.
login() {
  local body
  body=$(jq -nc --arg p "$1" \
    '{query: "mutation($p: String!) { login(userId: \"groot\", password: $p, namespace: 0) { response { accessJWT } } }", variables: {p: $p}}')
  admin "" "$body" | jq -r '.data.login.response.accessJWT // empty'
}

# The ACL bootstrap creates groot a moment after the alpha first reports healthy.
token=""
for ((i = 0; i < wait; i++)); do
  if [[ -n "$(login "$want" 2>/dev/null || true)" ]]; then
    echo "dgraph-groot: groot already has the password of DGRAPH_GROOT_PASSWORD"
    exit 0
  fi
  token=$(login password 2>/dev/null || true)
  [[ -n "$token" ]] && break
  sleep 1
done
if [[ -z "$token" ]]; then
  echo "dgraph-groot: groot at $http accepts neither DGRAPH_GROOT_PASSWORD nor Dgraph's initial password (waited ${wait} s)" >&2
  exit 1
fi
body=$(jq -nc --arg p "$want" \
  '{query: "mutation($p: String!) { updateUser(input: {filter: {name: {eq: \"groot\"}}, set: {password: $p}}) { user { name } } }", variables: {p: $p}}')
out=$(admin "$token" "$body")
if ! jq -e '.data.updateUser.user[0].name == "groot"' <<<"$out" >/dev/null; then
  echo "dgraph-groot: changing groot's password failed: $out" >&2
  exit 1
fi
if [[ -z "$(login "$want" || true)" ]]; then
  echo "dgraph-groot: the new password was set but is refused at login" >&2
  exit 1
fi
echo "dgraph-groot: groot's password is now the one of DGRAPH_GROOT_PASSWORD"
