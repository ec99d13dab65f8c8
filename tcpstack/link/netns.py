"""Network namespaces: create, enter, configure and remove them, and run code
or programs inside them.

Everything tcpstack sends stays inside a namespace that it (or the person
running it) created. The calling process itself never changes namespace:
work that must happen "inside" runs on a short-lived helper thread that calls
``setns(2)`` (which affects only that thread), and programs are started with
``setns`` in the forked child before ``exec``. File descriptors opened inside
(a TUN device, a socket) keep their namespace after the thread ends, so the
caller can use them from anywhere.

pyroute2's synchronous API cannot run inside a running asyncio loop, which is
another reason every netlink conversation here happens on a helper thread.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import errno
import functools
import ipaddress
import os
import re
import subprocess
import threading
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from tcpstack.errors import UsageError, UserError

NETNS_RUN_DIR = "/var/run/netns"
CLONE_NEWNET = 0x40000000
_VALID_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_VALID_IFNAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,14}$")

T = TypeVar("T")

_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)


def validate_netns_name(name: str) -> str:
    if not _VALID_NAME.match(name or ""):
        raise UsageError(f"bad namespace name {name!r} (letters, digits, '_', '.', '-')")
    return name


def validate_ifname(name: str) -> str:
    if not _VALID_IFNAME.match(name or ""):
        raise UsageError(f"bad interface name {name!r} (at most 15 characters: letters, "
                         f"digits, '_', '.', '-')")
    return name


def netns_path(name: str) -> str:
    return os.path.join(NETNS_RUN_DIR, validate_netns_name(name))


def netns_exists(name: str) -> bool:
    return os.path.exists(netns_path(name))


def _setns(fd: int) -> None:
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"setns: {os.strerror(err)}")


def _open_netns(name: str) -> int:
    try:
        return os.open(netns_path(name), os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        raise UserError(f"network namespace {name!r} does not exist") from None
    except PermissionError:
        raise UserError("permission denied opening a network namespace (run as root)") from None


def _run_on_thread(fn: Callable[[], T]) -> T:
    """Run ``fn`` on a fresh thread (own namespace, no running asyncio loop)."""
    result: list[Any] = []
    failure: list[BaseException] = []

    def body() -> None:
        try:
            result.append(fn())
        except BaseException as exc:
            failure.append(exc)

    thread = threading.Thread(target=body, name="tcpstack-netns", daemon=True)
    thread.start()
    thread.join()
    if failure:
        raise failure[0]
    return result[0]


def run_in_netns(name: str, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Call ``fn(*args, **kwargs)`` on a helper thread inside namespace ``name``.

    Sockets and devices it opens belong to that namespace and stay usable
    from the caller's thread, e.g. a kernel-side peer for a test::

        sock = run_in_netns("tcpstack", socket.create_connection, ("10.7.0.2", 7))
    """
    fd = _open_netns(name)

    def inside() -> T:
        try:
            _setns(fd)
        finally:
            os.close(fd)
        return fn(*args, **kwargs)

    return _run_on_thread(inside)


def netns_popen(name: str, argv: Sequence[str], **popen_kwargs: Any) -> subprocess.Popen[Any]:
    """Start ``argv`` inside namespace ``name`` (``setns`` in the child before exec)."""
    fd = _open_netns(name)
    pass_fds = (*popen_kwargs.pop("pass_fds", ()), fd)

    def enter() -> None:
        _setns(fd)

    try:
        return subprocess.Popen(list(argv), preexec_fn=enter, pass_fds=pass_fds, **popen_kwargs)
    finally:
        os.close(fd)


def netns_run(name: str, argv: Sequence[str],
              **run_kwargs: Any) -> subprocess.CompletedProcess[Any]:
    """``subprocess.run`` inside namespace ``name``."""
    timeout = run_kwargs.pop("timeout", None)
    check = run_kwargs.pop("check", False)
    input_data = run_kwargs.pop("input", None)
    if run_kwargs.pop("capture_output", False):
        run_kwargs["stdout"] = run_kwargs["stderr"] = subprocess.PIPE
    if input_data is not None:
        run_kwargs.setdefault("stdin", subprocess.PIPE)
    with netns_popen(name, argv, **run_kwargs) as proc:
        try:
            out, err = proc.communicate(input_data, timeout=timeout)
        except BaseException:
            proc.kill()
            proc.wait()
            raise
    result = subprocess.CompletedProcess(list(argv), proc.returncode, out, err)
    if check:
        result.check_returncode()
    return result


def create_netns(name: str) -> None:
    """Create namespace ``name`` and bring its loopback up (a fresh one has lo down)."""
    from pyroute2 import netns as pr_netns

    validate_netns_name(name)
    try:
        _run_on_thread(lambda: pr_netns.create(name))
    except PermissionError:
        raise UserError("creating a network namespace needs root") from None
    except OSError as exc:
        if exc.errno == errno.EEXIST:
            raise UserError(f"network namespace {name!r} already exists") from None
        raise UserError(f"cannot create network namespace {name!r}: "
                        f"{exc.strerror or exc}") from None
    run_in_netns(name, _bring_loopback_up)


def remove_netns(name: str) -> None:
    """Delete namespace ``name`` (a missing one is not an error)."""
    from pyroute2 import netns as pr_netns

    if not netns_exists(name):
        return
    with contextlib.suppress(FileNotFoundError):
        pr_netns.remove(name)


def _bring_loopback_up() -> None:
    from pyroute2 import IPRoute

    with IPRoute() as ipr:
        (index,) = ipr.link_lookup(ifname="lo")
        ipr.link("set", index=index, state="up")


def parse_interface(text: str) -> ipaddress.IPv4Interface:
    """``10.7.0.1/24`` -> IPv4Interface, or a one-line UsageError."""
    try:
        iface = ipaddress.IPv4Interface(text)
    except ValueError:
        raise UsageError(f"bad interface address {text!r} (expected IPv4 ADDRESS/PREFIXLEN, "
                         f"e.g. 10.7.0.1/24)") from None
    if "/" not in text:
        raise UsageError(f"bad interface address {text!r}: missing /PREFIXLEN")
    return iface


def parse_ipv4(text: str, what: str = "address") -> str:
    try:
        return _canonical_ipv4(text)
    except ValueError:
        raise UsageError(f"bad {what} {text!r} (expected a dotted-quad IPv4 address)") from None


@functools.lru_cache(maxsize=1024)
def _canonical_ipv4(text: str) -> str:
    """The dotted quad ``ipaddress`` makes of ``text`` (once per text: every connect asks)."""
    return str(ipaddress.IPv4Address(text))


def _disable_ipv6(ifname: str) -> None:
    """``net.ipv6.conf.IF.disable_ipv6=1`` in the current thread's namespace, so the
    kernel sends no router solicitations or MLD reports down the TUN."""
    path = f"/proc/sys/net/ipv6/conf/{ifname}/disable_ipv6"
    with contextlib.suppress(FileNotFoundError), open(path, "w") as f:  # no IPv6: fine
        f.write("1")


def configure_interface(ifname: str, iface: ipaddress.IPv4Interface, mtu: int | None,
                        txqlen: int | None = None) -> None:
    """In the current thread's namespace: disable IPv6 on ``ifname``, give it
    ``iface`` unless that address is already there, set the MTU (and the
    transmit queue length), bring it and lo up. The route to the subnet comes
    with the address."""
    from pyroute2 import IPRoute

    _disable_ipv6(ifname)
    with IPRoute() as ipr:
        found = ipr.link_lookup(ifname=ifname)
        if not found:
            raise UserError(f"interface {ifname} vanished while configuring it")
        index = found[0]
        present = {(a.get_attr("IFA_ADDRESS"), a["prefixlen"])
                   for a in ipr.get_addr(family=2, index=index)}
        if (str(iface.ip), iface.network.prefixlen) not in present:
            try:
                ipr.addr("add", index=index, address=str(iface.ip),
                         prefixlen=iface.network.prefixlen)
            except Exception as exc:  # pyroute2 raises NetlinkError (an OSError)
                code = getattr(exc, "code", None)
                if code != errno.EEXIST:
                    raise UserError(f"cannot add {iface} to {ifname}: {exc}") from None
        if mtu is not None:
            ipr.link("set", index=index, mtu=mtu)
        if txqlen is not None:
            ipr.link("set", index=index, txqlen=txqlen)
        ipr.link("set", index=index, state="up")
        (lo,) = ipr.link_lookup(ifname="lo")
        ipr.link("set", index=lo, state="up")


# -- building routed topologies (run these inside a namespace: run_in_netns) ------------

def write_sysctl(path: str, value: str) -> None:
    """``/proc/sys/net/<path>`` in the current thread's namespace."""
    with open(f"/proc/sys/net/{path}", "w", encoding="ascii") as f:
        f.write(value)


def make_veth(ifname: str, peer: str, peer_netns: str, mac: str | None = None,
              peer_mac: str | None = None) -> None:
    """A veth pair from the current thread's namespace to ``peer_netns``."""
    from pyroute2 import IPRoute

    mine: dict[str, Any] = {"ifname": ifname, "kind": "veth"}
    other: dict[str, Any] = {"ifname": peer, "net_ns_fd": peer_netns}
    if mac is not None:
        mine["address"] = mac
    if peer_mac is not None:
        other["address"] = peer_mac
    with IPRoute() as ipr:
        ipr.link("add", **mine, peer=other)


def no_rp_filter(*devices: str) -> None:
    """Reverse-path filtering off (a router of test paths sees spoofed or
    asymmetric sources)."""
    for dev in ("all", "default", *devices):
        write_sysctl(f"ipv4/conf/{dev}/rp_filter", "0")


def add_route(dst: str, gateway: str) -> None:
    """A route to ``dst`` (a prefix, or ``0.0.0.0/0``) via ``gateway``."""
    from pyroute2 import IPRoute

    with IPRoute() as ipr:
        ipr.route("add", dst=dst, gateway=gateway)
