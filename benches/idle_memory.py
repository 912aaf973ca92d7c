#!/usr/bin/env python3
"""User-space bytes per idle keep-alive connection of a running server.

Opens N connections to HOST:PORT, makes one request on each (so each has been through a full
request/response and is now an idle keep-alive connection), then compares the server's RSS
(summed over the given PIDs) with the RSS before. Usage:
    idle_memory.py --pid PID [--pid PID...] --url http://127.0.0.1:8080/path --conns 5000
--burst opens every connection first and then sends every request, as a crowd arriving at
once does (and as compare's idle holders do): what a server holds for a burst of ready
connections shows up then, which one-at-a-time connections hide.
An https:// URL measures idle TLS connections (the handshake done, one request answered;
the certificate is not verified: this measures memory, not trust).
"""
import argparse, socket, ssl, time, urllib.parse

def rss_kib(pids):
    total = 0
    for pid in pids:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
    return total

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--pid", type=int, action="append", required=True)
    ap.add_argument("--url", required=True)
    ap.add_argument("--conns", type=int, default=5000)
    ap.add_argument("--burst", action="store_true",
                    help="connect all, then send all requests, then read all answers")
    a = ap.parse_args()
    u = urllib.parse.urlparse(a.url)
    req = f"GET {u.path} HTTP/1.1\r\nHost: {u.hostname}\r\n\r\n".encode()
    tls = None
    if u.scheme == "https":
        tls = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        tls.check_hostname = False
        tls.verify_mode = ssl.CERT_NONE
    def connect():
        s = socket.create_connection((u.hostname, u.port))
        return tls.wrap_socket(s, server_hostname=u.hostname) if tls else s
    # Warm up: one full request so lazily-allocated per-worker state exists.
    s = connect(); s.sendall(req); s.recv(65536); s.close()
    time.sleep(0.5)
    before = rss_kib(a.pid)
    socks = []
    for i in range(a.conns):
        s = connect()
        if not a.burst:
            s.sendall(req)
        socks.append(s)
    if a.burst:
        for s in socks:
            s.sendall(req)
    for s in socks:
        # Read the whole response, so the connection really is idle (nothing left to send).
        data = b""
        while b"\r\n\r\n" not in data:
            data += s.recv(65536)
        head, _, body = data.partition(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        while len(body) < length:
            chunk = s.recv(1 << 20)
            if not chunk:
                raise SystemExit("server closed a connection before its response was read; "
                                 "use a small file (a playlist) or fewer connections")
            body += chunk
    time.sleep(1.0)
    after = rss_kib(a.pid)
    per = (after - before) * 1024 / a.conns
    print(f"connections={a.conns} rss_before_kib={before} rss_after_kib={after} "
          f"user_space_bytes_per_idle_connection={per:.0f}")
    for s in socks:
        s.close()

if __name__ == "__main__":
    main()
