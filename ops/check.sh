#!/usr/bin/env bash
# Checks the Prometheus rules and the Grafana dashboard (issue 19). CI runs it; it runs alone:
#
#   ops/check.sh     (after `cargo build --release -p corestream -p corestream-tune`)
#
# CORESTREAM_BIN / CORESTREAM_TUNE_BIN choose the binaries (default target/release/, else PATH,
# e.g. from the .deb). Needs promtool (Debian `prometheus`) and python3 with PyYAML.
set -euo pipefail
cd "$(dirname "$0")/.."

pick() { # NAME: target/release/NAME if built, else NAME on PATH
  if [ -x "target/release/$1" ]; then echo "target/release/$1"; else command -v "$1" || { echo "ops/check: no $1 binary: build it or set the variable" >&2; exit 1; }; fi
}
server_bin=${CORESTREAM_BIN:-$(pick corestream)}
tune_bin=${CORESTREAM_TUNE_BIN:-$(pick corestream-tune)}

echo "== promtool check rules"
promtool check rules ops/prometheus/corestream.rules.yml
echo "== promtool test rules"
promtool test rules ops/prometheus/corestream.rules.test.yml
echo "== tests cover every alert, runbooks, dashboard, metric names against a real scrape"
python3 ops/check.py --server-bin "$server_bin" --tune-bin "$tune_bin"
