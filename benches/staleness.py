#!/usr/bin/env python3
"""Playlist staleness under load: how old can a served playlist be after its rename?

Starts corestream (release), renames a new version of a playlist into place every ~1 ms,
runs wrk against the same playlist for load, and from a separate checker connection asks
for the playlist continuously: a response is stale if its version is older than the last
rename completed before the request was sent. Prints requests checked, stale responses and
the largest staleness seen (in versions and in ms).

    python3 benches/staleness.py [--seconds 10] [--wrk-conns 100] [--bin PATH]
"""
import argparse, os, socket, subprocess, tempfile, threading, time

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=10)
    ap.add_argument("--wrk-conns", type=int, default=100)
    ap.add_argument("--bin", default="target/release/corestream")
    a = ap.parse_args()
    d = tempfile.mkdtemp(prefix="stale-")
    def publish(v):
        tmp = os.path.join(d, ".p.m3u8.tmp")
        with open(tmp, "w") as f:
            f.write(f"#EXTM3U\n#EXT-X-TARGETDURATION:2\n# version {v}\n")
        os.rename(tmp, os.path.join(d, "p.m3u8"))
    publish(0)
    srv = subprocess.Popen([a.bin, "--root", d, "--listen", "127.0.0.1:0", "--workers", "2"],
                           stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    line = ""
    while "listening on" not in line:
        line = srv.stdout.readline()
    port = int(line.rsplit(":", 1)[1].strip(" /\n"))
    published = {"v": 0, "t": {0: time.monotonic()}}
    stop = threading.Event()
    def writer():
        v = 0
        while not stop.is_set():
            v += 1
            publish(v)
            published["t"][v] = time.monotonic()
            published["v"] = v
            time.sleep(0.001)
    w = threading.Thread(target=writer); w.start()
    wrk = subprocess.Popen(["wrk", "-t2", f"-c{a.wrk_conns}", f"-d{int(a.seconds)}s",
                            f"http://127.0.0.1:{port}/p.m3u8"], stdout=subprocess.PIPE, text=True)
    s = socket.create_connection(("127.0.0.1", port))
    req = b"GET /p.m3u8 HTTP/1.1\r\nHost: s\r\n\r\n"
    n = stale = 0
    worst_versions = 0
    worst_ms = 0.0
    end = time.monotonic() + a.seconds
    buf = b""
    while time.monotonic() < end:
        floor = published["v"]
        s.sendall(req)
        while True:
            h = buf.find(b"\r\n\r\n")
            if h >= 0:
                head = buf[:h].decode()
                cl = int([l.split(":")[1] for l in head.split("\r\n") if l.lower().startswith("content-length")][0])
                if len(buf) >= h + 4 + cl:
                    body = buf[h + 4:h + 4 + cl].decode(); buf = buf[h + 4 + cl:]
                    break
            buf += s.recv(65536)
        got = int(body.strip().rsplit(" ", 1)[1])
        n += 1
        if got < floor:
            stale += 1
            worst_versions = max(worst_versions, floor - got)
            nxt = published["t"].get(got + 1)
            if nxt:
                worst_ms = max(worst_ms, (time.monotonic() - nxt) * 1000)
    stop.set(); w.join()
    out = wrk.communicate()[0]
    srv.terminate(); srv.wait()
    rps = [l for l in out.splitlines() if "Requests/sec" in l]
    print(f"versions published: {published['v']} (one every ~1 ms), wrk load: {rps[0].strip() if rps else '?'}")
    print(f"checked requests: {n}, stale responses: {stale}, worst: {worst_versions} versions / {worst_ms:.2f} ms")

if __name__ == "__main__":
    main()
