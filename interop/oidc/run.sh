#!/usr/bin/env bash
# The gateway example against a real OpenID provider (npm oidc-provider) on 127.0.0.1:
# tokens from the provider's client-credentials grant (RFC 9068 JWTs) are accepted
# through `--issuer`, and each key rotation of the provider (a restart with new keys,
# signing ES256, then RS256, then EdDSA) is picked up by the unknown-kid refresh — with
# no failed request: the first request with the new kid waits for the refresh it wakes.
#
#   interop/oidc/run.sh        (needs Node.js and npm; not part of `cargo test`)
set -euo pipefail
cd "$(dirname "$0")"
[ -d node_modules/oidc-provider ] || npm install --no-audit --no-fund --silent
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
idp_port=$(free_port); api_port=$(free_port); admin_port=$(free_port)
idp="http://127.0.0.1:$idp_port"
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT

start_idp() { # generation alg
  node provider.mjs "$idp_port" "$1" "$2" >/dev/null 2>&1 &
  idp_pid=$!
  pids+=("$idp_pid")
  for _ in $(seq 100); do curl -sf "$idp/jwks" >/dev/null && return; sleep 0.1; done
  echo "provider did not start" >&2; exit 1
}
token() {
  curl -sf -u svc:svc-secret -d grant_type=client_credentials -d scope=orders:read "$idp/token" \
    | sed -E 's/.*"access_token":"([^"]+)".*/\1/'
}
orders() { curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $1" "http://127.0.0.1:$api_port/orders"; }

start_idp 1 ES256
cargo build -q -p examples --example gateway
TOKENLIFE_ADMIN_KEY=interop-admin TOKENLIFE_CLIENT_SECRET=interop-secret \
  ../../target/debug/examples/gateway --quiet --run-for 300 --issuer "$idp" --unknown-kid-cooldown 1 \
  --api-addr "127.0.0.1:$api_port" --admin-addr "127.0.0.1:$admin_port" 2>/dev/null &
pids+=("$!")
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$api_port/healthz" >/dev/null && break; sleep 0.1; done

t1=$(token)
echo "ES256 token from the provider: $(orders "$t1")"
[ "$(orders "$t1")" = 200 ]
[ "$(orders "${t1%?}x")" = 401 ] && echo "tampered token: 401"

gen=2
for alg in RS256 EdDSA ES256; do
  sleep 2.1 # past the interval between unknown-kid refreshes (2 s)
  kill "$idp_pid"; wait "$idp_pid" 2>/dev/null || true
  start_idp "$gen" "$alg"
  t=$(token)
  first=$(orders "$t")
  [ "$first" = 200 ] || { echo "after rotation $gen, the first $alg request: $first" >&2; exit 1; }
  echo "after rotation $gen, the first $alg request: 200 (it waited for the refresh its kid woke)"
  gen=$((gen + 1))
done
echo "the first token, its key rotated away: $(orders "$t1")"
[ "$(orders "$t1")" = 401 ]

# A gateway started while the provider is down: it starts (degraded), answers the
# issuer's tokens 503, and serves them once the provider returns (retry with backoff).
kill "$idp_pid"; wait "$idp_pid" 2>/dev/null || true
api2=$(free_port); admin2=$(free_port)
TOKENLIFE_ADMIN_KEY=interop-admin TOKENLIFE_CLIENT_SECRET=interop-secret \
  ../../target/debug/examples/gateway --quiet --run-for 120 --issuer "$idp" \
  --api-addr "127.0.0.1:$api2" --admin-addr "127.0.0.1:$admin2" 2>/dev/null &
pids+=("$!")
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$api2/healthz" >/dev/null && break; sleep 0.1; done
down=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $t" "http://127.0.0.1:$api2/orders")
echo "gateway started with the provider down, its token: $down"
[ "$down" = 503 ]
start_idp "$gen" ES256
t=$(token)
for i in $(seq 150); do
  code=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $t" "http://127.0.0.1:$api2/orders")
  [ "$code" = 200 ] && break
  sleep 0.1
done
echo "provider back, its token: $code"
[ "$code" = 200 ]
echo "oidc interop: ok"
