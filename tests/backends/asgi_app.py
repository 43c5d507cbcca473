"""A tiny ASGI app served by hypercorn for tests/confusion.rs (started by
tests/common/realbackends.rs). Plain HTTP, h2c upgrades on (hypercorn's default).

Every request is answered with JSON: the *decoded* path as a WSGI/ASGI app routes on it (so
`/admin%2Fsecret` is `/admin/secret` here), the raw path, the HTTP version, and every request
header the app received. Under /admin the answer carries the secret a login should guard.

Prints `PORT <n>` once listening on 127.0.0.1:0; exits when its standard input closes, so a
test binary that dies leaves no server behind.
"""

import asyncio
import json
import socket
import sys

from hypercorn.asyncio import serve
from hypercorn.config import Config

SECRET = "HYPERCORN-ADMIN-SECRET"


async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["type"] != "http":
        return
    headers = {}
    for name, value in scope["headers"]:
        key = name.decode("latin-1").lower()
        headers.setdefault(key, []).append(value.decode("latin-1"))
    path = scope["path"]
    body = {
        "path": path,
        "raw_path": scope.get("raw_path", b"").decode("latin-1"),
        "http_version": scope["http_version"],
        "headers": headers,
    }
    if path == "/admin" or path.startswith("/admin/"):
        body["secret"] = SECRET
    data = json.dumps(body).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(data)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": data})


async def stdin_closed():
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, sys.stdin.buffer.read)


def main():
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.set_inheritable(True)
    config = Config()
    config.bind = [f"fd://{sock.fileno()}"]
    config.accesslog = None
    config.errorlog = "-"
    config.loglevel = "WARNING"
    print(f"PORT {sock.getsockname()[1]}", flush=True)
    asyncio.run(serve(app, config, shutdown_trigger=stdin_closed))


if __name__ == "__main__":
    main()
