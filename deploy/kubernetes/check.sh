#!/usr/bin/env bash
# Validates the manifests offline and checks what a schema cannot (check.py). CI runs it; alone:
#
#   deploy/kubernetes/check.sh    (root; after `cargo build --release -p corestream-tune`)
#
# Needs kubernetes-validate (PyPI, for this python3; it ships the Kubernetes schemas, no cluster or network) and
# python3 with PyYAML. CORESTREAM_TUNE_BIN chooses the tuner (default target/release/, else PATH).
set -euo pipefail
cd "$(dirname "$0")/../.."

tune_bin=${CORESTREAM_TUNE_BIN:-}
if [ -z "$tune_bin" ]; then
  if [ -x target/release/corestream-tune ]; then tune_bin=target/release/corestream-tune; else tune_bin=$(command -v corestream-tune); fi
fi

echo "== kubernetes-validate --strict (the oldest Kubernetes we support, and the newest schema shipped)"
for version in 1.29.0 ""; do
  python3 -m kubernetes_validate --strict ${version:+-k "$version"} deploy/kubernetes/*.yaml
done
echo "== what a schema cannot check"
python3 deploy/kubernetes/check.py --tune-bin "$tune_bin"
