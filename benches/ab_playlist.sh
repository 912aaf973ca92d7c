#!/usr/bin/env bash
# A/B of two corestream builds on playlist hits: the compare scenario's playlist (6 segments
# with program date-times), corestream --workers 2, wrk -t2 with --latency, the builds
# alternated within every round, a 2 s warm-up before each measured run. Prints req/s, p90,
# p99 and the server's CPU per request (utime+stime of all its threads over the run, from
# /proc). This is how the issue-18 commits give their before/after ratios. TLS=1: over
# HTTPS (TLS 1.3, a P-256 certificate made with openssl for the run).
#
#   [TLS=1] benches/ab_playlist.sh BIN_A BIN_B [ROUNDS=3] [CONNS=100] [SECONDS=5]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"
[ $# -ge 2 ] || { echo "usage: $0 BIN_A BIN_B [ROUNDS] [CONNS] [SECONDS]" >&2; exit 2; }
a=$1 b=$2 rounds=${3:-3} conns=${4:-100} secs=${5:-5}
command -v wrk >/dev/null || { echo "ab_playlist.sh: needs wrk (apt-get install wrk)" >&2; exit 1; }
bench_workdir ab-playlist
ulimit -n 20000 2>/dev/null || true
mkdir -p "$work/root/r2500"
python3 - "$work/root/r2500/index.m3u8" <<'PY'
import sys
s = "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:0\n"
for n in range(6):
    s += "#EXT-X-PROGRAM-DATE-TIME:2026-01-01T00:00:%02d.000Z\n#EXTINF:2.000,\nseg%d.ts\n" % (n * 2, n)
open(sys.argv[1], "w").write(s)
PY
port=19180
url="http://127.0.0.1:$port/r2500/index.m3u8"
listen=(--listen "127.0.0.1:$port")
if [ "${TLS:-0}" = 1 ]; then
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
    -subj /CN=localhost -keyout "$work/key.pem" -out "$work/cert.pem" 2>/dev/null
  url="https://127.0.0.1:$port/r2500/index.m3u8"
  listen=(--tls-listen "127.0.0.1:$port" --tls-cert "$work/cert.pem" --tls-key "$work/key.pem")
fi
cpu_ticks() { local t=0; for f in /proc/"$1"/task/*/stat; do t=$((t + $(awk '{print $14+$15}' "$f"))); done; echo "$t"; }
echo "| round | binary | req/s | p90 | p99 | server CPU us/req |"
echo "| ---: | --- | ---: | ---: | ---: | ---: |"
for round in $(seq "$rounds"); do
  for bin in "$a" "$b"; do
    "$bin" --root "$work/root" "${listen[@]}" --workers 2 >/dev/null 2>&1 &
    pid=$!
    pids=("$pid")
    for _ in $(seq 50); do curl -skf -o /dev/null "$url" && break; sleep 0.1; done
    wrk -t2 -c"$conns" -d2s "$url" >/dev/null
    t0=$(cpu_ticks "$pid")
    out=$(wrk -t2 -c"$conns" -d"${secs}s" --latency "$url")
    t1=$(cpu_ticks "$pid")
    kill "$pid"; wait "$pid" 2>/dev/null || true
    pids=()
    rps=$(awk '/Requests\/sec/{print $2}' <<<"$out")
    reqs=$(awk '/requests in/{print $1}' <<<"$out")
    p90=$(awk '$1=="90%"{print $2}' <<<"$out")
    p99=$(awk '$1=="99%"{print $2}' <<<"$out")
    hz=$(getconf CLK_TCK)
    cpu=$(python3 -c "print(f'{($t1-$t0)/$hz*1e6/$reqs:.2f}')")
    echo "| $round | $bin | $rps | $p90 | $p99 | $cpu |"
  done
done
