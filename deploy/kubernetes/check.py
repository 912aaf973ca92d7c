#!/usr/bin/env python3
"""What the schema validation (kubernetes-validate, run by check.sh) cannot see in these
manifests, checked against the manifests themselves and the real binaries:

- the DaemonSet runs on the node's network, probes /healthz on the admin port the server is told
  to listen on, and gives the drain time to finish before the SIGKILL;
- every container has resources; the init container is root with no capability, no privilege
  escalation and a read-only root;
- the init container's profile selects per-network-namespace keys only: `corestream-tune plan`
  with it, read-only, on this machine's own (initial) network namespace, where every global key is
  visible as it is to a hostNetwork pod;
- the init container's command, run as the manifest says (same uid, every capability dropped,
  only /proc/sys/net writable, paths laid out as its volume mounts) succeeds: inside a new network
  namespace made for the run (`unshare -n`), so this machine's settings are never touched.

Usage: deploy/kubernetes/check.py --tune-bin PATH   (root, for unshare; python3-yaml)
"""

import argparse
import os
import re
import shlex
import subprocess
import sys
import tempfile

import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
failures = []


def fail(msg):
    failures.append(msg)
    print(f"k8s/check: FAIL: {msg}", file=sys.stderr)


def ok(msg):
    print(f"k8s/check: ok: {msg}")


def load():
    docs = []
    for name in sorted(os.listdir(HERE)):
        if name.endswith((".yaml", ".yml")):
            with open(os.path.join(HERE, name)) as f:
                docs += [d for d in yaml.safe_load_all(f) if d]
    return docs


def seconds(duration):
    m = re.fullmatch(r"(\d+(?:\.\d+)?)(ms|s|m|h)?", duration.strip())
    if not m:
        raise ValueError(f"not a duration: {duration!r}")
    return float(m.group(1)) * {"ms": 0.001, "s": 1, None: 1, "m": 60, "h": 3600}[m.group(2)]


def env_of(container):
    return {e["name"]: e.get("value") for e in container.get("env", [])}


def check_daemonset(ds):
    spec = ds["spec"]["template"]["spec"]
    if not spec.get("hostNetwork"):
        fail("the DaemonSet does not use hostNetwork")
    server = next(c for c in spec["containers"] if c["name"] == "corestream")
    env = env_of(server)
    ports = {p["name"]: p["containerPort"] for p in server.get("ports", [])}
    admin = env.get("CORESTREAM_ADMIN", "")
    probe = server.get("readinessProbe", {}).get("httpGet", {})
    probe_port = ports.get(probe.get("port"), probe.get("port"))
    if probe.get("path") != "/healthz":
        fail(f"readiness probe path is {probe.get('path')!r}, not /healthz")
    if not admin.endswith(f":{probe_port}"):
        fail(f"readiness probe port {probe_port} is not the admin port of CORESTREAM_ADMIN={admin!r}")
    if admin.startswith("127.") or admin.startswith("localhost"):
        fail("CORESTREAM_ADMIN is loopback: the kubelet probes the pod IP")
    drain = seconds(env.get("CORESTREAM_DRAIN_TIMEOUT") or "30s")
    grace = spec.get("terminationGracePeriodSeconds", 30)
    if grace <= drain + 5:
        fail(f"terminationGracePeriodSeconds {grace} leaves no room after the {drain:g} s drain")
    for c in spec.get("initContainers", []) + spec["containers"]:
        res = c.get("resources", {})
        if not res.get("requests") or not res.get("limits", {}).get("memory"):
            fail(f"container {c['name']} lacks resource requests or a memory limit")
    ok(f"hostNetwork; readiness /healthz on admin port {probe_port}; grace {grace} s > drain {drain:g} s; "
       "resources on every container")
    return spec


def check_init_privileges(init):
    sc = init.get("securityContext", {})
    if sc.get("privileged"):
        fail("the init container is privileged")
    if sc.get("allowPrivilegeEscalation") is not False:
        fail("the init container may escalate privileges")
    if sc.get("capabilities", {}).get("drop") != ["ALL"] or sc.get("capabilities", {}).get("add"):
        fail("the init container does not drop every capability (or adds some)")
    if not sc.get("readOnlyRootFilesystem"):
        fail("the init container's root filesystem is writable")
    ok("init container: no capability, no privilege escalation, read-only root")


def layout(spec, init, sim):
    """Lay out the init container's volume mounts beneath `sim`; return the bind mounts of host
    paths still to make (inside the new mount namespace) as (host path, target)."""
    volumes = {v["name"]: v for v in spec.get("volumes", [])}
    configmaps = {d["metadata"]["name"]: d for d in DOCS if d.get("kind") == "ConfigMap"}
    binds = []
    for m in init.get("volumeMounts", []):
        target = sim + m["mountPath"]
        os.makedirs(target, exist_ok=True)
        v = volumes[m["name"]]
        if "configMap" in v:
            for key, text in configmaps[v["configMap"]["name"]]["data"].items():
                with open(os.path.join(target, key), "w") as f:
                    f.write(text)
        elif "hostPath" in v and v["hostPath"]["path"].startswith("/proc/"):
            binds.append((v["hostPath"]["path"], target))
        # other hostPath and emptyDir volumes: an empty directory of our own stands in
    return binds


def in_sim(args, sim):
    """The command's absolute paths, beneath the simulation directory."""
    out = []
    for a in args:
        if a.startswith("--") and "=/" in a:
            k, v = a.split("=", 1)
            out.append(f"{k}={sim}{v}")
        elif a.startswith("/"):
            out.append(sim + a)
        else:
            out.append(a)
    return out


def check_init_profile(init, sim, tune_bin):
    """plan with the init container's profile on this machine's own namespace (read-only)."""
    profile = next(a.split("=", 1)[1] for a in init["command"] if a.startswith("--profile="))
    out = subprocess.run([tune_bin, "plan", f"--profile={sim}{profile}"], capture_output=True, text=True)
    if out.returncode != 0:
        fail(f"corestream-tune plan with the init container's profile failed:\n{out.stdout}{out.stderr}")
        return
    rows = []
    for line in out.stdout.splitlines()[2:]:
        if not line.strip():
            break
        rows.append(line.split()[:2])
    wrong = [k for k, scope in rows if scope != "per-netns"]
    if wrong or not rows:
        fail(f"the init container's profile selects keys that are not per network namespace: {wrong}")
    else:
        ok(f"init profile selects per-netns keys only ({', '.join(k for k, _ in rows)}), "
           "seen from this machine's initial namespace (plan, read-only)")


def run_init(init, binds, sim, tune_bin):
    args = in_sim(init["command"], sim)
    if args[0] == "corestream-tune":
        args[0] = tune_bin
    uid = init.get("securityContext", {}).get("runAsUser", 0)
    outer = os.readlink("/proc/self/ns/net")
    mounts = "; ".join(f"mount --bind {shlex.quote(h)} {shlex.quote(t)}" for h, t in binds)
    check = [a for a in args if not a.startswith("--state-dir")]
    check[check.index("apply")] = "check"
    check = [a for a in check if a != "--yes"]
    script = f"""
set -e
# Never write a kernel setting of this machine: stop unless this is a new network namespace.
[ "$(readlink /proc/self/ns/net)" != {shlex.quote(outer)} ] || {{ echo "not in a new network namespace" >&2; exit 99; }}
{mounts}
setpriv --reuid={uid} --regid={uid} --clear-groups --bounding-set=-all --inh-caps=-all --no-new-privs -- {shlex.join(args)}
{shlex.join(check)}
"""
    out = subprocess.run(["unshare", "--net", "--mount", "--", "sh", "-c", script], capture_output=True, text=True)
    print(out.stdout, end="")
    if out.returncode != 0:
        fail(f"the init container's command failed in a new network namespace (exit {out.returncode}):\n{out.stderr}")
    else:
        ok("init container command: applied as uid "
           f"{uid} with no capability through the /proc/sys/net mount, then `check` passed "
           "(in a network namespace made for the run)")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tune-bin", required=True)
    args = ap.parse_args()
    ds = next(d for d in DOCS if d.get("kind") == "DaemonSet")
    spec = check_daemonset(ds)
    init = next(c for c in spec["initContainers"] if c["command"][0] == "corestream-tune")
    check_init_privileges(init)
    with tempfile.TemporaryDirectory(prefix="corestream-k8s-") as sim:
        binds = layout(spec, init, sim)
        check_init_profile(init, sim, args.tune_bin)
        run_init(init, binds, sim, os.path.abspath(args.tune_bin))
    if failures:
        print(f"k8s/check: {len(failures)} failed", file=sys.stderr)
        sys.exit(1)
    print("k8s/check: all checks passed")


DOCS = load()

if __name__ == "__main__":
    main()
