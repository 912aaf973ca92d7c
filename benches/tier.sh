#!/usr/bin/env bash
# The edge tier on one machine (issue 15): the live demo on an origin, one shield, two edges
# on their own loopback addresses, the swarm's viewers split over the edges. Reports what
# the origin got per object (its access log: target 1 request per object, from the shield),
# the viewers' stalls and errors (swarm), and each edge's CPU per request against an edge
# that serves the demo directory from its own --root, under the same swarm.
#
#   benches/tier.sh                      # 2000 viewers (1000 per edge), 40 s
#   VIEWERS=4000 DURATION=60 benches/tier.sh
set -euo pipefail

VIEWERS=${VIEWERS:-2000}
DURATION=${DURATION:-40}
RAMP=${RAMP:-10}
here=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$here")
echo "== building corestream and corestream-bench (release)" >&2
(cd "$repo" && cargo build --release -q -p corestream -p corestream-bench)
tdir=${CARGO_TARGET_DIR:-$repo/target}/release
cs=$tdir/corestream
bench=$tdir/corestream-bench
# shellcheck source=lib.sh
. "$here/lib.sh"
bench_workdir tier
out=${OUT:-$repo/benches/results/$(date +%F)-tier.md}

start() { # NAME ARGS...: start a corestream, wait for its banner
  local name=$1; shift
  "$cs" "$@" >"$work/$name.out" 2>"$work/$name.err" &
  pids+=($!)
  eval "${name}_pid=$!"
  for _ in $(seq 100); do grep -q 'listening on' "$work/$name.out" && return; sleep 0.1; done
  echo "tier.sh: $name did not start:" >&2; cat "$work/$name.err" >&2; exit 1
}
cpu() { awk '{print $14 + $15}' "/proc/$1/stat"; }          # utime + stime, in ticks
requests() { curl -s "http://$1/metrics" | awk '/^corestream_requests_total\{/ {s += $2} END {print s + 0}'; }

start origin --demo --root "$work/demo" --listen 127.0.0.1:18500 --workers 1 --access-log "$work/origin.log"
start shield --origin http://127.0.0.1:18500 --cache-dir "$work/shield" --listen 127.0.0.2:18501 --workers 1 --admin 127.0.0.2:18511
start edge1 --origin http://127.0.0.2:18501 --cache-dir "$work/edge1" --listen 127.0.0.3:18502 --workers 1 --admin 127.0.0.3:18512
start edge2 --origin http://127.0.0.2:18501 --cache-dir "$work/edge2" --listen 127.0.0.4:18503 --workers 1 --admin 127.0.0.4:18513
sleep 3
half=$((VIEWERS / 2))
{
  echo "# Edge tier on one machine, $(date +%F)"
  echo
  echo "benches/tier.sh: origin (\`--demo\`, 1 worker) -> shield -> two edges (1 worker each, own"
  echo "loopback address); $VIEWERS swarm viewers, $half per edge, ${DURATION} s (ramp ${RAMP} s);"
  echo "then an edge serving the demo directory from --root under $half viewers. $(nproc) CPUs shared"
  echo "by every process; kernel $(uname -r)."
  echo
} >"$out"
c1=$(cpu "$edge1_pid"); c2=$(cpu "$edge2_pid"); r1=$(requests 127.0.0.3:18512); r2=$(requests 127.0.0.4:18513)
echo "== swarm $half viewers on each edge" >&2
"$bench" swarm --viewers "$half" --duration "${DURATION}s" --ramp "${RAMP}s" --label edge1 \
  http://127.0.0.3:18502/master.m3u8 >"$work/swarm1.md" &
s1=$!
"$bench" swarm --viewers "$half" --duration "${DURATION}s" --ramp "${RAMP}s" --label edge2 \
  http://127.0.0.4:18503/master.m3u8 >"$work/swarm2.md"
wait "$s1"
tick=$(getconf CLK_TCK)
per_req() { # CPU0 CPU1 REQ0 REQ1 -> microseconds per request
  awk -v c="$(( $2 - $1 ))" -v r="$(( $4 - $3 ))" -v t="$tick" 'BEGIN { if (r > 0) printf "%.1f", c / t / r * 1e6; else print "n/a" }'
}
e1=$(per_req "$c1" "$(cpu "$edge1_pid")" "$r1" "$(requests 127.0.0.3:18512)")
e2=$(per_req "$c2" "$(cpu "$edge2_pid")" "$r2" "$(requests 127.0.0.4:18513)")
# What the origin got: requests per segment (media objects), from its access log.
per_object=$(awk '$7 ~ /\.(ts|m4s)$/ {n[$7]++} END {for (p in n) {c++; s += n[p]; if (n[p] > m) m = n[p]} printf "%d objects, %d requests, at most %d for one", c, s, m}' "$work/origin.log")
playlists=$(awk '$7 ~ /\.m3u8/ {n++} END {print n + 0}' "$work/origin.log")
upstream=$(curl -s http://127.0.0.2:18511/metrics | grep '^corestream_tier_upstream_requests_total' || true)

start local --root "$work/demo" --listen 127.0.0.5:18504 --workers 1 --admin 127.0.0.5:18514
cl=$(cpu "$local_pid"); rl=$(requests 127.0.0.5:18514)
echo "== swarm $half viewers on a local-root edge" >&2
"$bench" swarm --viewers "$half" --duration "${DURATION}s" --ramp "${RAMP}s" --label local-root \
  http://127.0.0.5:18504/master.m3u8 >"$work/swarm3.md"
el=$(per_req "$cl" "$(cpu "$local_pid")" "$rl" "$(requests 127.0.0.5:18514)")
{
  echo "## What reached the origin"
  echo
  echo "- segments: $per_object (target: 1 per object, the shield's)"
  echo "- playlist requests: $playlists"
  echo "- the shield's upstream requests: \`$(echo "$upstream" | tr '\n' ' ')\`"
  echo
  echo "## Edge CPU per request"
  echo
  echo "| edge | CPU per request (us) |"
  echo "|---|---|"
  echo "| edge1 (--origin) | $e1 |"
  echo "| edge2 (--origin) | $e2 |"
  echo "| local --root | $el |"
  echo
  echo "## Swarm reports"
  echo
  cat "$work/swarm1.md"; echo; cat "$work/swarm2.md"; echo; cat "$work/swarm3.md"
} >>"$out"
echo "wrote $out" >&2
