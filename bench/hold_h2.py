#!/usr/bin/env python3
"""Like hold.py, over HTTP/2 (ALPN h2), as browsers connect. Needs the `h2` package
(`pip install h2`; measured with 4.4.1).

    hold_h2.py PORT N SECONDS

Opens N TLS connections to 127.0.0.1:PORT one after another, sends one `GET /` on each (stream
1) and reads its whole answer, prints "open N" once all are open, then holds them silent for
SECONDS.
"""
import socket
import ssl
import sys
import time

import h2.config
import h2.connection
import h2.events

port, n, hold = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
ctx.set_alpn_protocols(["h2"])

conns = []
for _ in range(n):
    s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", port)), server_hostname="localhost")
    if s.selected_alpn_protocol() != "h2":
        raise SystemExit("the server did not pick h2")
    c = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    c.initiate_connection()
    c.send_headers(1, [(":method", "GET"), (":path", "/"), (":scheme", "https"), (":authority", "localhost")],
                   end_stream=True)
    s.sendall(c.data_to_send())
    ended = False
    while not ended:
        data = s.recv(65536)
        if not data:
            raise SystemExit("connection closed before an answer")
        for event in c.receive_data(data):
            if isinstance(event, h2.events.ResponseReceived):
                status = dict(event.headers).get(b":status")
                if status != b"200":
                    raise SystemExit("not a 200: %r" % status)
            if isinstance(event, h2.events.StreamEnded):
                ended = True
        out = c.data_to_send()
        if out:
            s.sendall(out)
    conns.append((s, c))
print("open", len(conns), flush=True)
time.sleep(hold)
for s, _ in conns:
    s.close()
