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
import tempfile
import threading
from contextlib import contextmanager
from typing import Any, Iterator, Mapping

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def journal_handler(environ: Mapping[str, str] | None = None) -> logging.Handler | None:
    """systemd-python's JournalHandler when running under systemd and installed, else None."""
    env = os.environ if environ is None else environ
    if not (env.get("JOURNAL_STREAM") or env.get("INVOCATION_ID")):
        return None
    try:
        from systemd.journal import JournalHandler
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


# Lines the native libraries write straight to file descriptor 2, past Python's logging, each time a model or
# graph starts: notes about their own internals that say nothing about painedge and would puzzle whoever reads
# the daemon's log (journald keeps stderr). Only these exact notes are dropped; anything else passes.
NATIVE_NOTES = (
    b"Created TensorFlow Lite XNNPACK delegate for CPU",  # LiteRT, every interpreter
    b"All log messages before absl::InitializeLog() is called are written to STDERR",  # MediaPipe's absl, once
    b"Feedback manager requires a model with a single signature",  # MediaPipe, every graph start
    b"Using NORM_RECT without IMAGE_DIMENSIONS is only supported for the square ROI",  # Face Mesh's graph
)
_redirecting = threading.RLock()
_depth = threading.local()


@contextmanager
def native_notes_dropped() -> Iterator[None]:
    """Around a call that starts a native model or graph: what is written to fd 2 meanwhile (by the libraries,
    or by painedge's other threads) is held in a file and written back when the call ends, less ``NATIVE_NOTES``.
    Nothing else is lost; lines are delayed by the call's time. Calls from several threads take turns. Without a
    stderr or a temporary file to hold it in (the unit's PrivateTmp gives one), the call runs unfiltered."""
    with _redirecting:
        held = saved = None
        if not getattr(_depth, "n", 0):  # not already inside one, in this thread
            try:
                if sys.stderr is not None:
                    sys.stderr.flush()
                saved = os.dup(2)
                held = tempfile.TemporaryFile()
            except (OSError, ValueError):
                if saved is not None:
                    os.close(saved)
                saved = None
        if held is None or saved is None:
            yield
            return
        _depth.n = 1
        try:
            os.dup2(held.fileno(), 2)
            try:
                yield
            finally:
                if sys.stderr is not None:
                    sys.stderr.flush()
                os.dup2(saved, 2)
                held.seek(0)
                kept = [line for line in held.read().splitlines(keepends=True)
                        if not any(note in line for note in NATIVE_NOTES)]
                if kept:
                    os.write(2, b"".join(kept))
        finally:
            held.close()
            os.close(saved)
            _depth.n = 0
