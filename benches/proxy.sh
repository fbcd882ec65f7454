#!/usr/bin/env bash
# tokenlife-proxy against what users pick instead, on 127.0.0.1 (issue 24, item 4): every
# row proxies to the same upstream (nginx answering "hello"), with one RS256 token. The
# proxy under test (and, for forward-auth, its auth service too) is pinned to core 0;
# wrk and the upstream to core 1. Reported per row: req/s, and the CPU time per request
# of the processes on core 0 (utime + stime from /proc over the run ÷ requests).
#
#   benches/proxy.sh [SECONDS] [RUNS]
#
# Rows: HAProxy plain; HAProxy with jwt_verify (RS256, iss, aud, exp checked); nginx
# reverse proxy; hyper's server and hyper-util's pooled client alone (the stack under
# tokenlife-proxy, without it: its floor); tokenlife-proxy with the verified-token cache,
# and without; nginx
# auth_request to tokenlife-proxy's /auth, and to a hand-written jsonwebtoken service.
# Needs Debian's nginx, haproxy, wrk and openssl.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-8}
runs=${2:-3}
for c in nginx haproxy wrk openssl; do
  command -v "$c" >/dev/null || { echo "$c missing: apt-get install -y nginx haproxy wrk openssl" >&2; exit 1; }
done
cargo build -q --release -p benches --bin proxy_bench
bin=$PWD/target/release/proxy_bench
dir=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  rm -rf "$dir"
}
trap cleanup EXIT
tck=$(getconf CLK_TCK)
token=$("$bin" token "$dir")
openssl pkey -in "$dir/rsa.pem" -pubout -out "$dir/rsa.pub.pem" 2>/dev/null
up=19500

# nginx with one server block in its own directory; prints its pid.
nginx_run() { # name core conf-body
  local d=$dir/$1
  mkdir -p "$d"/{body,proxy,fastcgi,uwsgi,scgi}
  cat >"$d/nginx.conf" <<EOF
pid $d/nginx.pid; error_log $d/error.log warn; worker_processes 1;
events { worker_connections 1024; }
http { access_log off; client_body_temp_path $d/body; proxy_temp_path $d/proxy;
  fastcgi_temp_path $d/fastcgi; uwsgi_temp_path $d/uwsgi; scgi_temp_path $d/scgi;
  upstream hello { server 127.0.0.1:$up; keepalive 64; }
  $3
}
EOF
  taskset -c "$2" nginx -p "$d" -c "$d/nginx.conf" -g 'daemon off; master_process off;' >/dev/null 2>&1 &
  echo $!
}

wait_port() { for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return; sleep 0.05; done; echo "port $1 never opened" >&2; exit 1; }
ticks() { local t=0 p; for p in "$@"; do t=$((t + $(awk '{print $14 + $15}' "/proc/$p/stat"))); done; echo $t; }

# The upstream, for every row.
pids+=("$(nginx_run upstream 1 "server { listen 127.0.0.1:$up; location / { return 200 \"hello\n\"; } }")")
wait_port $up

measure() { # port pid... -> "req/s µs-per-request"
  local port=$1; shift
  local before after out rps n code
  code=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $token" "http://127.0.0.1:$port/orders")
  [ "$code" = 200 ] || { echo "port $port answered $code" >&2; exit 1; }
  before=$(ticks "$@")
  out=$(taskset -c 1 wrk -t1 -c32 -d"${secs}s" -H "Authorization: Bearer $token" "http://127.0.0.1:$port/orders")
  after=$(ticks "$@")
  rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
  n=$(awk '/requests in/ {print $1}' <<<"$out")
  awk -v r="$rps" -v t=$((after - before)) -v n="$n" -v hz="$tck" 'BEGIN {printf "%.0f %.1f", r, t / hz * 1e6 / n}'
}

haproxy_run() { # port jwt(0|1) -> pid
  local conf=$dir/haproxy-$1.cfg checks=""
  if [ "$2" = 1 ]; then
    checks="  http-request set-var(txn.bearer) http_auth_bearer
  http-request set-var(txn.alg) var(txn.bearer),jwt_header_query('\$.alg')
  http-request deny unless { var(txn.alg) -m str RS256 }
  http-request deny unless { var(txn.bearer),jwt_payload_query('\$.iss') -m str https://bench.example.com }
  http-request deny unless { var(txn.bearer),jwt_payload_query('\$.aud') -m str api://bench }
  http-request set-var(txn.exp) var(txn.bearer),jwt_payload_query('\$.exp','int')
  http-request set-var(txn.now) date()
  http-request deny if { var(txn.exp),sub(txn.now) -m int lt 0 }
  http-request deny unless { var(txn.bearer),jwt_verify(txn.alg,\"$dir/rsa.pub.pem\") -m int 1 }"
  fi
  cat >"$conf" <<EOF
global
  nbthread 1
  maxconn 2000
defaults
  mode http
  timeout connect 5s
  timeout client 30s
  timeout server 30s
frontend fe
  bind 127.0.0.1:$1
$checks
  default_backend be
backend be
  http-reuse always
  server s1 127.0.0.1:$up
EOF
  taskset -c 0 haproxy -f "$conf" -db >/dev/null 2>&1 &
  echo $!
}

row() { # name port pid...
  local name=$1; shift
  local all=() r
  for r in $(seq "$runs"); do all+=("$(measure "$@")"); done
  printf '| %s |' "$name"
  for r in "${all[@]}"; do printf ' %s req/s, %s µs |' $r; done
  echo
}

echo "| row | $(for r in $(seq "$runs"); do printf 'run %s: req/s, µs CPU/req (core 0) | ' "$r"; done)"
echo "| --- |$(for r in $(seq "$runs"); do printf ' --- |'; done)"
life=$((secs * runs + 30))

p=$(haproxy_run 19501 0); pids+=("$p"); wait_port 19501
row "HAProxy, plain proxy" 19501 "$p"; kill "$p"

p=$(haproxy_run 19502 1); pids+=("$p"); wait_port 19502
row "HAProxy, jwt_verify RS256 + iss/aud/exp" 19502 "$p"; kill "$p"

p=$(nginx_run rp 0 "server { listen 127.0.0.1:19503; location / { proxy_pass http://hello; proxy_http_version 1.1; proxy_set_header Connection \"\"; } }")
pids+=("$p"); wait_port 19503
row "nginx, reverse proxy" 19503 "$p"; kill "$p"

taskset -c 0 "$bin" bare 19510 "http://127.0.0.1:$up" "$life" & p=$!; pids+=("$p"); wait_port 19510
row "hyper server + hyper-util pooled client alone (no tokenlife: the floor)" 19510 "$p"; kill "$p"

taskset -c 0 "$bin" tokenlife 19504 "http://127.0.0.1:$up" on "$life" & p=$!; pids+=("$p"); wait_port 19504
row "tokenlife-proxy, cache on" 19504 "$p"; kill "$p"

taskset -c 0 "$bin" tokenlife 19505 "http://127.0.0.1:$up" off "$life" & p=$!; pids+=("$p"); wait_port 19505
row "tokenlife-proxy, cache off" 19505 "$p"; kill "$p"

auth_conf() { # listen auth-port
  echo "upstream auth { server 127.0.0.1:$2; keepalive 64; }
  server { listen 127.0.0.1:$1;
    location = /_auth { internal; proxy_pass http://auth/auth; proxy_http_version 1.1;
      proxy_set_header Connection \"\"; proxy_pass_request_body off; proxy_set_header Content-Length \"\";
      proxy_set_header X-Original-URI \$request_uri; }
    location / { auth_request /_auth; proxy_pass http://hello; proxy_http_version 1.1;
      proxy_set_header Connection \"\"; } }"
}

taskset -c 0 "$bin" tokenlife 19506 "http://127.0.0.1:$up" on "$life" & a=$!; pids+=("$a"); wait_port 19506
p=$(nginx_run fa1 0 "$(auth_conf 19507 19506)"); pids+=("$p"); wait_port 19507
row "nginx auth_request → tokenlife-proxy /auth (nginx + auth CPU)" 19507 "$p" "$a"; kill "$p" "$a"

taskset -c 0 "$bin" jwt-auth 19508 "$life" & a=$!; pids+=("$a"); wait_port 19508
p=$(nginx_run fa2 0 "$(auth_conf 19509 19508)"); pids+=("$p"); wait_port 19509
row "nginx auth_request → hand-written jsonwebtoken service (nginx + auth CPU)" 19509 "$p" "$a"; kill "$p" "$a"
