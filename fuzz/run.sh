#!/usr/bin/env bash
# Fuzz the request path (fuzz_targets/request.rs) for SECONDS (default 60) on the stable
# toolchain: cargo-fuzz needs nightly-only rustc flags, which RUSTC_BOOTSTRAP=1 unlocks.
# Exits non-zero when libFuzzer finds a crash; the input is saved under
# fuzz/artifacts/request/ -- copy it to fuzz/regressions/request/ so `cargo test` replays
# it from then on (server/tests/hostile_corpus.rs).
#   usage: fuzz/run.sh [SECONDS]        needs: cargo install cargo-fuzz --locked
set -euo pipefail
secs=${1:-60}
case $secs in '' | *[!0-9]*) echo "usage: $0 [SECONDS]" >&2; exit 2 ;; esac
cd "$(dirname "$0")"
if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "cargo-fuzz is not installed: run 'cargo install cargo-fuzz --locked'" >&2
  exit 2
fi
export RUSTC_BOOTSTRAP=1
# Inputs libFuzzer finds go to corpus/ (not committed); seeds/ holds real player requests
# and regressions/ every input that once crashed.
mkdir -p corpus/request
cargo fuzz build --release --debug-assertions request
cargo fuzz run --release --debug-assertions request corpus/request seeds/request regressions/request -- \
  -dict=request.dict -max_len=16384 -timeout=10 -rss_limit_mb=2048 \
  -max_total_time="$secs" -print_final_stats=1
