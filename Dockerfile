# The tcpstack test suite in a container. It needs the capabilities to make
# network namespaces and TUN/TAP devices, nothing more:
#
#   docker build -t tcpstack-test .
#   docker run --rm --cap-add NET_ADMIN --cap-add SYS_ADMIN --device /dev/net/tun \
#       --security-opt apparmor=unconfined tcpstack-test
#
# (--security-opt apparmor=unconfined only where AppArmor confines containers,
# e.g. Ubuntu hosts: its default profile forbids the mounts `ip netns` makes.)
# Extra arguments go to pytest: `docker run ... tcpstack-test tools/test -m "not vm"`.
FROM debian:bookworm-slim

# tools/install installs the rest (iproute2, netcat-openbsd, nftables, iputils-ping,
# tcpdump, qemu-system-x86, linux-image-amd64, busybox-static, ...).
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3 python3-venv ca-certificates \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /src
COPY . /src
RUN tools/install --test && rm -rf /var/lib/apt/lists/*

# CI=true: a test that would skip for a missing capability fails instead.
ENV CI=true
CMD ["tools/test"]
