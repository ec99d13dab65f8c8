"""tcpstack without full root: an unprivileged user inside its own user namespace.

`unshare --user --map-root-user --net --mount` gives an ordinary user a
network namespace it owns (it may create the TUN and configure it) and a
mount namespace in which a private tmpfs on /run lets named namespaces
(`--netns`) work. The test drops to the ``nobody`` user first, so nothing
here has real root.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = pytest.mark.root
ROOT = Path(__file__).resolve().parents[2]
NOBODY = ("setpriv", "--reuid=65534", "--regid=65534", "--clear-groups")


def _interpreters() -> list[str]:
    version = f"python{sys.version_info[0]}.{sys.version_info[1]}"
    found = [sys.executable, getattr(sys, "_base_executable", sys.executable),
             f"/usr/bin/{version}", shutil.which(version) or "", shutil.which("python3") or ""]
    return list(dict.fromkeys(p for p in found if p))


def _readable_copy() -> str:
    """tcpstack and pyroute2 copied to a fresh directory every user may read:
    the checkout (e.g. under /root) need not be reachable for ``nobody``."""
    import pyroute2

    where = tempfile.mkdtemp(prefix="tcpstack-nobody-")
    os.chmod(where, 0o755)
    ignore = shutil.ignore_patterns("__pycache__")
    shutil.copytree(ROOT / "tcpstack", Path(where) / "tcpstack", ignore=ignore)
    shutil.copytree(Path(pyroute2.__file__).parent, Path(where) / "pyroute2", ignore=ignore)
    for dirpath, _dirs, files in os.walk(where):
        os.chmod(dirpath, 0o755)
        for name in files:
            os.chmod(os.path.join(dirpath, name), 0o644)
    return where


@pytest.fixture(scope="module")
def as_nobody() -> Iterator[tuple[str, dict[str, str]]]:
    """(interpreter, environment) with which ``nobody`` runs tcpstack."""
    if os.geteuid() != 0:
        pytest.skip("capability missing: root, to drop to the nobody user")
    if not shutil.which("setpriv") or not shutil.which("unshare"):
        pytest.skip("capability missing: setpriv/unshare (util-linux)")
    pythonpath = _readable_copy()
    try:
        env = {"PYTHONPATH": pythonpath, "PATH": os.environ["PATH"]}
        tried = []
        for python in _interpreters():
            # Probe inside a user namespace too: there the real root's files
            # (e.g. an interpreter under /root) may not be reachable.
            probe = subprocess.run([*NOBODY, "unshare", "--user", "--map-root-user", python,
                                    "-c", "import tcpstack.cli, pyroute2"],
                                   env=env, capture_output=True, text=True, cwd="/")
            if probe.returncode == 0:
                yield python, env
                return
            tried.append(f"{python}: {(probe.stderr.strip().splitlines() or ['?'])[-1]}")
        pytest.skip("capability missing: a Python interpreter user nobody may run ("
                    + "; ".join(tried) + ")")
    finally:
        shutil.rmtree(pythonpath, ignore_errors=True)


def test_tcpstack_runs_in_an_unprivileged_user_namespace(
        as_nobody: tuple[str, dict[str, str]]) -> None:
    python, env = as_nobody
    # A private tmpfs on /run, visible only inside this mount namespace, holds
    # the named namespaces and the scratch files. (Not one on /tmp: the
    # checkout tcpstack is imported from may live there.)
    script = f"""
set -e
mount -t tmpfs tmpfs /run
{python} -m tcpstack listen --netns lab --once --msl 1 7000 > /run/out 2> /run/err &
pid=$!
i=0
until grep -q "listening on" /run/err; do
    i=$((i + 1)); [ $i -lt 150 ] || {{ cat /run/err >&2; exit 3; }}; sleep 0.1
done
echo hello-from-the-kernel | ip netns exec lab {python} -c '
import socket, sys
s = socket.create_connection(("10.7.0.2", 7000), timeout=10)
s.sendall(sys.stdin.buffer.read()); s.shutdown(socket.SHUT_WR)
while s.recv(4096): pass
'
wait $pid
echo "uid=$(cat /proc/self/uid_map | tr -s ' ')"
cat /run/out
"""
    result = subprocess.run([*NOBODY, "unshare", "--user", "--map-root-user", "--net", "--mount",
                             "sh", "-c", script], env=env, capture_output=True, text=True,
                            timeout=60, cwd="/")
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    # uid_map "0 65534 1": root inside is the unprivileged nobody outside.
    assert lines[0].split() == ["uid=", "0", "65534", "1"]
    assert lines[1:] == ["hello-from-the-kernel"]


def test_without_privileges_tcpstack_says_why_in_one_line(
        as_nobody: tuple[str, dict[str, str]]) -> None:
    python, env = as_nobody
    for prefix in ((), ("unshare", "--user", "--map-root-user", "--net")):
        result = subprocess.run([*NOBODY, *prefix, python, "-m", "tcpstack", "listen", "7000"],
                                env=env, capture_output=True, text=True, timeout=60, cwd="/")
        assert result.returncode == 1, result
        assert "Traceback" not in result.stderr
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("tcpstack: "), result.stderr
        assert "root" in lines[0]
