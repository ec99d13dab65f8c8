"""``tcpstack lab up|down``: a persistent namespace with a TUN device, so a person
can run ``tcpstack listen`` in one terminal and ``ip netns exec tcpstack nc``
in another, or watch with ``ip netns exec tcpstack tcpdump -ni tcps0``."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from tcpstack.cli import common
from tcpstack.errors import UserError, one_line_errors
from tcpstack.link import netns as ns
from tcpstack.link.tun import delete_tun, open_tun
from tcpstack.runtime.network import NetworkSetup


def register(subparsers: Any) -> None:
    lab = subparsers.add_parser(
        "lab", help="set up or tear down a persistent namespace + TUN to experiment in",
        description="'lab up' creates the namespace (if missing) and a persistent TUN "
                    "device with the kernel's address on it; 'tcpstack listen/connect' with "
                    "the same NET options then use them. 'lab down' removes both.")
    one_line_errors(lab)
    lab.add_argument("action", choices=("up", "down"), metavar="up|down")
    common.add_net_arguments(lab, traffic=False)
    lab.set_defaults(func=_lab)


def _lab(args: argparse.Namespace) -> int:
    setup = NetworkSetup(netns=args.netns, tun=args.tun, addr=args.addr, tun_addr=args.tun_addr)
    setup.validate()
    common.require_root()
    if args.action == "up":
        return _up(setup)
    return _down(setup)


def _up(setup: NetworkSetup) -> int:
    created = False
    if not ns.netns_exists(setup.netns):
        ns.create_netns(setup.netns)
        created = True
    try:
        link = open_tun(setup.netns, setup.tun, list(setup.interfaces().values()), setup.mtu,
                        persist=True)
    except BaseException:
        if created:
            ns.remove_netns(setup.netns)
        raise
    link.close()               # persistent: the device stays without us
    name, dev = setup.netns, setup.tun
    kernel = " ".join(str(i) for i in setup.interfaces().values())
    addrs = setup.addresses()
    print(f"lab up: namespace {name}, {dev} {kernel} (kernel side); "
          f"the stack uses {' '.join(addrs.values())}", file=sys.stderr)
    first = next(iter(addrs.values()))
    print(f"  try:  tcpstack listen 7 --echo --netns {name} --tun {dev}\n"
          f"  then: ip netns exec {name} nc {'-6 ' if ':' in first else ''}{first} 7\n"
          f"  undo: tcpstack lab down --netns {name} --tun {dev}", file=sys.stderr)
    return 0


def _down(setup: NetworkSetup) -> int:
    if not ns.netns_exists(setup.netns):
        raise UserError(f"no lab to take down: network namespace {setup.netns!r} does not exist")
    delete_tun(setup.netns, setup.tun)
    ns.remove_netns(setup.netns)
    print(f"lab down: removed namespace {setup.netns}", file=sys.stderr)
    return 0
