"""The kernel target: a listener on the kernel's TCP, run inside the target namespace.

::

    python -m tcpstack.attack.target --port P --mode echo|discard [--backlog 128]

The counterpart of ``tcpstack listen P --echo|--discard`` (same backlog as
tcpstack's ``start_server``: 128). ``--rcvbuf`` fixes the receive buffer
(SO_RCVBUFFORCE, past net.core.rmem_max; the accepted sockets inherit it):
the default 12 MiB lets the kernel open a window of 4 MiB or more, as
tcpstack's 4 MiB receive buffer does; the kernel's own autotuning, with the
default limit of 6 MiB, stays below that. One thread, non-blocking sockets and a
selector; it prints ``ready`` once it listens and serves until SIGTERM (or
until its parent, the attack, is gone), then prints one JSON object
(connections accepted) on its last stdout line.
"""

from __future__ import annotations

import argparse
import json
import os
import selectors
import signal
import socket
import sys
from typing import Any

CHUNK = 1 << 18


SO_RCVBUFFORCE = 33
DEFAULT_RCVBUF = 12 << 20


def serve(port: int, mode: str, backlog: int, rcvbuf: int) -> dict[str, Any]:
    stop = False

    def on_term(signum: int, frame: Any) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, on_term)
    sel = selectors.DefaultSelector()
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if rcvbuf:
        server.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, rcvbuf)
    server.bind(("0.0.0.0", port))
    server.listen(backlog)
    server.setblocking(False)
    sel.register(server, selectors.EVENT_READ, None)
    print("ready", flush=True)
    accepted = resets = 0
    pending: dict[socket.socket, bytearray] = {}
    parent = os.getppid()
    while not stop and os.getppid() == parent:     # the attack is gone: end too
        for key, _ in sel.select(0.2):
            if key.data is None:
                while True:
                    try:
                        conn, _ = server.accept()
                    except (BlockingIOError, InterruptedError):
                        break
                    except OSError:
                        break
                    conn.setblocking(False)
                    accepted += 1
                    pending[conn] = bytearray()
                    sel.register(conn, selectors.EVENT_READ, "conn")
                continue
            conn = key.fileobj
            assert isinstance(conn, socket.socket)
            try:
                data = conn.recv(CHUNK)
            except (BlockingIOError, InterruptedError):
                continue
            except OSError:
                data = b""
                resets += 1
            if data and mode == "echo":
                try:
                    conn.sendall(data)          # small echoes: the send buffer takes them
                except OSError:
                    data = b""
            if not data:
                sel.unregister(conn)
                pending.pop(conn, None)
                conn.close()
    for conn in list(pending):
        conn.close()
    server.close()
    return {"accepted": accepted, "resets": resets}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tcpstack.attack.target")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--mode", choices=("echo", "discard"), default="echo")
    parser.add_argument("--backlog", type=int, default=128)
    parser.add_argument("--rcvbuf", type=int, default=DEFAULT_RCVBUF,
                        help="receive buffer in bytes; 0: the kernel's autotuning")
    args = parser.parse_args(argv)
    print(json.dumps(serve(args.port, args.mode, args.backlog, args.rcvbuf)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
