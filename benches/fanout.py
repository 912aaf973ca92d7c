#!/usr/bin/env python3
"""LL-HLS blocking-reload fan-out: park N requests, publish the next part, time the answers.

Starts corestream (release build) on a test playlist, spreads N blocking requests
(`_HLS_msn=M&_HLS_part=P` for a part not yet published) over several client processes (one
process can hold at most ~19.9k sockets here), then renames the next playlist version into
place and reports, from the rename, the time until each request has its whole response
(p50/p99/max) and the server's CPU time for the burst.

    python3 benches/fanout.py [--requests 10000] [--procs 4] [--workers 2] [--bin PATH]
"""
import argparse, json, os, selectors, signal, socket, subprocess, sys, tempfile, time

def playlist(parts):
    p = ["#EXTM3U", "#EXT-X-VERSION:9", "#EXT-X-TARGETDURATION:2",
         "#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK=1.5,CAN-SKIP-UNTIL=12.0",
         "#EXT-X-PART-INF:PART-TARGET=0.5", "#EXT-X-MEDIA-SEQUENCE:0"]
    for m in range(6):
        p += [f'#EXT-X-PART:DURATION=0.5,URI="s{m}.{i}.ts"' for i in range(4)]
        p += ["#EXTINF:2.0,", f"s{m}.ts"]
    p += [f'#EXT-X-PART:DURATION=0.5,URI="s6.{i}.ts"' for i in range(parts)]
    p += [f'#EXT-X-PRELOAD-HINT:TYPE=PART,URI="s6.{parts}.ts"']
    return "\n".join(p) + "\n"

def publish(d, text):
    tmp = os.path.join(d, ".index.m3u8.tmp")
    with open(tmp, "w") as f:
        f.write(text)
    os.rename(tmp, os.path.join(d, "index.m3u8"))

def client(port, n, ready_fd, go_fd, out_fd):
    """Child: open n parked requests, signal ready, then time responses from t0."""
    req = b"GET /index.m3u8?_HLS_msn=6&_HLS_part=1 HTTP/1.1\r\nHost: b\r\n\r\n"
    sel = selectors.DefaultSelector()
    socks = []
    addrs = ["127.0.0.1", "127.0.0.2", "127.0.0.3", "127.0.0.4"]
    for i in range(n):
        s = socket.create_connection((addrs[i % len(addrs)], port))
        s.sendall(req)
        s.setblocking(False)
        socks.append(s)
        sel.register(s, selectors.EVENT_READ, [b"", i])
    os.write(ready_fd, b"r")
    t0 = float(os.read(go_fd, 64).decode())
    lat = []
    pending = n
    deadline = time.monotonic() + 30
    while pending and time.monotonic() < deadline:
        for key, _ in sel.select(timeout=1):
            s = key.fileobj
            try:
                data = s.recv(65536)
            except BlockingIOError:
                continue
            buf = key.data[0] + data
            key.data[0] = buf
            h = buf.find(b"\r\n\r\n")
            if h >= 0:
                head = buf[:h].decode("latin1")
                cl = int([l.split(":")[1] for l in head.split("\r\n") if l.lower().startswith("content-length")][0])
                if len(buf) - h - 4 >= cl:
                    lat.append((time.monotonic() - t0, head.split(" ")[1]))
                    sel.unregister(s)
                    pending -= 1
            if not data:
                sel.unregister(s)
                pending -= 1
    os.write(out_fd, json.dumps({"lat": lat, "missing": pending}).encode())
    os._exit(0)

def cpu_ticks(pid):
    f = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return int(f[11]) + int(f[12])

def pct(v, p):
    return v[min(len(v) - 1, int(len(v) * p))] if v else float("nan")

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=10000)
    ap.add_argument("--procs", type=int, default=4)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--bin", default="target/release/corestream")
    a = ap.parse_args()
    d = tempfile.mkdtemp(prefix="fanout-")
    publish(d, playlist(1))
    srv = subprocess.Popen([a.bin, "--root", d, "--listen", "0.0.0.0:0", "--workers", str(a.workers)],
                           stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    line = ""
    while "listening on" not in line:
        line = srv.stdout.readline()
    port = int(line.rsplit(":", 1)[1].strip(" /\n"))
    per = a.requests // a.procs
    kids = []
    for _ in range(a.procs):
        r_ready, w_ready = os.pipe(); r_go, w_go = os.pipe(); r_out, w_out = os.pipe()
        pid = os.fork()
        if pid == 0:
            try:
                client(port, per, w_ready, r_go, w_out)
            except Exception as e:  # report, never leave the parent waiting
                print(f"client failed: {e}", file=sys.stderr)
                os._exit(1)
        # The parent keeps only its own ends, so a dead child shows up as EOF.
        os.close(w_ready); os.close(r_go); os.close(w_out)
        kids.append((pid, r_ready, w_go, r_out))
    for _, r_ready, _, _ in kids:
        if os.read(r_ready, 1) != b"r":
            srv.kill()
            sys.exit("a client process failed before parking its requests (see above)")
    time.sleep(1.0)  # let every request reach the server and park
    c0 = cpu_ticks(srv.pid)
    t0 = time.monotonic()
    publish(d, playlist(2))
    for _, _, w_go, _ in kids:
        os.write(w_go, repr(t0).encode())
    lat, statuses, missing = [], {}, 0
    for pid, _, _, r_out in kids:
        chunks = []
        while True:
            b = os.read(r_out, 1 << 20)
            if not b:
                break
            chunks.append(b)
        os.waitpid(pid, 0)
        res = json.loads(b"".join(chunks))
        missing += res["missing"]
        for t, st in res["lat"]:
            lat.append(t)
            statuses[st] = statuses.get(st, 0) + 1
    c1 = cpu_ticks(srv.pid)
    srv.send_signal(signal.SIGTERM); srv.wait(timeout=30)
    lat.sort()
    hz = os.sysconf("SC_CLK_TCK")
    print(f"requests={a.requests} client_procs={a.procs} server_workers={a.workers}")
    print(f"answered={len(lat)} missing={missing} statuses={statuses}")
    print(f"publish->response p50={pct(lat,0.5)*1000:.1f}ms p99={pct(lat,0.99)*1000:.1f}ms max={lat[-1]*1000 if lat else float('nan'):.1f}ms")
    print(f"server_cpu_for_burst={(c1-c0)/hz:.2f}s (includes the clients' closes)")
    sys.exit(0 if missing == 0 and len(lat) == per * a.procs else 1)

if __name__ == "__main__":
    main()
