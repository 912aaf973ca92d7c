#!/usr/bin/env bash
# Fuzz TARGET for SECONDS (default 60) on the stable toolchain: cargo-fuzz needs
# nightly-only rustc flags, which RUSTC_BOOTSTRAP=1 unlocks. Targets: `request` (the request
# path, fuzz_targets/request.rs; default) and `inputs` (bodies, playlists, CMCD, Range and
# caching fields from packagers and origins, corestream::fixture::peer_inputs).
# Exits non-zero when libFuzzer finds a crash; the input is saved under
# fuzz/artifacts/TARGET/ -- copy it to fuzz/regressions/TARGET/ so `cargo test` replays
# it from then on (server/tests/hostile_corpus.rs).
#   usage: fuzz/run.sh [SECONDS] [TARGET]    needs: cargo install cargo-fuzz --locked
set -euo pipefail
secs=${1:-60}
target=${2:-request}
case $secs in '' | *[!0-9]*) echo "usage: $0 [SECONDS] [request|inputs]" >&2; exit 2 ;; esac
case $target in
  request) dict=(-dict=request.dict -max_len=16384) ;;
  inputs) dict=(-max_len=8192) ;;
  *) echo "usage: $0 [SECONDS] [request|inputs]" >&2; exit 2 ;;
esac
cd "$(dirname "$0")"
if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "cargo-fuzz is not installed: run 'cargo install cargo-fuzz --locked'" >&2
  exit 2
fi
export RUSTC_BOOTSTRAP=1
# Inputs libFuzzer finds go to corpus/ (not committed); seeds/ holds real player requests
# and regressions/ every input that once crashed.
mkdir -p "corpus/$target"
cargo fuzz build --release --debug-assertions "$target"
cargo fuzz run --release --debug-assertions "$target" "corpus/$target" "seeds/$target" "regressions/$target" -- \
  "${dict[@]}" -timeout=10 -rss_limit_mb=2048 \
  -max_total_time="$secs" -print_final_stats=1
