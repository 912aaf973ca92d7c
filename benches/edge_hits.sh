#!/usr/bin/env bash
# Stored-copy hits on an edge (--origin, no --root) against the same files served from a
# local --root, wrk -t1 -c50 -d4s, one worker each, alternated: what the tier adds per hit.
# With two binaries it runs both in turn (an A/B of a change), same files, same run.
#
#   benches/edge_hits.sh [BIN [BIN2]]     # default target/release/corestream
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$here")
bins=("${@:-$repo/target/release/corestream}")
command -v wrk >/dev/null || { echo "edge_hits.sh: needs wrk (apt-get install wrk)" >&2; exit 1; }
work=$(mktemp -d /tmp/corestream-edge-hits.XXXXXX)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT
mkdir -p "$work/root/live"
python3 - "$work/root/live" <<'PY'
import os, sys
d = sys.argv[1]
open(os.path.join(d, "index.m3u8"), "w").write(
    "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:1\n"
    + "".join("#EXTINF:2.0,\nseg%d.ts\n" % i for i in range(1, 7)))
open(os.path.join(d, "seg1.ts"), "wb").write(os.urandom(100_000))
PY
rate() { wrk -t1 -c50 -d4s "$1" | awk '/Requests\/sec/{print $2}'; }
echo "| binary | object | edge req/s | local req/s | edge/local |"
echo "| --- | --- | ---: | ---: | ---: |"
for round in 1 2; do
  for bin in "${bins[@]}"; do
    "$bin" --root "$work/root" --listen 127.0.0.1:19100 --workers 1 >/dev/null 2>&1 & o=$!
    rm -rf "$work/cache"
    "$bin" --origin http://127.0.0.1:19100 --cache-dir "$work/cache" --listen 127.0.0.1:19101 \
      --workers 1 >/dev/null 2>&1 & e=$!
    pids=("$o" "$e")
    for _ in $(seq 50); do curl -sf -o /dev/null http://127.0.0.1:19101/live/seg1.ts && break; sleep 0.1; done
    for p in /live/index.m3u8 /live/seg1.ts; do
      curl -sf -o /dev/null "http://127.0.0.1:19101$p"
      edge=$(rate "http://127.0.0.1:19101$p")
      local_=$(rate "http://127.0.0.1:19100$p")
      ratio=$(python3 -c "print(f'{$edge/$local_:.2f}x')")
      echo "| $(basename "$(dirname "$(dirname "$(dirname "$bin")")")")/${bin##*/} | $p | $edge | $local_ | $ratio |"
    done
    kill "$o" "$e"; wait "$o" "$e" 2>/dev/null || true
  done
done
