#!/usr/bin/env bash
# HTTP with wrk (Debian's package): bare axum, axum + TokenLifeLayer, bare actix-web and
# actix-web + TokenLife, hot (verified-token cache on) and cold (cache off: every request
# verifies the RS256 signature). The server is pinned to core 0 and wrk to core 1;
# bounded in time, 127.0.0.1 only.
#
#   benches/wrk.sh [SECONDS] [RUNS]
#
# Prints, per run, each bare server's absolute requests/s beside its tokenlife rows and
# their ratios, and the median ratios over the runs.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-10}
runs=${2:-3}
command -v wrk >/dev/null || { echo "wrk missing: apt-get install -y wrk" >&2; exit 1; }
cargo build -q --release -p benches --bin wrk_server
bin=target/release/wrk_server
port=18080

measure() { # mode -> requests/s
  local mode=$1 out token pid rps
  port=$((port + 1))
  out=$(mktemp)
  taskset -c 0 "$bin" "$mode" "$port" $((secs + 5)) >"$out" &
  pid=$!
  for _ in $(seq 50); do grep -q '^token ' "$out" && break; sleep 0.1; done
  token=$(sed -n 's/^token //p' "$out")
  rps=$(taskset -c 1 wrk -t1 -c32 -d"${secs}s" -H "Authorization: Bearer $token" \
        "http://127.0.0.1:$port/orders" | awk '/Requests\/sec/ {print $2}')
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  rm -f "$out"
  echo "$rps"
}

ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.3f", a / b}'; }
median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

echo "| run | bare axum req/s | axum + layer (hot) | ratio | axum + layer (cold) | ratio | bare actix req/s | actix + TokenLife (hot) | ratio | actix + TokenLife (cold) | ratio |"
echo "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"
ah=(); ac=(); xh=(); xc=()
for r in $(seq "$runs"); do
  # Alternate the order inside each pair, so a drift in the machine's load favours neither.
  if (( r % 2 )); then
    bare=$(measure bare); hot=$(measure layer); cold=$(measure layer-cold)
    xbare=$(measure actix-bare); xhot=$(measure actix); xcold=$(measure actix-cold)
  else
    cold=$(measure layer-cold); hot=$(measure layer); bare=$(measure bare)
    xcold=$(measure actix-cold); xhot=$(measure actix); xbare=$(measure actix-bare)
  fi
  ah+=("$(ratio "$hot" "$bare")"); ac+=("$(ratio "$cold" "$bare")")
  xh+=("$(ratio "$xhot" "$xbare")"); xc+=("$(ratio "$xcold" "$xbare")")
  echo "| $r | $bare | $hot | ${ah[-1]}× | $cold | ${ac[-1]}× | $xbare | $xhot | ${xh[-1]}× | $xcold | ${xc[-1]}× |"
done
echo
echo "median ratios: axum hot $(median "${ah[@]}")×, axum cold $(median "${ac[@]}")×, actix hot $(median "${xh[@]}")×, actix cold $(median "${xc[@]}")×"
