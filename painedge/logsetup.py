"""Logging: one line per event; to journald with structured fields under systemd, else to stderr.

Under systemd (``JOURNAL_STREAM`` or ``INVOCATION_ID`` set) with systemd-python
installed, records go through its JournalHandler: the message plus fields such
as ``PAINEDGE_EVENT``, ``PAINEDGE_ALERT_ID`` or ``PAINEDGE_FRAME`` that
`journalctl -u painedge PAINEDGE_EVENT=alert` can filter on. Otherwise (or
without systemd-python) plain lines go to stderr, which journald keeps too.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import Any, Mapping

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def journal_handler(environ: Mapping[str, str] | None = None) -> logging.Handler | None:
    """systemd-python's JournalHandler when running under systemd and installed, else None."""
    env = os.environ if environ is None else environ
    if not (env.get("JOURNAL_STREAM") or env.get("INVOCATION_ID")):
        return None
    try:
        from systemd.journal import JournalHandler  # type: ignore[import-not-found]
    except ImportError:
        return None
    return JournalHandler(SYSLOG_IDENTIFIER="painedge")


def configure(level: str | int = "INFO") -> logging.Handler:
    """Route the root logger to journald or stderr; returns the handler used."""
    root = logging.getLogger()
    for h in list(root.handlers):
        root.removeHandler(h)
    handler = journal_handler()
    if handler is None:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter(FORMAT))
    root.addHandler(handler)
    root.setLevel(level.upper() if isinstance(level, str) else level)
    return handler


def fields(event: str, **values: Any) -> dict[str, Any]:
    """``extra=`` for a log call: journald fields PAINEDGE_EVENT=event, PAINEDGE_<KEY>=value."""
    return {"PAINEDGE_EVENT": event, **{f"PAINEDGE_{k.upper()}": v for k, v in values.items()}}
