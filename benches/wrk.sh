#!/usr/bin/env bash
# HTTP, hot: axum + TokenLifeLayer against bare axum with wrk (Debian's package), the
# server pinned to core 0 and wrk to core 1; bounded in time, 127.0.0.1 only.
#
#   benches/wrk.sh [SECONDS] [RUNS]
#
# Prints, per run, bare's absolute requests/s beside the layer's and their ratio.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-10}
runs=${2:-3}
command -v wrk >/dev/null || { echo "wrk missing: apt-get install -y wrk" >&2; exit 1; }
cargo build -q --release -p benches --bin wrk_server
bin=target/release/wrk_server

measure() { # mode port -> requests/s
  local mode=$1 port=$2 out token pid rps
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

echo "| run | bare axum req/s | axum + TokenLifeLayer req/s | ratio |"
echo "| --- | --- | --- | --- |"
ratios=()
for r in $(seq "$runs"); do
  # Alternate which goes first, so a drift in the machine's load favours neither.
  if (( r % 2 )); then
    bare=$(measure bare $((18080 + r * 2)))
    layer=$(measure layer $((18081 + r * 2)))
  else
    layer=$(measure layer $((18081 + r * 2)))
    bare=$(measure bare $((18080 + r * 2)))
  fi
  ratio=$(awk -v a="$layer" -v b="$bare" 'BEGIN {printf "%.3f", a / b}')
  ratios+=("$ratio")
  echo "| $r | $bare | $layer | ${ratio}× |"
done
median=$(printf '%s\n' "${ratios[@]}" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')
echo
echo "median ratio: ${median}×"
