#!/usr/bin/env bash
# HTTPS with real clients against the live demo (issue 14): curl (TLS 1.3 and 1.2 with ALPN
# http/1.1, older versions refused), openssl s_client (a second connection resumes the first
# one's session), ffmpeg reading the demo over https for 20 s, and sslyze judged by
# .ci/tls-lint.py. Usage: .ci/https.sh [path/to/corestream]   (needs curl openssl ffmpeg sslyze)
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${1:-target/release/corestream}
work=$(mktemp -d)
pid=
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
  -keyout "$work/key.pem" -out "$work/cert.pem" -subj /CN=localhost \
  -addext subjectAltName=DNS:localhost,IP:127.0.0.1 -addext basicConstraints=critical,CA:FALSE 2>/dev/null
"$bin" --demo --tls-listen 127.0.0.1:0 --tls-cert "$work/cert.pem" --tls-key "$work/key.pem" \
  --workers 2 >"$work/out" 2>"$work/err" &
pid=$!
for _ in $(seq 50); do grep -q 'listening on https' "$work/out" && break; sleep 0.1; done
port=$(grep 'listening on https' "$work/out" | sed 's#.*:\([0-9]*\)/$#\1#')
[ -n "$port" ] || { echo "https server did not start"; cat "$work/err"; exit 1; }
if grep -q 'listening on http://' "$work/out"; then echo "a plain listener was opened with only --tls-listen"; exit 1; fi
base="https://localhost:$port"

# curl: TLS 1.3 by default, TLS 1.2 when capped, ALPN http/1.1, the certificate verified.
curl -sS -v --cacert "$work/cert.pem" -o /dev/null "$base/master.m3u8" 2>"$work/curl13"
grep -q 'SSL connection using TLSv1.3' "$work/curl13" || { cat "$work/curl13"; exit 1; }
grep -q 'ALPN: server accepted http/1.1' "$work/curl13" || { cat "$work/curl13"; exit 1; }
v=$(curl -sS --cacert "$work/cert.pem" --tls-max 1.2 -o /dev/null -w '%{http_code} %{http_version}' -v "$base/master.m3u8" 2>"$work/curl12")
[ "$v" = "200 1.1" ] || { echo "curl TLS 1.2: $v"; cat "$work/curl12"; exit 1; }
grep -q 'SSL connection using TLSv1.2' "$work/curl12" || { cat "$work/curl12"; exit 1; }
if curl -sS --cacert "$work/cert.pem" --tls-max 1.1 -o /dev/null "$base/master.m3u8" 2>/dev/null; then
  echo "TLS 1.1 was accepted"; exit 1
fi
echo "curl: TLS 1.3 and 1.2 with ALPN http/1.1; TLS 1.1 refused"

# openssl s_client: the second connection resumes (TLS 1.3 tickets, then TLS 1.2).
for v in -tls1_3 -tls1_2; do
  printf 'GET /master.m3u8 HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n' |
    openssl s_client "$v" -connect "127.0.0.1:$port" -servername localhost -CAfile "$work/cert.pem" \
      -ign_eof -sess_out "$work/sess" >"$work/s1" 2>&1
  printf 'GET /master.m3u8 HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n' |
    openssl s_client "$v" -connect "127.0.0.1:$port" -servername localhost -CAfile "$work/cert.pem" \
      -ign_eof -sess_in "$work/sess" >"$work/s2" 2>&1
  grep -q '^Reused, TLSv1\.[23]' "$work/s2" || { echo "openssl $v: no resumption"; grep -E 'New|Reused' "$work/s2"; exit 1; }
  grep -q 'HTTP/1.1 200' "$work/s2" || { cat "$work/s2"; exit 1; }
done
echo "openssl s_client: sessions resume over TLS 1.3 and 1.2"

# ffmpeg follows the live demo over https.
timeout 60 ffmpeg -nostdin -v error -i "$base/master.m3u8" -map 0 -t 20 -c copy -f null - 2>"$work/ffmpeg.err" \
  || { cat "$work/ffmpeg.err"; exit 1; }
if [ -s "$work/ffmpeg.err" ]; then echo "ffmpeg reported errors over https:"; cat "$work/ffmpeg.err"; exit 1; fi
echo "ffmpeg read the live demo over https for 20 s without errors"

# TLS lint: every scan named, judged by .ci/tls-lint.py.
sslyze --sslv2 --sslv3 --tlsv1 --tlsv1_1 --tlsv1_2 --tlsv1_3 --compression --reneg --heartbleed \
  --openssl_ccs --robot --early_data --fallback --json_out="$work/scan.json" "127.0.0.1:$port" >"$work/sslyze.txt" 2>&1 \
  || { cat "$work/sslyze.txt"; exit 1; }
python3 .ci/tls-lint.py "$work/scan.json"

kill -TERM "$pid"; wait "$pid" || { echo "https server did not exit 0 on SIGTERM"; exit 1; }
pid=
