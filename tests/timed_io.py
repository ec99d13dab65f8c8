"""Reading a child process's pipe with a time limit, for tests that drive
``tcpstack`` as a subprocess: a stuck read fails the test with how far it
got, instead of hanging it."""

from __future__ import annotations

import os
import select
import time
from typing import IO


def read_pipe(stream: IO[bytes], size: int | None, timeout: float = 30.0) -> bytes:
    """``size`` bytes (or, with None, all up to EOF) from a pipe, within ``timeout`` s."""
    fd = stream.fileno()
    deadline = time.monotonic() + timeout
    data = bytearray()
    while size is None or len(data) < size:
        ready, _, _ = select.select([fd], [], [], max(deadline - time.monotonic(), 0))
        assert ready, f"{len(data)} of {size if size is not None else 'all'} bytes " \
                      f"in {timeout} s"
        chunk = os.read(fd, 1 << 16 if size is None else min(1 << 16, size - len(data)))
        if not chunk:
            assert size is None, f"EOF after {len(data)} of {size} bytes"
            break
        data += chunk
    return bytes(data)
