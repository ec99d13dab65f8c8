"""The legitimate clients: kernel sockets in the attacker's namespace.

::

    python -m tcpstack.attack.clients --host H --port P --count N --timeout S --go FIFO

Prints ``ready`` once it waits on FIFO; when a line arrives there it opens
N non-blocking connections at once. A client *completes* when its connect
succeeded and one byte came back from the echo server (proof that the
target really holds the connection, not only that the kernel client
believes so, as it may after answering a SYN cookie). Every client gives up
``--timeout`` seconds after the start. One JSON object on the last line:
completed, connect times (s) of those that connected, failures by kind, and
this process's kernel CPU time while it ran.
"""

from __future__ import annotations

import argparse
import errno
import json
import os
import resource
import select
import selectors
import socket
import sys
import time
from typing import Any

GO_WAIT = 120.0


def wait_go(path: str) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    keep = os.open(path, os.O_WRONLY | os.O_NONBLOCK)   # no EOF before the writer comes
    print("ready", flush=True)
    try:
        ready, _, _ = select.select([fd], [], [], GO_WAIT)
        if not ready:
            raise SystemExit("clients: no go signal")
        os.read(fd, 64)
    finally:
        os.close(fd)
        os.close(keep)


def run(host: str, port: int, count: int, timeout: float) -> dict[str, Any]:
    sel = selectors.DefaultSelector()
    start = time.monotonic()
    cpu0 = resource.getrusage(resource.RUSAGE_SELF)
    deadline = start + timeout
    began: dict[socket.socket, float] = {}
    connect_times: list[float] = []
    failures: dict[str, int] = {}
    completed = 0
    for _ in range(count):
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setblocking(False)
        code = sock.connect_ex((host, port))
        if code not in (0, errno.EINPROGRESS):
            failures[errno.errorcode.get(code, str(code))] = failures.get(
                errno.errorcode.get(code, str(code)), 0) + 1
            sock.close()
            continue
        began[sock] = time.monotonic()
        sel.register(sock, selectors.EVENT_WRITE, "connect")
    while sel.get_map():
        now = time.monotonic()
        if now >= deadline:
            break
        for key, _ in sel.select(min(0.2, deadline - now)):
            sock = key.fileobj
            assert isinstance(sock, socket.socket)
            if key.data == "connect":
                code = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                if code:
                    name = errno.errorcode.get(code, str(code))
                    failures[name] = failures.get(name, 0) + 1
                    sel.unregister(sock)
                    sock.close()
                    continue
                connect_times.append(time.monotonic() - began[sock])
                try:
                    sock.send(b"x")
                except OSError as exc:
                    name = errno.errorcode.get(exc.errno or 0, "send")
                    failures[name] = failures.get(name, 0) + 1
                    sel.unregister(sock)
                    sock.close()
                    continue
                sel.modify(sock, selectors.EVENT_READ, "echo")
            else:
                try:
                    data = sock.recv(16)
                except BlockingIOError:
                    continue
                except OSError as exc:
                    name = errno.errorcode.get(exc.errno or 0, "recv")
                    failures[name] = failures.get(name, 0) + 1
                    data = None
                if data == b"x":
                    completed += 1
                elif data is not None:
                    failures["no echo"] = failures.get("no echo", 0) + 1
                sel.unregister(sock)
                sock.close()
    for key in list(sel.get_map().values()):
        kind = "connect timeout" if key.data == "connect" else "echo timeout"
        failures[kind] = failures.get(kind, 0) + 1
        sel.unregister(key.fileobj)
        key.fileobj.close()
    cpu1 = resource.getrusage(resource.RUSAGE_SELF)
    return {"count": count, "completed": completed, "connected": len(connect_times),
            "connect_times": connect_times, "failures": failures,
            "seconds": time.monotonic() - start, "sys": cpu1.ru_stime - cpu0.ru_stime}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tcpstack.attack.clients")
    parser.add_argument("--host", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--timeout", type=float, required=True)
    parser.add_argument("--go", required=True, metavar="FIFO")
    args = parser.parse_args(argv)
    wait_go(args.go)
    print(json.dumps(run(args.host, args.port, args.count, args.timeout)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
