#!/usr/bin/env bash
# Issue-2 benchmark: corestream vs nginx on the same two files, 100 keep-alive connections.
#
#   benches/basic.sh                 # 3 rounds, 10 s per run, 2 workers each
#   ROUNDS=5 DURATION=20s benches/basic.sh
#
# Both servers run at the same time on loopback (idle while the other is measured) and wrk
# alternates between them A B A B ... so slow drift on a shared machine hits both alike.
# Prints req/s, transfer/s and p99 per server and file as the median of the rounds.
# Needs: cargo, wrk, nginx. Leaves no process behind (trap on exit).
set -euo pipefail

ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-10s}
CONNS=${CONNS:-100}
THREADS=${THREADS:-2}
WORKERS=${WORKERS:-2}
CS_PORT=${CS_PORT:-18080}
NG_PORT=${NG_PORT:-18081}

here=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$here")
for tool in wrk nginx cargo; do
  command -v "$tool" >/dev/null || { echo "basic.sh: '$tool' not found; install it (apt-get install -y wrk nginx)" >&2; exit 2; }
done

echo "== building corestream (release)" >&2
(cd "$repo" && cargo build --release -q -p corestream)
bin=${CARGO_TARGET_DIR:-$repo/target}/release/corestream
[ -x "$bin" ] || { echo "basic.sh: $bin missing after build" >&2; exit 1; }

# shellcheck source=lib.sh
. "$here/lib.sh"
bench_workdir basic

# Media: a ~400 B live media playlist and a ~700 KB segment (2 s at ~2.8 Mbit/s). The bytes are
# random: a file server does not look inside, only sizes matter.
mkdir -p "$work/www"
{
  echo "#EXTM3U"
  echo "#EXT-X-VERSION:3"
  echo "#EXT-X-TARGETDURATION:2"
  echo "#EXT-X-MEDIA-SEQUENCE:1000"
  for i in $(seq 1000 1007); do
    echo "#EXTINF:2.000000,"
    echo "seg$i.ts"
  done
} >"$work/www/playlist.m3u8"
while [ "$(stat -c %s "$work/www/playlist.m3u8")" -lt 400 ]; do echo "#EXT-X-PROGRAM-DATE-TIME:2026-01-01T00:00:00.000Z" >>"$work/www/playlist.m3u8"; done
head -c 716800 /dev/urandom >"$work/www/segment.ts"
chmod 644 "$work/www/"*
pl_size=$(stat -c %s "$work/www/playlist.m3u8")
seg_size=$(stat -c %s "$work/www/segment.ts")

# corestream
"$bin" --root "$work/www" --listen "127.0.0.1:$CS_PORT" --workers "$WORKERS" >"$work/cs.out" 2>"$work/cs.err" &
pids+=($!)
# nginx
mkdir -p "$work/nginx"
sed -e "s#@WORKERS@#$WORKERS#g" -e "s#@NOFILE@#19999#g" -e "s#@CONNS@#10000#g" \
    -e "s#@PREFIX@#$work/nginx#g" -e "s#@USER@#$(id -un)#g" \
    -e "s#@LISTEN@#127.0.0.1:$NG_PORT#g" -e "s#@ROOT@#$work/www#g" \
    "$here/nginx.conf.in" >"$work/nginx/nginx.conf"
nginx -p "$work/nginx" -c "$work/nginx/nginx.conf" -e "$work/nginx/error.log" 2>"$work/ng.err" &
pids+=($!)

ready() { curl -s -o /dev/null -f "http://127.0.0.1:$1/playlist.m3u8"; }
for _ in $(seq 100); do ready "$CS_PORT" && ready "$NG_PORT" && break; sleep 0.1; done
ready "$CS_PORT" || { echo "corestream did not start:"; cat "$work/cs.err"; exit 1; } >&2
ready "$NG_PORT" || { echo "nginx did not start:"; cat "$work/ng.err" "$work/nginx/error.log"; exit 1; } >&2

# wrk output -> "req_s bytes_s p99_ms"
parse() {
  awk '
    function bytes(v,  n) { n = v + 0; if (v ~ /KB$/) n *= 1024; else if (v ~ /MB$/) n *= 1048576; else if (v ~ /GB$/) n *= 1073741824; return n }
    function ms(v,  n) { n = v + 0; if (v ~ /us$/) n /= 1000; else if (v ~ /ms$/) n *= 1; else if (v ~ /m$/) n *= 60000; else if (v ~ /s$/) n *= 1000; return n }
    /^Requests\/sec:/ { r = $2 }
    /^Transfer\/sec:/ { t = bytes($2) }
    /^ +99%/ { p = ms($2) }
    /Non-2xx or 3xx responses:/ { bad = $NF }
    /Socket errors:/ { err = $0 }
    END { if (r == "") exit 1; printf "%s %.0f %.3f\n", r, t, p; if (bad != "" || err != "") printf "WARN %s %s\n", bad, err > "/dev/stderr" }'
}

median() { sort -g | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

declare -A res
echo "== warm-up (2 s each)" >&2
for port in "$CS_PORT" "$NG_PORT"; do
  for f in playlist.m3u8 segment.ts; do wrk -t"$THREADS" -c"$CONNS" -d2s "http://127.0.0.1:$port/$f" >/dev/null; done
done
for round in $(seq "$ROUNDS"); do
  for f in playlist.m3u8 segment.ts; do
    # Alternate which server goes first each round.
    if [ $((round % 2)) -eq 1 ]; then order="corestream nginx"; else order="nginx corestream"; fi
    for server in $order; do
      if [ "$server" = corestream ]; then port=$CS_PORT; else port=$NG_PORT; fi
      out=$(wrk -t"$THREADS" -c"$CONNS" -d"$DURATION" --latency "http://127.0.0.1:$port/$f")
      line=$(parse <<<"$out")
      echo "round $round $server $f: $line (req/s bytes/s p99_ms)" >&2
      res["$server $f"]+="$line"$'\n'
    done
  done
done

echo
echo "corestream vs nginx: wrk -t$THREADS -c$CONNS -d$DURATION --latency, keep-alive, $WORKERS workers each, median of $ROUNDS alternating rounds"
echo "files: playlist.m3u8 $pl_size B, segment.ts $seg_size B; host $(hostname), $(nproc) CPUs, $(uname -r), $(nginx -v 2>&1 | sed 's/.*: //'), $(wrk -v 2>&1 | head -n1 | awk '{print $1, $2}')"
echo
echo "| file | server | req/s | transfer MB/s | p99 ms |"
echo "| --- | --- | ---: | ---: | ---: |"
for f in playlist.m3u8 segment.ts; do
  for server in corestream nginx; do
    rows=${res["$server $f"]}
    r=$(awk 'NF {print $1}' <<<"$rows" | median)
    t=$(awk 'NF {print $2}' <<<"$rows" | median)
    p=$(awk 'NF {print $3}' <<<"$rows" | median)
    printf "| %s | %s | %.0f | %.1f | %.2f |\n" "$f" "$server" "$r" "$(awk -v t="$t" 'BEGIN {print t / 1048576}')" "$p"
    eval "m_${server}_${f%%.*}_r=$r; m_${server}_${f%%.*}_p=$p"
  done
done
echo
for f in playlist segment; do
  cr=m_corestream_${f}_r; nr=m_nginx_${f}_r; cp=m_corestream_${f}_p; np=m_nginx_${f}_p
  awk -v f="$f" -v a="${!cr}" -v b="${!nr}" -v c="${!cp}" -v d="${!np}" \
    'BEGIN { printf "%s: corestream/nginx req/s = %.2fx, p99 = %.2fx\n", f, a / b, (d > 0 ? c / d : 0) }'
done
