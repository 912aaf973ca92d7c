#!/usr/bin/env bash
# Builds the Debian package: target/debian/corestream_<version>-<rev>_<arch>.deb.
#
#   1. cargo build --release of corestream, corestream-tune and corestream-dist (the package
#      takes the binaries as built: `cargo deb --no-build`).
#   2. corestream-dist packaging/out: man pages, completions and etc/default/corestream, generated
#      from the clap definitions, so they cannot drift from --help.
#   3. systemd/*.service -> packaging/out/lib/systemd/system/ with ExecStart in /usr/bin. The units
#      in systemd/ stay the single source and keep /usr/local/bin for hand installs.
#   4. cargo deb -p corestream --no-build (metadata: [package.metadata.deb] in server/Cargo.toml).
#
# Needs cargo-deb (`cargo install cargo-deb --locked`). Prints the path of the .deb last.
set -euo pipefail
cd "$(dirname "$0")/.."

command -v cargo-deb >/dev/null || { echo "build-deb: cargo-deb is missing: cargo install cargo-deb --locked" >&2; exit 1; }

# Same commit, same man page dates and file times (reproducible-builds.org convention).
export SOURCE_DATE_EPOCH="${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || date +%s)}"

# One package per build, as .ci/run builds them: building them together would unify their
# dependencies' features differently and rebuild what CI has just built.
for package in corestream corestream-tune corestream-dist; do
  nice -n 10 cargo build --release -p "$package" >&2
done
target=$(cargo metadata --no-deps --format-version 1 | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')

dist=packaging/out
rm -rf "$dist"
"$target/release/corestream-dist" "$dist" >/dev/null

mkdir -p "$dist/lib/systemd/system"
for unit in systemd/*.service; do
  sed -E 's#^(Exec[A-Za-z]*=[-@:+!]*)/usr/local/bin/#\1/usr/bin/#' "$unit" >"$dist/lib/systemd/system/$(basename "$unit")"
done
if grep -n '^Exec.*/usr/local/' "$dist"/lib/systemd/system/*.service >&2; then
  echo "build-deb: an Exec line still points into /usr/local (see above)" >&2
  exit 1
fi

# The changelog is written by people; it must name the version being packaged.
version=$(sed -n 's/^version = "\(.*\)"/\1/p' server/Cargo.toml | head -n1)
if ! head -n1 packaging/debian/changelog | grep -q "^corestream ($version-"; then
  echo "build-deb: packaging/debian/changelog does not start with an entry for $version; add one (dch -v $version-1)" >&2
  exit 1
fi

nice -n 10 cargo deb -p corestream --no-build --strip "$@" | tail -n1
