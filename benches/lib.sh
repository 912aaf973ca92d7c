# Sourced by the bench scripts: `bench_workdir NAME` makes a world-readable temporary
# directory in $work (nginx workers must read it) and an empty $pids list; on exit or
# interrupt every process in $pids is killed and waited for and the directory removed, so a
# bench leaves nothing behind.
bench_workdir() {
  work=$(mktemp -d "/tmp/corestream-$1.XXXXXX")
  chmod 755 "$work"
  pids=()
  trap bench_cleanup EXIT INT TERM
}

bench_cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
