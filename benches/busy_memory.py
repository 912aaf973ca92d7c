#!/usr/bin/env python3
"""User-space bytes per BUSY connection of a running server, and whether a surge leaves its
peak behind.

Idle keep-alive connections are cheap (idle_memory.py). The expensive moment for an edge
server is when every viewer is mid-request at once: a segment is published and thousands of
players fetch it over slow links. This opens N connections in one of two busy states,
measures the server's RSS (summed over the given PIDs) against the RSS before, closes them,
waits, and measures again:

  slow-reader   a GET for a large file on a socket with a tiny receive buffer that is never
                read (the server is stuck mid-sendfile on every connection)
  partial-head  half a request head, never finished (the server holds what it has read)

Usage:
    busy_memory.py --pid PID [--pid PID...] --url http://127.0.0.1:8080/big.ts \
        [--conns 8000] [--state slow-reader|partial-head|both] [--rounds 2]
The file at the URL should be much larger than a socket buffer (a few MB). Needs
RLIMIT_NOFILE above --conns for this script (it raises its soft limit to the hard one).
"""
import argparse, resource, socket, time, urllib.parse

from idle_memory import rss_kib  # same directory: RSS summed over PIDs


def settle(pids, seconds):
    """RSS after `seconds` (the server trims its buffer pool once a second)."""
    time.sleep(seconds)
    return rss_kib(pids)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--pid", type=int, action="append", required=True)
    ap.add_argument("--url", required=True)
    ap.add_argument("--conns", type=int, default=8000)
    ap.add_argument("--state", choices=["slow-reader", "partial-head", "both"], default="both")
    ap.add_argument("--rounds", type=int, default=2)
    a = ap.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < a.conns + 64:
        raise SystemExit(f"--conns {a.conns} needs a nofile limit above it (hard limit {hard})")
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    u = urllib.parse.urlparse(a.url)
    if u.scheme != "http" or not u.port:
        raise SystemExit("--url must be http://HOST:PORT/PATH")
    full = f"GET {u.path} HTTP/1.1\r\nHost: {u.hostname}\r\n\r\n".encode()
    states = ["slow-reader", "partial-head"] if a.state == "both" else [a.state]
    # Warm up lazily-allocated per-worker state.
    s = socket.create_connection((u.hostname, u.port))
    s.sendall(f"HEAD {u.path} HTTP/1.1\r\nHost: {u.hostname}\r\n\r\n".encode())
    s.recv(65536)
    s.close()
    base = settle(a.pid, 1.5)
    print(f"RSS before: {base} KiB")
    print("| state | round | conns | RSS held (KiB) | bytes per conn | RSS 3 s after close (KiB) |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for state in states:
        for rnd in range(1, a.rounds + 1):
            socks = []
            for _ in range(a.conns):
                s = socket.create_connection((u.hostname, u.port))
                if state == "slow-reader":
                    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
                    s.sendall(full)
                else:
                    s.sendall(full[: len(full) // 2])
                socks.append(s)
            held = settle(a.pid, 3.0)
            for s in socks:
                s.close()
            after = settle(a.pid, 3.0)
            per = (held - base) * 1024 / a.conns
            print(f"| {state} | {rnd} | {a.conns} | {held} | {per:.0f} | {after} |")


if __name__ == "__main__":
    main()
