#!/usr/bin/env bash
# Installs the corestream .deb on this machine, checks it, removes and purges it, and checks
# that nothing is left. CI runs it after packaging/build-deb.sh; it runs on its own too:
#
#   packaging/check-deb.sh [PATH.deb]     (default: the newest target/debian/corestream_*.deb)
#
# Needs root, dpkg, lintian, man-db and systemd (for systemd-analyze; systemd need not be
# running). Refuses to start if corestream is already installed or a corestream user exists,
# since it could not then tell what the package left behind. Changes no kernel setting: it
# checks that installing changed none. Exits non-zero at the first failed check.
set -euo pipefail
cd "$(dirname "$0")/.."

fail() { echo "check-deb: FAIL: $*" >&2; exit 1; }
ok() { echo "check-deb: ok: $*"; }

deb=${1:-$(ls -t target/debian/corestream_*.deb 2>/dev/null | head -n1)}
[ -f "$deb" ] || fail "no .deb (run packaging/build-deb.sh first)"
[ "$(id -u)" = 0 ] || fail "needs root (dpkg -i)"
if dpkg-query -W -f '${db:Status-Status}' corestream 2>/dev/null | grep -qv '^not-installed$'; then
  fail "corestream is already installed here; purge it first (dpkg -P corestream)"
fi
getent passwd corestream >/dev/null && fail "a corestream user already exists; this check needs a machine without one"
echo "check-deb: $deb"

# Everything outside the volatile and private places, to compare after the purge. (/work: other
# checkouts on a shared build machine; /etc/passwd- and friends: the backups adduser and deluser
# keep, which may appear.)
snapshot() {
  find / -xdev \( -path /proc -o -path /sys -o -path /dev -o -path /run -o -path /tmp \
    -o -path /var/tmp -o -path /var/cache -o -path /var/log -o -path /work -o -path "$HOME" -o -path "$PWD" \
    -o -path '/var/lib/dpkg/*-old' -o -path /var/lib/apt \
    -o -path /etc/passwd- -o -path /etc/group- -o -path /etc/shadow- -o -path /etc/gshadow- \) -prune -o -print 2>/dev/null | sort
}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
snapshot >"$work/before"
# The profile's kernel keys as they are now (read only), to show that installing set none.
profile_keys() {
  sed -n 's/^\([a-z][a-z0-9_.]*\) *=.*/\1/p' sysctl.d/60-corestream.conf | while read -r key; do
    printf '%s = %s\n' "$key" "$(tr -s ' \t' ' ' <"/proc/sys/${key//.//}" 2>/dev/null || echo '?')"
  done
}
profile_keys >"$work/sysctl-before"

echo "== lintian"
# Errors and warnings fail; info and pedantic tags are shown (none today) but do not fail, since
# some depend on the bytes of the binaries (a "spelling error" in machine code, an override
# that a rebuild makes unused).
lintian --fail-on error,warning -I --pedantic "$deb" | tee "$work/lintian.log"
ok "lintian: no error or warning; $(grep -c '^[IP]:' "$work/lintian.log" || true) info/pedantic tags (overrides: packaging/debian/lintian-overrides)"

echo "== contents"
dpkg-deb -c "$deb" | awk '{print $6}' | sed 's#^\./#/#' >"$work/contents"
dpkg-deb --ctrl-tarfile "$deb" | tar -xO ./conffiles >"$work/conffiles"
for f in /usr/bin/corestream /usr/bin/corestream-tune \
         /lib/systemd/system/corestream.service /lib/systemd/system/corestream@.service \
         /lib/systemd/system/corestream-tune.service \
         /etc/default/corestream /etc/security/limits.d/90-corestream.conf \
         /usr/share/corestream/sysctl.d/60-corestream.conf \
         /usr/share/man/man8/corestream.8.gz /usr/share/man/man8/corestream-tune.8.gz; do
  grep -qxF "$f" "$work/contents" || fail "$f is not in the package"
done
for cmd in corestream corestream-tune; do
  for f in /usr/share/bash-completion/completions/$cmd /usr/share/zsh/vendor-completions/_$cmd \
           /usr/share/fish/vendor_completions.d/$cmd.fish; do
    grep -qxF "$f" "$work/contents" || fail "$f is not in the package"
  done
done
diff <(sort "$work/conffiles") <(printf '%s\n' /etc/default/corestream /etc/security/limits.d/90-corestream.conf) \
  || fail "conffiles differ from /etc/default/corestream + limits.d"
if grep -E '^/(etc/sysctl\.d|usr/lib/sysctl\.d|lib/sysctl\.d)/' "$work/contents"; then
  fail "the package puts a file where systemd-sysctl would apply it at boot"
fi
ok "binaries, units, conffiles, man pages, bash/zsh/fish completions are in the package"

echo "== dpkg -i"
# Minimal Debian images exclude /usr/share/man from every package (dpkg.cfg.d path-exclude);
# include our pages again so `man -w` below tests what a full system gets.
dpkg --path-include='/usr/share/man/man8/corestream*' -i "$deb" | tee "$work/install.log"
grep -q 'corestream-tune apply' "$work/install.log" || fail "postinst did not say how to apply the kernel profile"
dpkg -L corestream >"$work/owned"

pw=$(getent passwd corestream) || fail "postinst created no corestream user"
IFS=: read -r _ _ uid gid _ home shell <<<"$pw"
[ "$uid" -lt 1000 ] || fail "corestream user is not a system user (uid $uid)"
[ "$home" = /nonexistent ] || fail "corestream user's home is $home"
case "$shell" in */nologin|/bin/false) ;; *) fail "corestream user has a login shell ($shell)";; esac
[ "$(getent group corestream | cut -d: -f3)" = "$gid" ] || fail "no corestream group as the user's primary group"
ok "system user corestream (uid $uid, home $home, shell $shell)"

for f in $(grep -v '/$' "$work/contents"); do
  [ -d "$f" ] && continue
  [ -f "$f" ] || fail "$f was not installed"
done
for f in /usr/bin/corestream /usr/bin/corestream-tune; do
  [ "$(stat -c %a:%U "$f")" = 755:root ] || fail "$f is $(stat -c %a:%U "$f"), want 755:root"
done
[ "$(stat -c %a "/etc/default/corestream")" = 644 ] || fail "/etc/default/corestream mode"
[ -f /var/lib/dpkg/info/corestream.md5sums ] || fail "dpkg recorded no md5sums"
dpkg --verify corestream || fail "dpkg --verify corestream"
ok "every file where it belongs; dpkg --verify clean"

# Nothing started, enabled or applied.
for p in /proc/[0-9]*; do
  case "$(readlink "$p/exe" 2>/dev/null)" in
    /usr/bin/corestream|/usr/bin/corestream-tune) fail "a corestream process runs: $p";;
  esac
done
if find /etc/systemd/system -name 'corestream*' 2>/dev/null | grep .; then fail "a unit was enabled"; fi
profile_keys >"$work/sysctl-after"
diff "$work/sysctl-before" "$work/sysctl-after" || fail "installing changed kernel settings"
if grep -v '^#' /etc/default/corestream | grep -q .; then fail "/etc/default/corestream sets something"; fi
ok "nothing started or enabled, no kernel setting changed, /etc/default/corestream all comments"

echo "== the installed commands"
corestream --version | grep -qx "corestream $(dpkg-query -W -f '${Version}' corestream | sed 's/-[^-]*$//')" \
  || fail "corestream --version: $(corestream --version)"
corestream-tune --version >/dev/null || fail "corestream-tune --version"
echo "$(corestream --version); $(corestream-tune --version)"
[ "$(man -w corestream)" = /usr/share/man/man8/corestream.8.gz ] || fail "man -w corestream: $(man -w corestream 2>&1)"
[ "$(man -w corestream-tune)" = /usr/share/man/man8/corestream-tune.8.gz ] || fail "man -w corestream-tune"
# Every subcommand `corestream-tune --help` lists has a page, and every long option that
# `--help` shows is in the page: generated from the same definitions, so no drift.
subs=$(corestream-tune --help | sed -n '/^Commands:/,/^$/p' | awk 'NR>1 && $1!="help" {print $1}')
[ -n "$subs" ] || fail "corestream-tune --help lists no subcommands"
for s in $subs; do
  man -w "corestream-tune-$s" >/dev/null || fail "no man page corestream-tune-$s(8)"
done
check_options() { # PAGE HELP-COMMAND...
  local page=$1; shift
  # The roff source, not the rendered page, whose line breaks may hyphenate an option.
  local text; text=$(zcat "$(man -w "$page")" | sed 's/\\-/-/g')
  for opt in $("$@" --help | grep -oE -- '--[a-z][a-z0-9-]+' | sort -u); do
    grep -qF -- "$opt" <<<"$text" || fail "man $page lacks $opt, which $* --help shows"
  done
}
check_options corestream corestream
check_options corestream-tune corestream-tune
for s in $subs; do check_options "corestream-tune-$s" corestream-tune "$s"; done
ok "man -w corestream; pages for corestream-tune and its $(wc -w <<<"$subs") subcommands; every --help option documented"
bash -c 'source /usr/share/bash-completion/completions/corestream-tune && complete -p corestream-tune' >/dev/null \
  || fail "the bash completion of corestream-tune does not load"
bash -c 'source /usr/share/bash-completion/completions/corestream && complete -p corestream' >/dev/null \
  || fail "the bash completion of corestream does not load"
ok "bash completions load (zsh and fish files are checked for presence only)"

echo "== systemd-analyze verify (installed units)"
# A template is verified through an instance; verify resolves it from /lib/systemd/system. The
# man pages the units name (Documentation=) are checked too, unless this system has none of
# other packages' pages (a minimal image's dpkg path-exclude): then only ours, by man -w above.
man_check=yes
man -w sysctl.d >/dev/null 2>&1 || { man_check=no; echo "check-deb: no man page sysctl.d(5) here: systemd-analyze verify --man=no"; }
systemd-analyze verify --man=$man_check /lib/systemd/system/corestream.service \
  /lib/systemd/system/corestream-tune.service corestream@9181.service
grep -q '^ExecStart=/usr/bin/corestream' /lib/systemd/system/corestream.service || fail "ExecStart is not /usr/bin/corestream"
ok "systemd-analyze verify: corestream.service, corestream@9181.service, corestream-tune.service"

echo "== dpkg -r"
dpkg -r corestream
[ "$(dpkg-query -W -f '${db:Status-Status}' corestream)" = config-files ] || fail "not in config-files state after dpkg -r"
left=$(while read -r f; do
  [ -e "$f" ] && [ ! -d "$f" ] && ! grep -qxF "$f" "$work/conffiles" && echo "$f"
  [ -d "$f" ] && [[ $(basename "$f") == *corestream* ]] && echo "$f"
done <"$work/owned" || true)
[ -z "$left" ] || fail "dpkg -r left files that are not conffiles: $left"
while read -r f; do [ -f "$f" ] || fail "dpkg -r removed the conffile $f"; done <"$work/conffiles"
ok "dpkg -r left only the conffiles: $(tr '\n' ' ' <"$work/conffiles")"

echo "== dpkg -P"
# What the unit's CacheDirectory= would hold after an edge ran (systemd is not running here).
mkdir -p /var/cache/corestream/shared && : >/var/cache/corestream/shared/x.done
dpkg -P corestream
dpkg-query -W -f '${db:Status-Status}' corestream 2>/dev/null | grep -qv '^not-installed$' && fail "corestream still known to dpkg after -P"
getent passwd corestream && fail "the corestream user is still there"
getent group corestream && fail "the corestream group is still there"
[ ! -e /var/log/corestream ] || fail "/var/log/corestream is still there"
[ ! -e /var/cache/corestream ] || fail "/var/cache/corestream is still there"
snapshot >"$work/after"
if ! diff "$work/before" "$work/after" >"$work/diff"; then
  cat "$work/diff" >&2
  fail "the file system differs from before the install (above: < gone, > new)"
fi
ok "dpkg -P: no file, user or group left; file system as before the install"
