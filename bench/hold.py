#!/usr/bin/env python3
"""Holds N quiet HTTPS keep-alive connections, the way browsers leave them between clicks.

    hold.py PORT N SECONDS

Opens N TLS connections to 127.0.0.1:PORT one after another (HTTP/1.1, no ALPN), sends one
`GET /` on each and reads its whole answer, prints "open N" once all are open, then holds them,
silent, for SECONDS and closes them. Exits non-zero if any answer is not a 200.
"""
import socket
import ssl
import sys
import time

port, n, hold = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE


def answer(s):
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = s.recv(4096)
        if not chunk:
            raise SystemExit("connection closed before an answer")
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 200"):
        raise SystemExit("not a 200: %r" % head[:80])
    length = next(int(l.split(b":", 1)[1]) for l in head.split(b"\r\n") if l.lower().startswith(b"content-length:"))
    while len(body) < length:
        body += s.recv(4096)


conns = []
for _ in range(n):
    s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", port)), server_hostname="localhost")
    s.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
    answer(s)
    conns.append(s)
print("open", len(conns), flush=True)
time.sleep(hold)
for s in conns:
    s.close()
