#!/usr/bin/env bash
# The server's CPU time per request under wrk (Debian's package): bare axum against axum
# with the layer and the gateway's observers, bare actix-web against actix-web with
# TokenLife and the gateway's observers (cache hit, RS256). CPU time is the server
# process's utime + stime from /proc/PID/stat over the run, divided by the requests wrk
# completed: a figure the box's neighbours move far less than req/s. The server is
# pinned to core 0 and wrk to core 1; bounded in time, 127.0.0.1 only.
#
#   benches/wrk_cpu.sh [SECONDS] [RUNS]
#
# The pairs compared can be changed: AXUM_BASE/AXUM_MODE and ACTIX_BASE/ACTIX_MODE (default
# bare/layer-observed and actix-bare/actix-observed); e.g. the usage rollup's cost:
# AXUM_BASE=layer-observed AXUM_MODE=layer-usage ACTIX_BASE=actix-observed
# ACTIX_MODE=actix-usage benches/wrk_cpu.sh 8 4
#
# Prints, per run, req/s and µs of server CPU per request for each mode, the ratio
# bare ÷ observed of CPU per request (≥ 0.95 is the target), and the medians.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-8}
runs=${2:-3}
command -v wrk >/dev/null || { echo "wrk missing: apt-get install -y wrk" >&2; exit 1; }
cargo build -q --release -p benches --bin wrk_server
bin=target/release/wrk_server
port=19080
tck=$(getconf CLK_TCK)

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

measure() { # mode -> "req/s µs-per-request"
  local mode=$1 out token pid before after wrkout rps n
  port=$((port + 1))
  out=$(mktemp)
  taskset -c 0 "$bin" "$mode" "$port" $((secs + 5)) >"$out" &
  pid=$!
  for _ in $(seq 50); do grep -q '^token ' "$out" && break; sleep 0.1; done
  token=$(sed -n 's/^token //p' "$out")
  before=$(cpu_ticks "$pid")
  wrkout=$(taskset -c 1 wrk -t1 -c32 -d"${secs}s" -H "Authorization: Bearer $token" \
        "http://127.0.0.1:$port/orders")
  after=$(cpu_ticks "$pid")
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  rm -f "$out"
  rps=$(awk '/Requests\/sec/ {print $2}' <<<"$wrkout")
  n=$(awk '/requests in/ {print $1}' <<<"$wrkout")
  awk -v r="$rps" -v t=$((after - before)) -v n="$n" -v hz="$tck" \
    'BEGIN {printf "%s %.2f", r, t / hz * 1e6 / n}'
}

ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.3f", a / b}'; }
median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

echo "| run | axum bare req/s, µs CPU/req | axum observed | bare ÷ observed CPU/req | actix bare | actix observed | bare ÷ observed CPU/req |"
echo "| --- | --- | --- | --- | --- | --- | --- |"
ab_mode=${AXUM_BASE:-bare}; ao_mode=${AXUM_MODE:-layer-observed}
xb_mode=${ACTIX_BASE:-actix-bare}; xo_mode=${ACTIX_MODE:-actix-observed}
echo "(axum: $ab_mode vs $ao_mode; actix: $xb_mode vs $xo_mode)"
ax=(); xx=()
for r in $(seq "$runs"); do
  if (( r % 2 )); then
    read -r ab abc <<<"$(measure "$ab_mode")"; read -r ao aoc <<<"$(measure "$ao_mode")"
    read -r xb xbc <<<"$(measure "$xb_mode")"; read -r xo xoc <<<"$(measure "$xo_mode")"
  else
    read -r ao aoc <<<"$(measure "$ao_mode")"; read -r ab abc <<<"$(measure "$ab_mode")"
    read -r xo xoc <<<"$(measure "$xo_mode")"; read -r xb xbc <<<"$(measure "$xb_mode")"
  fi
  ax+=("$(ratio "$abc" "$aoc")"); xx+=("$(ratio "$xbc" "$xoc")")
  echo "| $r | $ab, $abc | $ao, $aoc | ${ax[-1]} | $xb, $xbc | $xo, $xoc | ${xx[-1]} |"
done
echo
echo "median bare ÷ observed CPU per request: axum $(median "${ax[@]}"), actix $(median "${xx[@]}")"
