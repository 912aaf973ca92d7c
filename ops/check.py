#!/usr/bin/env python3
"""Checks of ops/ that promtool alone does not make (ops/check.sh runs promtool first):

- every alert in the rules has a test case that fires it and one that does not;
- every alert has a summary and a runbook; every `corestream-tune ...` command quoted in a
  runbook names a real subcommand and real options (asked of the corestream-tune binary);
- the dashboard is valid JSON, its panels and targets are well formed, and every PromQL
  expression in it parses (promtool check rules on a throwaway file);
- the corestream_* names that the rules and the dashboard use are exactly those listed in
  ops/metrics.txt; each "now" server metric appears in a real scrape of `corestream --admin`
  (started here); "future" ones are printed.

Usage: ops/check.py --server-bin PATH --tune-bin PATH   (needs python3-yaml and promtool)
"""

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request

import yaml

OPS = os.path.dirname(os.path.abspath(__file__))
RULES = os.path.join(OPS, "prometheus", "corestream.rules.yml")
TESTS = os.path.join(OPS, "prometheus", "corestream.rules.test.yml")
DASHBOARD = os.path.join(OPS, "grafana", "corestream.json")
METRICS = os.path.join(OPS, "metrics.txt")

failures = []


def fail(msg):
    failures.append(msg)
    print(f"ops/check: FAIL: {msg}", file=sys.stderr)


def ok(msg, since=None):
    """Report a check as passed, unless it failed something since `since` (a failure count)."""
    if since is None or len(failures) == since:
        print(f"ops/check: ok: {msg}")


def load_metrics():
    listed = {}
    with open(METRICS) as f:
        for n, line in enumerate(f, 1):
            line = line.split("#", 1)[0].strip()
            if not line:
                continue
            parts = line.split()
            if len(parts) != 3 or parts[1] not in ("server", "tuner") or parts[2] not in ("now", "future"):
                fail(f"metrics.txt:{n}: want NAME server|tuner now|future, got {line!r}")
                continue
            listed[parts[0]] = (parts[1], parts[2])
    return listed


def rules():
    with open(RULES) as f:
        doc = yaml.safe_load(f)
    return [r for g in doc["groups"] for r in g["rules"]]


# --- alerts: tests and runbooks ------------------------------------------------------------

def check_tests(alerts):
    start = len(failures)
    with open(TESTS) as f:
        doc = yaml.safe_load(f)
    fires, silent = set(), set()
    for case in doc.get("tests", []):
        for t in case.get("alert_rule_test", []):
            (fires if t.get("exp_alerts") else silent).add(t["alertname"])
    for a in alerts:
        name = a["alert"]
        if name not in fires:
            fail(f"alert {name} has no test case that fires it")
        if name not in silent:
            fail(f"alert {name} has no test case where it does not fire")
    unknown = (fires | silent) - {a["alert"] for a in alerts}
    for name in sorted(unknown):
        fail(f"the tests name {name}, which is no alert of the rules")
    ok(f"{len(alerts)} alerts, each with a firing and a non-firing test case", start)


def tune_help(tune_bin, *args):
    out = subprocess.run([tune_bin, *args, "--help"], capture_output=True, text=True, check=True)
    return out.stdout


def check_runbooks(alerts, tune_bin):
    start = len(failures)
    top = tune_help(tune_bin)
    subcommands = set()
    in_commands = False
    for line in top.splitlines():
        if line.startswith("Commands:"):
            in_commands = True
            continue
        if in_commands:
            if not line.strip():
                break
            subcommands.add(line.split()[0])
    subcommands.discard("help")
    options = {}
    commands = 0
    for a in alerts:
        ann = a.get("annotations", {})
        name = a["alert"]
        if not ann.get("summary"):
            fail(f"alert {name} has no summary")
        runbook = ann.get("runbook", "")
        quoted = [q for q in re.findall(r"`([^`]*)`", runbook) if q.startswith("corestream-tune")]
        if not quoted and "no corestream-tune command applies" not in runbook:
            fail(f"alert {name}: its runbook names no `corestream-tune ...` command (or says none applies)")
        for cmd in quoted:
            words = cmd.split()
            if len(words) < 2 or words[1] not in subcommands:
                fail(f"alert {name}: runbook command `{cmd}`: no such subcommand (corestream-tune has {sorted(subcommands)})")
                continue
            sub = words[1]
            if sub not in options:
                options[sub] = set(re.findall(r"(?<![\w-])(--[a-z][a-z0-9-]*|-[a-zA-Z])\b", tune_help(tune_bin, sub)))
            for w in words[2:]:
                if w.startswith("-") and w.split("=")[0] not in options[sub]:
                    fail(f"alert {name}: runbook command `{cmd}`: corestream-tune {sub} has no option {w}")
            commands += 1
    ok(f"every alert has a summary and a runbook; {commands} corestream-tune commands in them exist "
       f"(subcommands and options checked against {tune_bin})", start)


# --- dashboard -----------------------------------------------------------------------------

def walk_panels(panels):
    for p in panels:
        yield p
        yield from walk_panels(p.get("panels", []))


def dashboard_exprs():
    start = len(failures)
    with open(DASHBOARD) as f:
        dash = json.load(f)  # raises on invalid JSON
    exprs = []
    ids = set()
    for p in walk_panels(dash.get("panels", [])):
        pid = p.get("id")
        if pid in ids:
            fail(f"dashboard: panel id {pid} used twice")
        ids.add(pid)
        if "gridPos" not in p:
            fail(f"dashboard: panel {p.get('title')!r} has no gridPos")
        if p.get("type") == "row":
            continue
        targets = p.get("targets") or []
        if not targets:
            fail(f"dashboard: panel {p.get('title')!r} has no targets")
        refs = [t.get("refId") for t in targets]
        if len(set(refs)) != len(refs) or None in refs:
            fail(f"dashboard: panel {p.get('title')!r}: refIds missing or repeated: {refs}")
        for t in targets:
            if t.get("datasource", {}).get("uid") != "${datasource}":
                fail(f"dashboard: panel {p.get('title')!r} does not use the ${{datasource}} variable")
            exprs.append((p.get("title"), t["expr"]))
    for v in dash.get("templating", {}).get("list", []):
        if v.get("type") != "query":
            continue
        q = v["query"]["query"] if isinstance(v.get("query"), dict) else v.get("query", "")
        m = re.fullmatch(r"label_values\((.*),\s*(\w+)\)", q.strip())
        if not m:
            fail(f"dashboard: variable {v['name']}: not label_values(SELECTOR, LABEL): {q!r}")
            continue
        exprs.append((f"variable {v['name']}", m.group(1)))
    ok(f"dashboard is valid JSON: {len(ids)} panels, {len(exprs)} expressions (targets and variables)", start)
    return exprs


def grafana_to_promql(expr):
    """Grafana's variables as Prometheus would see them after interpolation."""
    expr = re.sub(r"\$__(rate_interval|interval|range)\b", "5m", expr)
    return re.sub(r"\$\{?\w+\}?", ".*", expr)


def check_promql_parses(exprs):
    with tempfile.NamedTemporaryFile("w", suffix=".yml", delete=False) as f:
        rules = [{"record": f"dashboard:expr_{i}", "expr": grafana_to_promql(e)} for i, (_, e) in enumerate(exprs)]
        yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}, f)
        path = f.name
    try:
        out = subprocess.run(["promtool", "check", "rules", path], capture_output=True, text=True)
    finally:
        os.unlink(path)
    if out.returncode != 0:
        fail("promtool cannot parse a dashboard expression:\n" + out.stdout + out.stderr)
        for i, (title, e) in enumerate(exprs):
            print(f"  dashboard:expr_{i} ({title}): {e}", file=sys.stderr)
    else:
        ok(f"promtool parses all {len(exprs)} dashboard expressions")


# --- metric names --------------------------------------------------------------------------

def names_in(expr):
    expr = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # label values are not names
    return set(re.findall(r"[a-zA-Z_:][a-zA-Z0-9_:]*", expr))


def check_names(all_rules, exprs, listed, scrape_names):
    start = len(failures)
    records = {r["record"] for r in all_rules if "record" in r}
    used = {}
    for r in all_rules:
        for n in names_in(r["expr"]):
            used.setdefault(n, set()).add("rules")
    for _, e in exprs:
        for n in names_in(e):
            used.setdefault(n, set()).add("dashboard")
    metrics = {n: w for n, w in used.items() if n.startswith("corestream") and ":" not in n}
    for n in sorted(n for n in used if n.startswith("corestream") and ":" in n):
        if n not in records:
            fail(f"{n} (used by the {', '.join(sorted(used[n]))}) is no recording rule of {os.path.basename(RULES)}")
    for n in sorted(metrics):
        if n not in listed:
            fail(f"{n} (used by the {', '.join(sorted(metrics[n]))}) is not listed in ops/metrics.txt")
    for n in sorted(listed):
        if n not in metrics:
            fail(f"ops/metrics.txt lists {n}, which neither the rules nor the dashboard use")
    future = []
    for n, (producer, status) in sorted(listed.items()):
        if status == "future":
            future.append(f"{n} ({producer})")
            if n in scrape_names:
                print(f"ops/check: note: {n} is listed as future but the server now exports it: mark it now in ops/metrics.txt")
        elif n not in scrape_names:
            what = "corestream --admin" if producer == "server" else "corestream-tune watch --textfile"
            fail(f"{n} is used by the {', '.join(sorted(metrics.get(n, ['?'])))} but a real scrape of {what} lacks it")
    now = len(listed) - len(future)
    ok(f"{len(metrics)} metric names used; {now} produced now, all in the scrape; "
       f"{len(future)} future (not produced by any code yet, skipped):", start)
    for f in future:
        print(f"    future: {f}")


def names_of(body):
    names = set()
    for line in body.splitlines():
        if line.startswith("# TYPE "):
            names.add(line.split()[2])
        elif line and not line.startswith("#"):
            names.add(re.match(r"[a-zA-Z_:][a-zA-Z0-9_:]*", line).group(0))
    return names


def scrape(server_bin):
    """Start corestream with a plain and a TLS listener, an ingest port, an origin and an admin
    port on loopback (so the TLS, ingest and tier families are exported too), return the
    metric names of /metrics."""
    root = tempfile.mkdtemp(prefix="corestream-ops-check-")
    cert, key = os.path.join(root, ".c.pem"), os.path.join(root, ".k.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                    "-nodes", "-days", "2", "-subj", "/CN=ops-check.test", "-keyout", key, "-out", cert],
                   check=True, capture_output=True)
    proc = subprocess.Popen(
        [server_bin, "--root", root, "--listen", "127.0.0.1:0", "--tls-listen", "127.0.0.1:0",
         "--tls-cert", cert, "--tls-key", key, "--workers", "1", "--max-connections", "100",
         "--admin", "127.0.0.1:0", "--ingest", "127.0.0.1:0",
         "--origin", "http://127.0.0.1:9", "--cache-dir", os.path.join(root, ".cache")],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        admin = None
        deadline = time.time() + 20
        while time.time() < deadline and admin is None:
            line = proc.stdout.readline()
            if not line:
                break
            m = re.search(r"admin on (http://\S+)/metrics", line)
            if m:
                admin = m.group(1)
        if admin is None:
            fail(f"{server_bin} did not print its admin address")
            return set()
        body = urllib.request.urlopen(admin + "/metrics", timeout=10).read().decode()
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        shutil.rmtree(root, ignore_errors=True)
    names = names_of(body)
    ok(f"scraped {admin}/metrics of {server_bin}: {len(names)} metric names")
    return names


def scrape_tuner(tune_bin):
    """Names the tuner's exporter writes (`watch --textfile`), read from this host and from a
    captured tree that has conntrack (a host without nf_conntrack exports no conntrack gauges)."""
    names = set()
    here = os.path.dirname(os.path.abspath(__file__))
    for root in ["/", os.path.join(here, "..", "tuner", "tests", "fixtures", "linux-6.18")]:
        out = tempfile.mkdtemp(prefix="corestream-ops-tune-")
        try:
            subprocess.run([tune_bin, "--root", root, "watch", "--interval", "200ms", "--count", "2",
                            "--quiet", "--textfile", out], check=True, capture_output=True, timeout=60)
            with open(os.path.join(out, "corestream_tune.prom")) as f:
                names |= names_of(f.read())
        except (subprocess.SubprocessError, OSError) as e:
            fail(f"corestream-tune watch --textfile (root {root}) failed: {e}")
        finally:
            shutil.rmtree(out, ignore_errors=True)
    ok(f"scraped corestream-tune watch --textfile of {tune_bin}: {len(names)} metric names")
    return names


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--server-bin", required=True)
    ap.add_argument("--tune-bin", required=True)
    args = ap.parse_args()
    listed = load_metrics()
    all_rules = rules()
    alerts = [r for r in all_rules if "alert" in r]
    check_tests(alerts)
    check_runbooks(alerts, args.tune_bin)
    exprs = dashboard_exprs()
    check_promql_parses(exprs)
    check_names(all_rules, exprs, listed, scrape(args.server_bin) | scrape_tuner(args.tune_bin))
    if failures:
        print(f"ops/check: {len(failures)} failed", file=sys.stderr)
        sys.exit(1)
    print("ops/check: all checks passed")


if __name__ == "__main__":
    main()
