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
from tcpstack.wire.addr import canonical_addr

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


class OwnsNamespaces:
    """For a test network that makes its own namespaces (a dataclass with a
    ``created: list[str]`` field): ``make_netns`` creates one and remembers it,
    ``remove`` deletes every one it made, newest first (their devices go with
    them)."""

    created: list[str]

    def make_netns(self, name: str) -> None:
        create_netns(name)
        self.created.append(name)

    def remove(self) -> None:
        while self.created:
            remove_netns(self.created.pop())


def _bring_loopback_up() -> None:
    from pyroute2 import IPRoute

    with IPRoute() as ipr:
        (index,) = ipr.link_lookup(ifname="lo")
        ipr.link("set", index=index, state="up")


Interface = ipaddress.IPv4Interface | ipaddress.IPv6Interface
_FAMILY_NAME = {4: "IPv4", 6: "IPv6"}
_EXAMPLE = {4: "10.7.0.1/24", 6: "fd00:7::1/64"}


def parse_interface(text: str, family: int | None = None) -> Interface:
    """``10.7.0.1/24`` or ``fd00:7::1/64`` -> an interface, or a one-line
    UsageError that says which family was expected (``family`` 4 or 6: only it)."""
    families = (family,) if family else (4, 6)
    expected = " or ".join(f"{_FAMILY_NAME[f]} ADDRESS/PREFIXLEN (e.g. {_EXAMPLE[f]})"
                           for f in families)
    try:
        iface = ipaddress.ip_interface(text)
    except ValueError:
        raise UsageError(f"bad interface address {text!r} (expected {expected})") from None
    if iface.version not in families:
        raise UsageError(f"bad interface address {text!r} (expected {expected})")
    if "/" not in text:
        raise UsageError(f"bad interface address {text!r}: missing /PREFIXLEN")
    return iface


def parse_ipv4(text: str, what: str = "address") -> str:
    try:
        return _canonical_ipv4(text)
    except ValueError:
        raise UsageError(f"bad {what} {text!r} (expected a dotted-quad IPv4 address)") from None


def parse_ip(text: str, what: str = "address", family: int | None = None) -> str:
    """An IPv4 or IPv6 address (``family`` 4 or 6: only that one) as the wire
    layer writes it, or a one-line UsageError saying which family was expected."""
    try:
        canonical, version = _canonical_ip(text)
    except ValueError:
        canonical, version = "", 0
    if version and (family is None or version == family):
        return canonical
    expected = {4: "an IPv4 address (dotted quad)", 6: "an IPv6 address (e.g. fd00:7::1)",
                None: "an IPv4 or IPv6 address"}[family]
    raise UsageError(f"bad {what} {text!r} (expected {expected})")


@functools.lru_cache(maxsize=1024)
def _canonical_ipv4(text: str) -> str:
    """The dotted quad ``ipaddress`` makes of ``text`` (once per text: every connect asks)."""
    return str(ipaddress.IPv4Address(text))


@functools.lru_cache(maxsize=1024)
def _canonical_ip(text: str) -> tuple[str, int]:
    """``(text as the wire layer writes it, 4 or 6)``; ValueError if neither family."""
    if ":" in text:
        # The wire layer's own text (inet_ntop, RFC 5952) so that the string a
        # person gave compares equal to the one parsed from a packet.
        return canonical_addr(str(ipaddress.IPv6Address(text.strip("[]")))), 6
    return _canonical_ipv4(text), 4


def _disable_ipv6(ifname: str) -> None:
    """``net.ipv6.conf.IF.disable_ipv6=1`` in the current thread's namespace, so the
    kernel sends no router solicitations or MLD reports down the TUN."""
    _set_ipv6_conf(ifname, "disable_ipv6", 1)


def _enable_ipv6(ifname: str) -> None:
    """IPv6 on ``ifname`` without duplicate address detection (RFC 4862 §5.4):
    the interface is ours, in our own namespace, and a tentative address would
    lose the first packets sent to it. No neighbour discovery happens on a TUN
    (an L3 device): addresses are used at once. No router solicitations
    either: nobody on the TUN routes, and they would only be noise in a capture."""
    _set_ipv6_conf(ifname, "router_solicitations", 0)
    _set_ipv6_conf(ifname, "accept_dad", 0)
    _set_ipv6_conf(ifname, "dad_transmits", 0)
    _set_ipv6_conf(ifname, "disable_ipv6", 0)


def _set_ipv6_conf(ifname: str, key: str, value: int) -> None:
    path = f"/proc/sys/net/ipv6/conf/{ifname}/{key}"
    with contextlib.suppress(FileNotFoundError), open(path, "w") as f:  # no IPv6: fine
        f.write(str(value))


def configure_interface(ifname: str, iface: Interface | Sequence[Interface], mtu: int | None,
                        txqlen: int | None = None) -> None:
    """In the current thread's namespace: give ``ifname`` ``iface`` (one or a
    sequence, at most one per family) unless an address is already there, set
    the MTU (and the transmit queue length), bring it and lo up. IPv6 is
    disabled unless an IPv6 address is given, and then runs without DAD. The
    route to each subnet comes with its address."""
    from pyroute2 import IPRoute

    ifaces = [iface] if isinstance(iface, ipaddress.IPv4Interface | ipaddress.IPv6Interface) \
        else list(iface)
    with IPRoute() as ipr:
        found = ipr.link_lookup(ifname=ifname)
        if not found:
            raise UserError(f"interface {ifname} vanished while configuring it")
        index = found[0]
        # The MTU first: below 1280 Linux drops IPv6 from the link, and its
        # per-interface settings with it; they exist again only after.
        if mtu is not None:
            ipr.link("set", index=index, mtu=mtu)
        if any(i.version == 6 for i in ifaces):
            _enable_ipv6(ifname)
        else:
            _disable_ipv6(ifname)
        for one in ifaces:
            family = 10 if one.version == 6 else 2
            present = {(a.get_attr("IFA_ADDRESS"), a["prefixlen"])
                       for a in ipr.get_addr(family=family, index=index)}
            if (str(one.ip), one.network.prefixlen) in present:
                continue
            try:
                ipr.addr("add", index=index, address=str(one.ip),
                         prefixlen=one.network.prefixlen)
            except Exception as exc:  # pyroute2 raises NetlinkError (an OSError)
                code = getattr(exc, "code", None)
                if code != errno.EEXIST:
                    raise UserError(f"cannot add {one} to {ifname}: {exc}") from None
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
