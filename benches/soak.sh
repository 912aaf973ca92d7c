#!/usr/bin/env bash
# Soak: MINUTES (default 15) of the HLS viewer mix against one `corestream --demo` process
# holding as many viewer connections as one process can here (nofile 20000: 19000 viewers,
# one keep-alive connection each), while the demo stream rotates segments every 2 s.
#
# Every 10 s it samples the server's open fds, RSS, active connections and request counters,
# and the latency of a playlist and a segment request from a separate probe client. The run
# passes only if, after the ramp, fds and RSS are flat (no growth trend), the swarm saw no
# failed request (connect, reset, timeout, non-2xx, malformed), the server answered no 5xx,
# and the server is alive at the end.
#
#   usage: benches/soak.sh [MINUTES]     env: SOAK_VIEWERS (19000), SOAK_WORKERS (nproc),
#          SOAK_RAMP (60 s over which viewers join), SOAK_OUT (results directory)
#   needs: curl, gnuplot (optional, for the plot), python3
#   writes benches/results/soak-<date>/{samples.csv,swarm.md,summary.md,soak.png}
set -euo pipefail
minutes=${1:-15}
case $minutes in '' | *[!0-9]*) echo "usage: $0 [MINUTES]" >&2; exit 2 ;; esac
viewers=${SOAK_VIEWERS:-19000}
workers=${SOAK_WORKERS:-$(nproc)}
ramp=${SOAK_RAMP:-60}
warmup=$((ramp + 30))
cd "$(dirname "$0")/.."
target=${CARGO_TARGET_DIR:-target}
out=${SOAK_OUT:-benches/results/soak-$(date -u +%Y-%m-%d)}
mkdir -p "$out"

cargo build --release -q -p corestream -p corestream-bench
bin=$target/release/corestream
bench=$target/release/corestream-bench

demo=$(mktemp -d)
log=$(mktemp)
banner=$(mktemp)
"$bin" --demo --root "$demo" --listen 127.0.0.1:0 --admin 127.0.0.1:0 --workers "$workers" \
  >"$banner" 2>"$log" &
pid=$!
swarm_pid=
cleanup() {
  [ -n "$swarm_pid" ] && kill "$swarm_pid" 2>/dev/null || true
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  rm -rf "$demo" "$banner" "$out/swarm.stdout"
}
trap cleanup EXIT
for _ in $(seq 100); do grep -q 'listening on' "$banner" && break; sleep 0.1; done
base=$(grep 'listening on' "$banner" | grep -o 'http://[0-9.:]*')
admin=$(grep 'admin on' "$banner" | grep -o 'http://[0-9.:]*')
[ -n "$base" ] && [ -n "$admin" ] || { echo "server did not start"; cat "$log"; exit 1; }
echo "soak: $viewers viewers for $minutes min against $base (pid $pid, $workers workers); results in $out"

metric() { curl -s -m 5 "$admin/metrics" | awk -v k="$1" '$1 == k { print $2; exit }'; }
sum_5xx() { curl -s -m 5 "$admin/metrics" | awk '/^corestream_requests_total\{code="5/ { s += $2 } END { print s + 0 }'; }
probe_ms() { curl -s -o /dev/null -m 10 -w '%{time_total}' "$1" | awk '{ printf "%.2f", $1 * 1000 }'; }

"$bench" swarm --viewers "$viewers" --duration $((minutes * 60)) --ramp "$ramp" --timeout 10 \
  --rendition-mix 30,50,20 --label corestream --report "$out/swarm.md" "$base/master.m3u8" \
  >"$out/swarm.stdout" 2>"$out/swarm.stderr" &
swarm_pid=$!

echo "t_s,fds,rss_kib,active,requests,errors_5xx,playlist_ms,segment_ms,answers_404,load1" >"$out/samples.csv"
start=$(date +%s)
while sleep 10 && kill -0 "$swarm_pid" 2>/dev/null; do
  kill -0 "$pid" 2>/dev/null || { echo "soak: FAIL: the server died"; break; }
  t=$(($(date +%s) - start))
  fds=$(ls /proc/"$pid"/fd | wc -l)
  rss=$(awk '/^VmRSS:/ { print $2 }' /proc/"$pid"/status)
  active=$(metric corestream_connections_active)
  reqs=$(curl -s -m 5 "$admin/metrics" | awk '/^corestream_requests_total\{/ { s += $2 } END { print s + 0 }')
  e5=$(sum_5xx)
  seg=$(curl -s -m 5 "$base/720p/index.m3u8" | grep -v '^#' | grep . | tail -n1)
  pl=$(probe_ms "$base/720p/index.m3u8")
  sg=$(probe_ms "$base/720p/$seg")
  n404=$(metric 'corestream_requests_total{code="404"}')
  load1=$(cut -d' ' -f1 /proc/loadavg)
  echo "$t,$fds,$rss,${active:-0},$reqs,$e5,$pl,$sg,${n404:-0},$load1" | tee -a "$out/samples.csv"
done
swarm_rc=0
wait "$swarm_pid" || swarm_rc=$?
swarm_pid=
alive=yes
kill -0 "$pid" 2>/dev/null || alive=no

verdict=0
python3 - "$out" "$warmup" "$swarm_rc" "$alive" "$viewers" "$minutes" <<'EOF' || verdict=$?
import csv, re, sys
out, warmup, swarm_rc, alive, viewers, minutes = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5], sys.argv[6]
rows = [r for r in csv.DictReader(open(f"{out}/samples.csv"))]
steady = [r for r in rows if int(r["t_s"]) >= warmup]
fail = []
def slope(xs, ys):
    n = len(xs); mx = sum(xs) / n; my = sum(ys) / n
    den = sum((x - mx) ** 2 for x in xs) or 1
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / den
def trend(name, key, unit, tol_abs, tol_rel):
    if len(steady) < 6:
        fail.append(f"too few steady samples ({len(steady)}) to judge {name}")
        return ""
    t = [int(r["t_s"]) for r in steady]; v = [float(r[key]) for r in steady]
    s = slope(t, v) * 60  # per minute
    third = max(1, len(v) // 3)
    first, last = sum(v[:third]) / third, sum(v[-third:]) / third
    grow = last - first
    ok = grow <= max(tol_abs, tol_rel * first)
    if not ok:
        fail.append(f"{name} grew {grow:.0f} {unit} from the first to the last third of the steady run")
    return f"| {name} | {min(v):.0f} | {max(v):.0f} | {first:.0f} | {last:.0f} | {s:+.1f} {unit}/min | {'flat' if ok else 'GROWING'} |"
lines = [trend("open fds", "fds", "fds", 20, 0.01), trend("RSS", "rss_kib", "KiB", 8192, 0.05)]
md = open(f"{out}/swarm.md").read() if swarm_rc == 0 else ""
m = re.search(r"Errors: connect (\d+), read/reset (\d+), timeout (\d+), non-2xx (\d+), malformed response/playlist (\d+)", md)
errors = sum(int(x) for x in m.groups()) if m else None
if errors is None:
    fail.append(f"no swarm report (exit {swarm_rc})")
elif errors:
    fail.append(f"swarm saw {errors} failed requests: {m.group(0)}")
e5 = int(float(rows[-1]["errors_5xx"])) if rows else 0
if e5:
    fail.append(f"server answered {e5} 5xx")
if alive != "yes":
    fail.append("server not alive at the end")
reqs = int(float(rows[-1]["requests"])) if rows else 0
active = [float(r["active"]) for r in steady] or [0]
pl = sorted(float(r["playlist_ms"]) for r in rows) or [0]
sg = sorted(float(r["segment_ms"]) for r in rows) or [0]
q = lambda v, p: v[min(len(v) - 1, int(p * len(v)))]
verdict = "PASS" if not fail else "FAIL"
summary = f"""# Soak {verdict}: {viewers} viewers, {minutes} min, `corestream --demo`

Samples every 10 s in `samples.csv`; the swarm's own report (latency from the intended send
time, stalls, errors) in `swarm.md`; plot in `soak.png`. Trends judged after {warmup} s
(ramp + 30 s), first third against last third of the steady samples.

| series | min | max | first third | last third | slope | verdict |
| --- | ---: | ---: | ---: | ---: | ---: | --- |
{chr(10).join(lines)}

- connections held (steady): min {min(active):.0f}, max {max(active):.0f}
- requests served by the server: {reqs}; 5xx: {e5}; swarm errors: {errors}
- 404 answers (segments requested after they expired: a viewer more than 26 s behind): {int(float(rows[-1].get("answers_404") or 0)) if rows else 0}
- machine load average (1 min) over the run: max {max((float(r.get("load1") or 0) for r in rows), default=0):.1f} on {__import__("os").cpu_count()} CPUs (other jobs on a shared box show here)
- probe latency over the run (separate client, every 10 s): playlist p50 {q(pl, .5):.2f} ms, max {pl[-1]:.2f} ms; segment p50 {q(sg, .5):.2f} ms, max {sg[-1]:.2f} ms
- server alive at the end: {alive}

{"Failures:" + chr(10) + chr(10).join("- " + f for f in fail) if fail else "No failure."}
"""
open(f"{out}/summary.md", "w").write(summary)
print(summary)
sys.exit(0 if not fail else 1)
EOF

if command -v gnuplot >/dev/null; then
  gnuplot <<EOF || true
set terminal pngcairo size 1100,700
set output "$out/soak.png"
set datafile separator ","
set multiplot layout 3,1 title "corestream soak: $viewers viewers, $minutes min"
set xlabel "seconds"
set ylabel "RSS (MiB)"
plot "$out/samples.csv" using 1:(\$3/1024) every ::1 with linespoints title "RSS"
set ylabel "fds / connections"
plot "$out/samples.csv" using 1:2 every ::1 with linespoints title "open fds", "" using 1:4 every ::1 with lines title "active connections"
set ylabel "probe latency (ms)"
plot "$out/samples.csv" using 1:7 every ::1 with linespoints title "playlist", "" using 1:8 every ::1 with linespoints title "segment"
unset multiplot
EOF
fi
cp "$log" "$out/server.log"
exit $verdict
