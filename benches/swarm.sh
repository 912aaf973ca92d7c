#!/usr/bin/env bash
# HLS viewer swarm against the built-in live demo stream, served by corestream and by nginx
# from the same directory, at several audience sizes.
#
#   benches/swarm.sh                       # 1000 10000 50000 viewers, 40 s each
#   VIEWERS="1000 5000" DURATION=60 benches/swarm.sh
#   LL=1 VIEWERS="1000 10000" benches/swarm.sh   # LL-HLS: --demo-ll, swarm --ll
#
# With LL=1 the demo publishes Low-Latency HLS (0.5 s parts) and the viewers play it the
# low-latency way (blocking reloads, preload-hinted parts, two connections each); part
# publication times come from the files' mtimes in the demo directory (--published-from),
# and nginx's viewers, which cannot block, poll.
#
# corestream: process 1 runs `--demo` (publisher + server); when the audience needs more
# descriptors than one process has (20000), extra corestream processes join the same port
# (SO_REUSEPORT) and serve the same directory. nginx: benches/nginx.conf.in with the same
# total worker count, root = the demo directory. The swarm alternates servers per size
# (corestream first on odd sizes, nginx first on even ones). Leaves no process behind.
set -euo pipefail

VIEWERS=${VIEWERS:-"1000 10000 50000"}
DURATION=${DURATION:-40}
RAMP=${RAMP:-10}
MIX=${MIX:-"30,50,20"}
LL=${LL:-0}
CS_PORT=${CS_PORT:-18400}
NG_PORT=${NG_PORT:-18401}

here=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$here")
command -v nginx >/dev/null || { echo "swarm.sh: nginx not found (apt-get install -y nginx)" >&2; exit 2; }
echo "== building corestream and corestream-bench (release)" >&2
(cd "$repo" && cargo build --release -q -p corestream -p corestream-bench)
tdir=${CARGO_TARGET_DIR:-$repo/target}/release
cs_bin=$tdir/corestream
bench=$tdir/corestream-bench

# shellcheck source=lib.sh
. "$here/lib.sh"
bench_workdir swarm

max=0
for v in $VIEWERS; do [ "$v" -gt "$max" ] && max=$v; done
if [ "$LL" = 1 ]; then
  demo_flag=--demo-ll; swarm_ll=(--ll); lanes=2; kind=swarm-ll
else
  demo_flag=--demo; swarm_ll=(); lanes=1; kind=swarm
fi
# Processes so socket + open file per downloading connection fit each fd table (~8k
# connections per process; an LL viewer holds two); at least one worker per CPU.
procs=$(( (max * lanes * 9 / 4 + 17999) / 18000 ))
[ "$procs" -lt 1 ] && procs=1
cpus=$(nproc)
if [ "$procs" -eq 1 ]; then cs_workers=$cpus; total=$cpus; else cs_workers=1; total=$procs; [ "$total" -lt "$cpus" ] && total=$cpus; fi

demo=$work/demo
mkdir -p "$demo"
"$cs_bin" "$demo_flag" --root "$demo" --listen "0.0.0.0:$CS_PORT" --workers "$cs_workers" >"$work/cs0.out" 2>"$work/cs0.err" &
pids+=($!)
for _ in $(seq 100); do grep -q 'listening on' "$work/cs0.out" 2>/dev/null && break; sleep 0.1; done
grep -q 'listening on' "$work/cs0.out" || { echo "corestream $demo_flag did not start:"; cat "$work/cs0.err"; exit 1; } >&2
for i in $(seq 2 $(( total / cs_workers ))); do
  "$cs_bin" --root "$demo" --listen "0.0.0.0:$CS_PORT" --workers "$cs_workers" >"$work/cs$i.out" 2>"$work/cs$i.err" &
  pids+=($!)
done
mkdir -p "$work/nginx"
sed -e "s#@WORKERS@#$total#g" -e "s#@NOFILE@#19999#g" -e "s#@CONNS@#19000#g" \
    -e "s#@PREFIX@#$work/nginx#g" -e "s#@USER@#$(id -un)#g" \
    -e "s#@LISTEN@#0.0.0.0:$NG_PORT#g" -e "s#@ROOT@#$demo#g" \
    "$here/nginx.conf.in" >"$work/nginx/nginx.conf"
nginx -p "$work/nginx" -c "$work/nginx/nginx.conf" -e "$work/nginx/error.log" 2>"$work/ng.err" &
pids+=($!)
chmod -R a+rX "$demo"
for _ in $(seq 100); do
  curl -sf -o /dev/null "http://127.0.0.1:$CS_PORT/master.m3u8" && curl -sf -o /dev/null "http://127.0.0.1:$NG_PORT/master.m3u8" && break
  sleep 0.1
done
curl -sf -o /dev/null "http://127.0.0.1:$NG_PORT/master.m3u8" || { echo "nginx cannot serve the demo:"; cat "$work/nginx/error.log"; exit 1; } >&2
echo "== corestream: $(( total / cs_workers )) process(es) x $cs_workers worker(s) on :$CS_PORT (the first runs $demo_flag); nginx: $total workers on :$NG_PORT; root $demo" >&2

if [ "$LL" = 1 ]; then swarm_ll+=(--published-from "$demo"); fi
out=${OUT:-$here/results/$(date -u +%F)-$(hostname)-$kind.md}
{
  echo "# HLS viewer swarm$([ "$LL" = 1 ] && echo ' (LL-HLS)'): corestream vs nginx on the built-in live demo ($(date -u +%F))"
  echo
  echo "Command: \`LL=$LL VIEWERS=\"$VIEWERS\" DURATION=$DURATION RAMP=$RAMP MIX=$MIX benches/swarm.sh\`"
  echo
  echo "corestream: $(( total / cs_workers )) process(es) x $cs_workers worker(s) on 0.0.0.0:$CS_PORT, the first with $demo_flag (publisher); nginx: $total workers (benches/nginx.conf.in) on 0.0.0.0:$NG_PORT with root = the demo directory. Both serve the same files while the demo publishes. $(nproc) CPUs shared by servers, swarm and other jobs; kernel $(uname -r); $(nginx -v 2>&1 | sed 's/.*: //')."
  echo
  echo "Demo segment sizes: $(for r in 1080p 720p 480p; do f=$(ls -S "$demo/$r/"*.ts 2>/dev/null | head -n1); [ -n "$f" ] && printf '%s %s B; ' "$r" "$(stat -c %s "$f")"; done)"
  echo
} >"$out"
n=0
for v in $VIEWERS; do
  n=$((n + 1))
  if [ $((n % 2)) -eq 1 ]; then order="corestream nginx"; else order="nginx corestream"; fi
  for server in $order; do
    if [ "$server" = corestream ]; then port=$CS_PORT; else port=$NG_PORT; fi
    echo "== swarm $v viewers -> $server" >&2
    "$bench" swarm --viewers "$v" --duration "$DURATION" --ramp "$RAMP" --rendition-mix "$MIX" \
      "${swarm_ll[@]}" --label "$server" "http://127.0.0.1:$port/master.m3u8" | tee -a "$out"
    echo >>"$out"
    sleep 2
  done
done
echo "wrote $out" >&2
