"""The ``tcpstack listen / connect / lab`` commands, run as a person runs them
(subprocesses), against kernel peers in the test's namespace."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import threading
import time

import pytest
from timed_io import read_pipe

from tcpstack.link import netns as ns

from .conftest import _ROOT, KERNEL_ADDR, STACK_ADDR, Cli, Kernel, _env

pytestmark = pytest.mark.root

CONCURRENT_CLIENTS = r"""
import os, socket, sys, threading
count, size = int(sys.argv[1]), int(sys.argv[2])
ok = []
def client(i):
    data = os.urandom(size)
    s = socket.create_connection((sys.argv[3], 7), timeout=30)
    threading.Thread(target=lambda: (s.sendall(data), s.shutdown(socket.SHUT_WR))).start()
    got = bytearray()
    while chunk := s.recv(65536):
        got += chunk
    s.close()
    ok.append(bytes(got) == data)
threads = [threading.Thread(target=client, args=(i,)) for i in range(count)]
for t in threads: t.start()
for t in threads: t.join()
print(sum(ok))
"""


def test_listen_echo_serves_100_concurrent_kernel_clients(cli: Cli, kernel: Kernel) -> None:
    listen = cli.listen("7", "--echo", "--stats")
    client = kernel.python(CONCURRENT_CLIENTS, "100", "20000", STACK_ADDR,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = client.communicate(timeout=60)
    assert out.decode().strip() == "100", err.decode()
    listen.send_signal(signal.SIGINT)
    _out, lerr = listen.communicate(timeout=15)
    assert listen.returncode == 0, lerr.decode()
    assert b"passive_opens=100" in lerr
    assert b"Traceback" not in lerr
    assert not ns.netns_exists(cli.netns)          # it created the namespace: removed


@pytest.mark.parametrize("first", ["stdin-ends-first", "peer-fin-first"])
def test_listen_copy_mode_once(cli: Cli, kernel: Kernel, first: str) -> None:
    """Default mode is nc -l: the peer's data to stdout, stdin to the peer (FIN at
    its end, like nc -N); --once exits when both directions are done, whichever
    ends first. Each order is made to happen, not left to chance: the peer's
    FIN is known to have arrived when the kernel socket reaches FIN-WAIT-2."""
    to_stack = os.urandom(100_000)
    to_kernel = os.urandom(70_000)
    listen = cli.listen("5000", "--once", stdin=subprocess.PIPE)
    assert listen.stdin is not None and listen.stdout is not None
    sock = kernel.connect(5000)
    sock.settimeout(30)

    def peer_sends() -> bytes:
        sender = threading.Thread(target=lambda: (sock.sendall(to_stack),
                                                  sock.shutdown(socket.SHUT_WR)))
        sender.start()
        out = read_pipe(listen.stdout, len(to_stack))
        sender.join()
        return out

    def stdin_ends() -> bytes:
        # More than a pipe holds: written on a thread while the kernel reads.
        feeder = threading.Thread(target=lambda: (listen.stdin.write(to_kernel),
                                                  listen.stdin.close()))
        feeder.start()
        received = bytearray()
        while chunk := sock.recv(65536):             # up to tcpstack's FIN
            received += chunk
        feeder.join()
        return bytes(received)

    if first == "stdin-ends-first":
        received = stdin_ends()
        out = peer_sends()
    else:
        out = peer_sends()
        _wait_for_tcp_state(sock, TCP_FIN_WAIT2)     # tcpstack has our FIN: CLOSE-WAIT
        received = stdin_ends()
    out += read_pipe(listen.stdout, None)           # nothing more, then EOF at exit
    assert listen.wait(timeout=30) == 0, listen.stderr.read().decode()  # type: ignore[union-attr]
    assert out == to_stack
    assert received == to_kernel


TCP_FIN_WAIT2 = 5          # tcpi_state in Linux's struct tcp_info


def _wait_for_tcp_state(sock: socket.socket, state: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while (now := sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 1)[0]) != state:
        assert time.monotonic() < deadline, f"kernel socket in TCP state {now}, not {state}"
        time.sleep(0.01)


def test_listen_source_active_close_pcap_and_time_wait(cli: Cli, kernel: Kernel,
                                                       tmp_path) -> None:
    from scapy.layers.inet import IP, TCP
    from scapy.utils import rdpcap

    pcap = tmp_path / "source.pcap"
    listen = cli.listen("9", "--source", "100k", "--once", "--stats", "--msl", "1",
                        "--pcap", str(pcap))
    # -d: nc never reads stdin, so it sends FIN only after ours: tcpstack closes actively.
    result = kernel.run(["nc", "-d", STACK_ADDR, "9"], capture_output=True)
    assert result.stdout == bytes(range(256)) * 400
    _out, err = listen.communicate(timeout=15)
    assert listen.returncode == 0, err.decode()
    assert b"state:TIME-WAIT" in err                # the active closer holds TIME-WAIT

    dump = subprocess.run(["tcpdump", "-nr", str(pcap)], capture_output=True, text=True,
                          timeout=30)
    assert dump.returncode == 0, dump.stderr
    lines = dump.stdout.splitlines()
    assert any(f"{KERNEL_ADDR}." in ln and "Flags [S]," in ln for ln in lines)
    assert any(f"{STACK_ADDR}.9 >" in ln and "Flags [S.]" in ln for ln in lines)
    assert any(f"{STACK_ADDR}.9 >" in ln and "Flags [F" in ln for ln in lines)
    packets = rdpcap(str(pcap))
    ours = [p for p in packets if IP in p and p[IP].src == STACK_ADDR]
    assert ours[0][TCP].flags == "SA"
    idents = [p[IP].id for p in ours]
    assert idents == sorted(idents) and len(set(idents)) == len(idents)   # IPv4 ID increments
    assert sum(len(p[TCP].payload) for p in ours) == 102400


KERNEL_SERVER = r"""
import socket, sys
srv = socket.create_server((sys.argv[1], 9000))
print("ready", flush=True)
conn, _ = srv.accept()
got = bytearray()
while chunk := conn.recv(65536):
    got += chunk
conn.sendall(got[::-1])          # the reply goes out after the client's FIN
conn.close()
"""


def test_connect_half_close_with_kernel_server(cli: Cli, kernel: Kernel) -> None:
    """connect is nc -N: stdin, then FIN; the reply after that still arrives."""
    request = os.urandom(300_000)
    assert cli.run("lab", "up", "--netns", cli.netns).returncode == 0  # fixture removes it
    server = kernel.python(KERNEL_SERVER, KERNEL_ADDR, stdout=subprocess.PIPE)
    result = None
    assert server.stdout is not None
    assert server.stdout.readline() == b"ready\n"
    result = subprocess.run(cli.argv("connect", KERNEL_ADDR, "9000", "--netns", cli.netns),
                            input=request, capture_output=True, timeout=30,
                            cwd=_ROOT, env=_env())
    assert result.returncode == 0, result.stderr
    assert result.stdout == request[::-1]
    assert server.wait(timeout=10) == 0
    assert ns.netns_exists(cli.netns)              # existed before: left alone


def test_connect_sends_to_nc(cli: Cli, kernel: Kernel, tmp_path) -> None:
    data = os.urandom(200_000)
    received = tmp_path / "received.bin"
    assert cli.run("lab", "up", "--netns", cli.netns).returncode == 0
    # nc -N with nothing to send: FIN at once, then it reads us to our FIN.
    with open(received, "wb") as sink:          # a file: nc never blocks on its output
        server = kernel.popen(["nc", "-N", "-l", KERNEL_ADDR, "9000"],
                              stdin=subprocess.DEVNULL, stdout=sink)
    for _ in range(100):
        result = subprocess.run(cli.argv("connect", KERNEL_ADDR, "9000", "--netns", cli.netns),
                                input=data, capture_output=True, timeout=30,
                                cwd=_ROOT, env=_env())
        if b"refused" not in result.stderr:       # nc may not be listening yet
            break
    assert result.returncode == 0, result.stderr
    assert server.wait(timeout=10) == 0
    assert received.read_bytes() == data


def test_connect_refused_is_one_line_exit_1(cli: Cli) -> None:
    result = cli.run("connect", KERNEL_ADDR, "4444", "--netns", cli.netns,
                     stdin=subprocess.DEVNULL)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"tcpstack: connect to {KERNEL_ADDR}:4444 failed: connection refused"]
    assert not ns.netns_exists(cli.netns)


@pytest.mark.parametrize("args", [
    ["connect", "10.7.0.999", "80"],
    ["connect", KERNEL_ADDR, "99999"],
    ["connect", "not-an-address", "80"],
    ["listen", "7", "--addr", "10.9.9.9"],
    ["listen", "7", "--addr", KERNEL_ADDR],
    ["listen", "7", "--tun-addr", "10.7.0.1"],
    ["listen", "7", "--keepalive", "1,2"],
    ["listen", "7", "--echo", "--discard"],
    ["listen", "7", "--netns", "bad/name"],
    ["listen", "7", "--tun", "a-very-long-interface-name"],
    ["listen", "7", "--fault", "loss=lots"],
    ["listen"],
])
def test_usage_errors_are_one_line_exit_2(cli: Cli, args: list[str]) -> None:
    result = cli.run(*args, stdin=subprocess.DEVNULL)
    assert result.returncode == 2, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert not ns.netns_exists(cli.netns)


def test_lab_up_listen_down(cli: Cli, kernel: Kernel) -> None:
    up = cli.run("lab", "up", "--netns", cli.netns)
    assert up.returncode == 0, up.stderr
    assert ns.netns_exists(cli.netns)
    listen = cli.listen("7", "--echo")
    result = kernel.run(["nc", "-N", STACK_ADDR, "7"], input=b"lab works", capture_output=True)
    assert result.stdout == b"lab works"
    listen.send_signal(signal.SIGTERM)
    listen.wait(timeout=15)
    assert ns.netns_exists(cli.netns)                # not ours to remove: the lab's
    links = kernel.run(["ip", "-br", "link"], capture_output=True, text=True).stdout
    assert "tcps0" in links                          # persistent TUN survives
    down = cli.run("lab", "down", "--netns", cli.netns)
    assert down.returncode == 0, down.stderr
    assert not ns.netns_exists(cli.netns)
    again = cli.run("lab", "down", "--netns", cli.netns)
    assert again.returncode == 1
    assert len(again.stderr.strip().splitlines()) == 1


def test_sigint_removes_what_listen_created(cli: Cli) -> None:
    listen = cli.listen("7")
    assert ns.netns_exists(cli.netns)
    listen.send_signal(signal.SIGINT)
    _out, err = listen.communicate(timeout=15)
    assert listen.returncode == 0
    assert b"Traceback" not in err
    assert not ns.netns_exists(cli.netns)


def test_not_root_is_one_line(monkeypatch: pytest.MonkeyPatch,
                              capsys: pytest.CaptureFixture[str]) -> None:
    from tcpstack.cli import main

    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    assert main(["lab", "up", "--netns", "tcps-never-created"]) == 1
    assert capsys.readouterr().err.splitlines() == [
        "tcpstack: this needs root (network namespaces and /dev/net/tun); try sudo"]
    assert not ns.netns_exists("tcps-never-created")


def test_listen_with_fault_injection_still_delivers_everything(cli: Cli, kernel: Kernel) -> None:
    payload = os.urandom(300_000)
    listen = cli.listen("7", "--echo", "--once", "--stats",
                        "--fault", "loss=3%,dup=1%,reorder=2%,delay=2ms,seed=11")
    sock = kernel.connect(7)
    sock.settimeout(60)
    sender = threading.Thread(target=lambda: (sock.sendall(payload),
                                              sock.shutdown(socket.SHUT_WR)))
    sender.start()
    received = bytearray()
    while chunk := sock.recv(65536):
        received += chunk
    sender.join()
    _out, err = listen.communicate(timeout=30)
    assert listen.returncode == 0, err.decode()
    assert bytes(received) == payload
    assert b"retransmitted_segments=" in err          # the losses were repaired
