#!/usr/bin/env bash
# HTTPS benchmark (issue 14): corestream vs nginx, both terminating TLS themselves with the
# same ECDSA P-256 certificate, TLS 1.3 and 1.2, nginx with ssl_session_cache and tickets.
#
#   benches/tls.sh                       # 3 rounds, 10 s per run, 2 workers each
#   ROUNDS=5 DURATION=20s benches/tls.sh
#
# Rows, servers alternated in one run (A B, then B A, ...), median of the rounds:
#   - playlist req/s over keep-alive TLS connections (wrk -c100), and server CPU per request
#   - segment (700 KB) throughput over keep-alive TLS (wrk -c100)
#   - new TLS handshakes per second: every request on a new connection (Connection: close)
#   - user-space bytes per idle TLS keep-alive connection (benches/idle_memory.py, https)
# Needs: cargo, wrk, nginx, openssl, python3. Leaves no process behind.
set -euo pipefail

ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-10s}
CONNS=${CONNS:-100}
THREADS=${THREADS:-2}
WORKERS=${WORKERS:-2}
IDLE_CONNS=${IDLE_CONNS:-3000}
CS_PORT=${CS_PORT:-18443}
NG_PORT=${NG_PORT:-18444}

here=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$here")
for tool in wrk nginx cargo openssl python3; do
  command -v "$tool" >/dev/null || { echo "tls.sh: '$tool' not found; install it (apt-get install -y wrk nginx openssl python3)" >&2; exit 2; }
done

echo "== building corestream (release)" >&2
(cd "$repo" && cargo build --release -q -p corestream)
bin=${CARGO_TARGET_DIR:-$repo/target}/release/corestream

# shellcheck source=lib.sh
. "$here/lib.sh"
bench_workdir tls

mkdir -p "$work/www" "$work/nginx"
{
  echo "#EXTM3U"; echo "#EXT-X-VERSION:3"; echo "#EXT-X-TARGETDURATION:2"; echo "#EXT-X-MEDIA-SEQUENCE:1000"
  for i in $(seq 1000 1007); do echo "#EXTINF:2.000000,"; echo "seg$i.ts"; done
} >"$work/www/playlist.m3u8"
while [ "$(stat -c %s "$work/www/playlist.m3u8")" -lt 400 ]; do echo "#EXT-X-PROGRAM-DATE-TIME:2026-01-01T00:00:00.000Z" >>"$work/www/playlist.m3u8"; done
head -c 716800 /dev/urandom >"$work/www/segment.ts"
chmod 644 "$work/www/"*
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$work/key.pem" \
  -out "$work/cert.pem" -days 7 -subj /CN=localhost \
  -addext subjectAltName=DNS:localhost,IP:127.0.0.1 2>/dev/null
chmod 644 "$work/key.pem" "$work/cert.pem"

"$bin" --root "$work/www" --tls-listen "127.0.0.1:$CS_PORT" --tls-cert "$work/cert.pem" \
  --tls-key "$work/key.pem" --workers "$WORKERS" >"$work/cs.out" 2>"$work/cs.err" &
cs_pid=$!
pids+=("$cs_pid")
sed -e "s#@WORKERS@#$WORKERS#g" -e "s#@NOFILE@#19999#g" -e "s#@CONNS@#10000#g" \
    -e "s#@PREFIX@#$work/nginx#g" -e "s#@USER@#$(id -un)#g" \
    -e "s#@LISTEN@#127.0.0.1:$NG_PORT ssl#g" -e "s#@ROOT@#$work/www#g" \
    "$here/nginx.conf.in" >"$work/nginx/nginx.conf"
# The same certificate, versions and session resumption as corestream.
sed -i "s#^\(        root .*\)#\1\n        ssl_certificate $work/cert.pem;\n        ssl_certificate_key $work/key.pem;\n        ssl_protocols TLSv1.2 TLSv1.3;\n        ssl_session_cache shared:SSL:10m;\n        ssl_session_tickets on;#" "$work/nginx/nginx.conf"
nginx -p "$work/nginx" -c "$work/nginx/nginx.conf" -e "$work/nginx/error.log" 2>"$work/ng.err" &
pids+=($!)

ready() { curl -sk -o /dev/null -f "https://127.0.0.1:$1/playlist.m3u8"; }
for _ in $(seq 100); do ready "$CS_PORT" && ready "$NG_PORT" && break; sleep 0.1; done
ready "$CS_PORT" || { echo "corestream did not start:"; cat "$work/cs.err"; exit 1; } >&2
ready "$NG_PORT" || { echo "nginx did not start:"; cat "$work/ng.err" "$work/nginx/error.log"; exit 1; } >&2
ng_pids() { pgrep -f "nginx: worker process" -P "$(cat "$work/nginx/nginx.pid")" | tr '\n' ' '; }

# CPU ticks (utime+stime) of a set of pids.
ticks() { local t=0 p; for p in "$@"; do t=$((t + $(awk '{print $14 + $15}' "/proc/$p/stat"))); done; echo "$t"; }
hz=$(getconf CLK_TCK)

# One wrk run against a server: prints "req_s bytes_s p99_ms cpu_us_per_req".
run() {
  local server=$1 url=$2; shift 2
  local ps; if [ "$server" = corestream ]; then ps=$cs_pid; else ps=$(ng_pids); fi
  local t0; t0=$(ticks $ps)
  # shellcheck disable=SC2086
  local out; out=$(wrk -t"$THREADS" -c"$CONNS" -d"$DURATION" --latency "$@" "$url")
  local t1; t1=$(ticks $ps)
  awk -v cpu=$((t1 - t0)) -v hz="$hz" '
    function bytes(v,  n) { n = v + 0; if (v ~ /KB$/) n *= 1024; else if (v ~ /MB$/) n *= 1048576; else if (v ~ /GB$/) n *= 1073741824; return n }
    function ms(v,  n) { n = v + 0; if (v ~ /us$/) n /= 1000; else if (v ~ /ms$/) n *= 1; else if (v ~ /s$/) n *= 1000; return n }
    /^ +[0-9]+ requests in/ { total = $1 }
    /^Requests\/sec:/ { r = $2 }
    /^Transfer\/sec:/ { t = bytes($2) }
    /^ +99%/ { p = ms($2) }
    /Non-2xx or 3xx responses:|Socket errors:/ { print "WARN " $0 > "/dev/stderr" }
    END { printf "%s %.0f %.3f %.2f\n", r, t, p, (total > 0 ? cpu / hz * 1e6 / total : 0) }' <<<"$out"
}

median() { sort -g | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

declare -A res
rows="playlist segment handshake"
echo "== warm-up" >&2
for port in "$CS_PORT" "$NG_PORT"; do wrk -t2 -c"$CONNS" -d2s "https://127.0.0.1:$port/playlist.m3u8" >/dev/null; done
for round in $(seq "$ROUNDS"); do
  for row in $rows; do
    if [ $((round % 2)) -eq 1 ]; then order="corestream nginx"; else order="nginx corestream"; fi
    for server in $order; do
      if [ "$server" = corestream ]; then port=$CS_PORT; else port=$NG_PORT; fi
      case $row in
        playlist) line=$(run "$server" "https://127.0.0.1:$port/playlist.m3u8") ;;
        segment) line=$(run "$server" "https://127.0.0.1:$port/segment.ts") ;;
        handshake) line=$(run "$server" "https://127.0.0.1:$port/playlist.m3u8" -H "Connection: close") ;;
      esac
      echo "round $round $row $server: $line (req/s bytes/s p99_ms cpu_us/req)" >&2
      res["$server $row"]+="$line"$'\n'
    done
  done
done

idle() {
  local server=$1 port=$2 ps
  if [ "$server" = corestream ]; then ps=$cs_pid; else ps=$(ng_pids); fi
  # shellcheck disable=SC2046
  python3 "$here/idle_memory.py" $(for p in $ps; do echo --pid "$p"; done) \
    --url "https://127.0.0.1:$port/playlist.m3u8" --conns "$IDLE_CONNS" |
    sed -n 's/.*user_space_bytes_per_idle_connection=\([0-9]*\).*/\1/p'
}
idle_cs=$(idle corestream "$CS_PORT")
idle_ng=$(idle nginx "$NG_PORT")

col() { awk -v c="$1" 'NF {print $c}' | median; }
echo
echo "HTTPS: corestream vs nginx, wrk -t$THREADS -c$CONNS -d$DURATION, $WORKERS workers each, ECDSA P-256, median of $ROUNDS alternating rounds"
echo "host $(hostname), $(nproc) CPUs, $(uname -r), $(nginx -v 2>&1 | sed 's/.*: //'), $(openssl version | cut -d' ' -f1-2), cipher as negotiated by wrk (OpenSSL client)"
echo
echo "| row | corestream | nginx | ratio | corestream CPU/req | nginx CPU/req |"
echo "| --- | ---: | ---: | ---: | ---: | ---: |"
for row in $rows; do
  a=${res["corestream $row"]}; b=${res["nginx $row"]}
  if [ "$row" = segment ]; then
    ar=$(col 2 <<<"$a"); br=$(col 2 <<<"$b")
    printf "| segment MB/s (keep-alive) | %.0f | %.0f | %.2fx | %s us | %s us |\n" \
      "$(awk -v v="$ar" 'BEGIN{print v/1048576}')" "$(awk -v v="$br" 'BEGIN{print v/1048576}')" \
      "$(awk -v x="$ar" -v y="$br" 'BEGIN{print x/y}')" "$(col 4 <<<"$a")" "$(col 4 <<<"$b")"
  else
    ar=$(col 1 <<<"$a"); br=$(col 1 <<<"$b")
    label=$([ "$row" = playlist ] && echo "playlist req/s (keep-alive)" || echo "new handshakes/s (one request each)")
    printf "| %s | %.0f | %.0f | %.2fx | %s us | %s us |\n" "$label" "$ar" "$br" \
      "$(awk -v x="$ar" -v y="$br" 'BEGIN{print x/y}')" "$(col 4 <<<"$a")" "$(col 4 <<<"$b")"
  fi
done
printf "| idle TLS keep-alive connection, user-space bytes (%s conns) | %s | %s | %.2fx | | |\n" \
  "$IDLE_CONNS" "$idle_cs" "$idle_ng" "$(awk -v x="$idle_cs" -v y="$idle_ng" 'BEGIN{print (y > 0 ? x/y : 0)}')"
echo
echo "p99 ms (median): playlist $(col 3 <<<"${res["corestream playlist"]}") vs $(col 3 <<<"${res["nginx playlist"]}"), segment $(col 3 <<<"${res["corestream segment"]}") vs $(col 3 <<<"${res["nginx segment"]}")"
