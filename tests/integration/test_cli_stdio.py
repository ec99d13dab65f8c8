"""``tcpstack connect``'s stdin and stdout as each kind of file: pipes (read and
written without a thread, grown with F_SETPIPE_SZ), regular files, and a
terminal read line by line -- byte-exact against a real kernel peer."""

from __future__ import annotations

import os
import pty
import subprocess
import threading
import time

import pytest
from timed_io import read_pipe

from .conftest import _ROOT, KERNEL_ADDR, Cli, Kernel, _env

pytestmark = pytest.mark.root

# Echo one connection until its FIN, then close; "ready" once listening.
KERNEL_ECHO = r"""
import socket, sys
srv = socket.create_server((sys.argv[1], 9000))
print("ready", flush=True)
conn, _ = srv.accept()
while chunk := conn.recv(1 << 20):
    conn.sendall(chunk)
conn.close()
"""

# Print each piece it receives as one line "n <len>" and then "eof" at the FIN.
KERNEL_LINES = r"""
import socket, sys
srv = socket.create_server((sys.argv[1], 9000))
print("ready", flush=True)
conn, _ = srv.accept()
while chunk := conn.recv(65536):
    sys.stdout.write(chunk.decode()); sys.stdout.flush()
print("<eof>", flush=True)
conn.close()
"""


def _kernel_server(cli: Cli, kernel: Kernel, script: str) -> subprocess.Popen[bytes]:
    assert cli.run("lab", "up", "--netns", cli.netns).returncode == 0  # fixture removes it
    server = kernel.python(script, KERNEL_ADDR, stdout=subprocess.PIPE)
    assert server.stdout is not None
    assert server.stdout.readline() == b"ready\n"
    return server


def _connect(cli: Cli, **kwargs: object) -> subprocess.Popen[bytes]:
    return cli.start("connect", KERNEL_ADDR, "9000", "--netns", cli.netns, **kwargs)


def test_pipe_both_ways_byte_exact_and_blocking_flag_restored(cli: Cli,
                                                              kernel: Kernel) -> None:
    """8 MB through a pipe into stdin and back out of stdout into a pipe that
    is read slowly; stdin's pipe is blocking again after the command exits."""
    data = os.urandom(8 << 20)
    server = _kernel_server(cli, kernel, KERNEL_ECHO)
    read_end, write_end = os.pipe()
    try:
        proc = _connect(cli, stdin=read_end)
        writer = threading.Thread(target=lambda: (os.write(write_end, data),
                                                  os.close(write_end)))
        writer.start()
        assert proc.stdout is not None
        echoed = bytearray()
        while len(echoed) < len(data):
            echoed += read_pipe(proc.stdout, min(4096, len(data) - len(echoed)))
        writer.join(timeout=30)
        assert read_pipe(proc.stdout, None) == b""
        assert proc.wait(timeout=30) == 0, proc.stderr.read() if proc.stderr else ""
        assert bytes(echoed) == data
        assert os.get_blocking(read_end)            # the shared file description
    finally:
        os.close(read_end)
    assert server.wait(timeout=10) == 0


def test_regular_files_byte_exact(cli: Cli, kernel: Kernel, tmp_path) -> None:
    data = os.urandom(5_000_000)
    source, received = tmp_path / "in.bin", tmp_path / "out.bin"
    source.write_bytes(data)
    server = _kernel_server(cli, kernel, KERNEL_ECHO)
    with open(source, "rb") as stdin, open(received, "wb") as stdout:
        proc = _connect(cli, stdin=stdin, stdout=stdout)
        _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert received.read_bytes() == data
    assert server.wait(timeout=10) == 0


def test_empty_stdin_sends_fin_at_once(cli: Cli, kernel: Kernel) -> None:
    server = _kernel_server(cli, kernel, KERNEL_ECHO)
    result = subprocess.run(cli.argv("connect", KERNEL_ADDR, "9000", "--netns", cli.netns),
                            stdin=subprocess.DEVNULL, capture_output=True, timeout=30,
                            cwd=_ROOT, env=_env())
    assert result.returncode == 0, result.stderr
    assert result.stdout == b""
    assert server.wait(timeout=10) == 0


def test_stdout_and_stderr_one_pipe_with_trace(cli: Cli, kernel: Kernel) -> None:
    """``--trace 2>&1 | slow reader``: stdout and stderr share one open pipe
    (so it stays in blocking mode: unit-tested in tests/unit/test_cli_stdio.py;
    a failed trace line would not show here) and the command still ends well."""
    data = os.urandom(2 << 20)                        # more than the pipe holds
    server = _kernel_server(cli, kernel, KERNEL_ECHO)
    proc = cli.start("connect", KERNEL_ADDR, "9000", "--netns", cli.netns, "--trace",
                     stdin=subprocess.PIPE, stderr=subprocess.STDOUT)
    assert proc.stdin is not None and proc.stdout is not None
    writer = threading.Thread(target=lambda: (proc.stdin.write(data), proc.stdin.close()))
    writer.start()
    time.sleep(2)                                     # the pipe fills up meanwhile
    out = bytearray()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        chunk = os.read(proc.stdout.fileno(), 4096)   # slowly: the pipe fills up
        if not chunk:
            break
        out += chunk
        time.sleep(0.0005)
    writer.join(timeout=30)
    assert proc.wait(timeout=30) == 0, bytes(out[-2000:])
    assert b"Traceback" not in out and b"BlockingIOError" not in out
    assert b"ESTABLISHED" in out                      # trace lines came through
    assert server.wait(timeout=10) == 0


def test_terminal_is_sent_line_by_line(cli: Cli, kernel: Kernel) -> None:
    """A terminal's line goes out when it is typed, not when input ends; ^D ends it."""
    server = _kernel_server(cli, kernel, KERNEL_LINES)
    assert server.stdout is not None
    master, slave = pty.openpty()
    try:
        proc = _connect(cli, stdin=slave)
        os.close(slave)
        slave = -1
        for line in (b"first line\n", b"second\n"):
            os.write(master, line)
            assert read_pipe(server.stdout, len(line)) == line   # before any EOF
        os.write(master, b"\x04")                                # ^D: end of input
        assert read_pipe(server.stdout, None) == b"<eof>\n"
        assert proc.wait(timeout=30) == 0
    finally:
        os.close(master)
        if slave >= 0:
            os.close(slave)
    assert server.wait(timeout=10) == 0
