#!/usr/bin/env bash
# What a server holds after its viewers leave mid-download: N connections download a
# 687,500-byte segment for SECONDS, then the load generators exit; every 2-5 s after, the
# server's sockets by TCP state (ss) and the box's TCP memory (/proc/net/sockstat). Runs in a
# fresh network namespace (unshare -n: its own loopback, per-namespace somaxconn and
# tcp_max_syn_backlog raised there only; the host's settings are not touched), one wrk process
# per 10,000 connections on 127.0.0.K. docs/reliability.md finding 14 (2026-12-07, 100k, 13
# processes): sockets in CLOSE-WAIT 0 / 2 / 5 / 20 s after the clients left: 19,639 / 11,379 /
# 7,603 / 486 at 514017a, 19,263 / 1,903 / 0 / 0 at 0f99a4c; nginx none at any time.
#
#   benches/closewait.sh [BIN=target/release/corestream] [PROCESSES=13] [CONNS=100000] [SECONDS=20]
#   SERVER=nginx benches/closewait.sh - [WORKERS=13] ...   (nginx with benches/nginx.conf.in)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
if [ "${CLOSEWAIT_IN_NETNS:-0}" != 1 ]; then
  command -v wrk >/dev/null || { echo "closewait.sh: needs wrk (apt-get install wrk)" >&2; exit 1; }
  command -v unshare >/dev/null || { echo "closewait.sh: needs unshare (util-linux)" >&2; exit 1; }
  exec env CLOSEWAIT_IN_NETNS=1 unshare -n "$0" "$@"
fi
. "$here/lib.sh"
bin=${1:-$here/../target/release/corestream}
procs=${2:-13} conns=${3:-100000} secs=${4:-20}
server=${SERVER:-corestream}
ip link set lo up
sysctl -qw net.core.somaxconn=65535 net.ipv4.tcp_max_syn_backlog=65535
ulimit -n 20000
bench_workdir closewait
mkdir -p "$work/www/r2500"
head -c 687500 /dev/urandom >"$work/www/r2500/seg3.ts"
chmod -R a+rX "$work/www"
port=19400
if [ "$server" = nginx ]; then
  sed -e "s/@WORKERS@/$procs/; s/@NOFILE@/19999/; s/@CONNS@/19000/; s/@LISTEN@/0.0.0.0:$port/" \
    -e "s|@PREFIX@|$work|g; s|@ROOT@|$work/www|; s/@USER@/$(id -un)/" \
    "$here/nginx.conf.in" >"$work/nginx.conf"
  nginx -p "$work" -c "$work/nginx.conf" 2>/dev/null &
  pids+=($!)
else
  [ -x "$bin" ] || { echo "closewait.sh: $bin not found (cargo build --release -p corestream)" >&2; exit 1; }
  for _ in $(seq "$procs"); do
    "$bin" --root "$work/www" --listen "0.0.0.0:$port" --workers 1 >/dev/null 2>&1 &
    pids+=($!)
  done
fi
for _ in $(seq 50); do curl -sf -o /dev/null "http://127.0.0.1:$port/r2500/seg3.ts" && break; sleep 0.1; done
n=$(((conns + 9999) / 10000))
clients=()
for k in $(seq "$n"); do
  wrk -t1 -c$((conns / n)) -d"${secs}s" --timeout 10s "http://127.0.0.$k:$port/r2500/seg3.ts" >/dev/null 2>&1 &
  clients+=($!)
done
wait "${clients[@]}"
echo "$server, $conns connections downloading for $secs s, then the clients gone:"
for t in 0 2 5 10 20; do
  [ "$t" = 0 ] || sleep $((t - last))
  last=$t
  states=$(ss -tanH "sport = :$port" | awk '$1 != "LISTEN" {print $1}' | sort | uniq -c | awk '{printf "%s %s, ", $2, $1}')
  echo "  +${t}s: ${states:-no sockets, }$(grep '^TCP:' /proc/net/sockstat)"
done
