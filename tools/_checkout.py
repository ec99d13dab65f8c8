"""Run the tools/ scripts with the checkout's own interpreter.

``tools/install`` puts tcpstack and its dependencies (pyroute2, scapy, ...)
into ``.venv`` in the checkout; a script started as ``tools/bench`` runs
under whatever ``python3`` is first on PATH, which may lack them. Re-execute
under ``.venv/bin/python`` when it exists, so the scripts behave the same
however they are started.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def use_checkout_venv() -> None:
    venv = ROOT / ".venv"
    python = venv / "bin" / "python"
    if not python.exists() or Path(sys.prefix).resolve() == venv.resolve():
        return
    os.execv(str(python), [str(python), *sys.argv])
