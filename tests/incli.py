"""`painedge ARGV` in the test's own process: for commands that refuse or print and exit, where a child process
proves nothing more (the daemon itself, the demo and the benchmark keep their real processes)."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Any

from painedge import cli


@dataclass(frozen=True)
class Ran:
    status: int
    out: str
    err: str


def run_cli(argv: list[str], capture: Any, monkeypatch: Any, **env: str) -> Ran:
    """Run ``argv`` with no PAINEDGE_* variable but ``env``, its output read from ``capture`` (capsys, or capfd to
    see what libraries write to the file descriptors too); the root logger (which main configures) is put back."""
    for name in [n for n in os.environ if n.startswith("PAINEDGE_")]:
        monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    capture.readouterr()
    try:
        status = cli.main(argv)
    except SystemExit as e:  # argparse refusing the command line
        status = e.code if isinstance(e.code, int) else 1
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
    out = capture.readouterr()
    return Ran(status, out.out, out.err)
