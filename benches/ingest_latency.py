#!/usr/bin/env python3
"""Growing-object latency (issue 16): from a packager's chunk write on the ingest port to the
moment viewers following that object have read it from the viewers' port.

Starts corestream (release) with --ingest, opens one chunked PUT of a segment, then N viewer
connections that GET it while it grows; sends `--chunks` chunks of `--chunk-bytes`, one every
`--interval` seconds, each starting with a marker; one epoll loop reads every viewer and
notes when each marker first arrives on each. Prints p50/p99/max of (arrival - write) over
all (chunk, viewer) pairs, with the target (5 ms on loopback). The measuring loop is Python,
so the numbers include its own cost: they are an upper bound.

    python3 benches/ingest_latency.py [--viewers 1,100,1000] [--chunks 200] [--bin PATH]
"""
import argparse, os, re, selectors, socket, subprocess, tempfile, time


def start(binary, root):
    srv = subprocess.Popen([binary, "--root", root, "--listen", "127.0.0.1:0", "--workers", "2",
                            "--ingest", "127.0.0.1:0"],
                           stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    view = ingest = None
    while view is None:
        line = srv.stdout.readline()
        if not line:
            raise SystemExit("corestream exited before listening")
        m = re.search(r"http://([\d.]+):(\d+)/", line)
        if "ingest on" in line and m:
            ingest = (m.group(1), int(m.group(2)))
        elif "listening on" in line and m:
            view = (m.group(1), int(m.group(2)))
    return srv, view, ingest


def run(view, ingest, viewers, chunks, size, interval, name):
    up = socket.create_connection(ingest)
    up.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    up.sendall(f"PUT /{name} HTTP/1.1\r\nHost: i\r\nTransfer-Encoding: chunked\r\n\r\n".encode())
    first = b"#" * 100
    up.sendall(b"%x\r\n%s\r\n" % (len(first), first))
    time.sleep(0.2)
    sel = selectors.DefaultSelector()
    bufs = {}
    for _ in range(viewers):
        v = socket.create_connection(view)
        v.sendall(f"GET /{name} HTTP/1.1\r\nHost: v\r\n\r\n".encode())
        v.setblocking(False)
        sel.register(v, selectors.EVENT_READ)
        bufs[v] = [b"", 0]  # unscanned tail, next marker expected
    sent = {}
    delays = []

    def poll(timeout):
        for key, _ in sel.select(timeout):
            s = key.fileobj
            try:
                data = s.recv(1 << 20)
            except BlockingIOError:
                continue
            now = time.monotonic()
            if not data:
                sel.unregister(s)
                continue
            b = bufs[s]
            b[0] += data
            while True:
                marker = b"@@%06d@@" % b[1]
                i = b[0].find(marker)
                if i < 0:
                    b[0] = b[0][-16:]
                    break
                delays.append(now - sent[b[1]])
                b[0] = b[0][i + len(marker):]
                b[1] += 1

    pad = b"." * max(0, size - 10)
    for i in range(chunks):
        payload = b"@@%06d@@" % i + pad
        sent[i] = time.monotonic()
        up.sendall(b"%x\r\n%s\r\n" % (len(payload), payload))
        until = time.monotonic() + interval
        while time.monotonic() < until:
            poll(max(0.0, until - time.monotonic()))
    deadline = time.monotonic() + 2
    while len(delays) < chunks * viewers and time.monotonic() < deadline:
        poll(0.05)
    up.sendall(b"0\r\n\r\n")
    up.recv(1000)
    up.close()
    for key in list(sel.get_map().values()):
        key.fileobj.close()
    delays.sort()
    missing = chunks * viewers - len(delays)
    if not delays:
        return None
    q = lambda p: delays[min(len(delays) - 1, int(p * len(delays)))] * 1000
    return q(0.5), q(0.99), delays[-1] * 1000, missing


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--viewers", default="1,100,1000")
    ap.add_argument("--chunks", type=int, default=200)
    ap.add_argument("--chunk-bytes", type=int, default=4096)
    ap.add_argument("--interval", type=float, default=0.02)
    ap.add_argument("--bin", default="target/release/corestream")
    a = ap.parse_args()
    root = tempfile.mkdtemp(prefix="ingest-latency-")
    srv, view, ingest = start(a.bin, root)
    try:
        print(f"{a.chunks} chunks of {a.chunk_bytes} B every {a.interval * 1000:.0f} ms, "
              f"target: p99 under 5 ms on loopback")
        print(f"{'viewers':>8} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8} {'missing':>8}")
        for i, n in enumerate(int(x) for x in a.viewers.split(",")):
            r = run(view, ingest, n, a.chunks, a.chunk_bytes, a.interval, f"seg{i}.m4s")
            if r is None:
                print(f"{n:>8} no chunk arrived")
                continue
            p50, p99, mx, missing = r
            print(f"{n:>8} {p50:>8.3f} {p99:>8.3f} {mx:>8.3f} {missing:>8}")
    finally:
        srv.terminate()
        srv.wait()
        subprocess.run(["rm", "-rf", root])


if __name__ == "__main__":
    main()
