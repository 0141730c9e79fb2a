"""Logging goes to journald only under systemd with systemd-python; otherwise plain stderr lines."""

from __future__ import annotations

import logging

import pytest

from painedge import logsetup


@pytest.mark.parametrize("env", [{}, {"JOURNAL_STREAM": "8:1234"}, {"INVOCATION_ID": "abc"}])
def test_journal_only_under_systemd_and_with_systemd_python(env):
    try:
        import systemd.journal  # noqa: F401
        have = True
    except ImportError:
        have = False
    h = logsetup.journal_handler(env)
    assert (h is not None) == (bool(env) and have)


def test_stderr_lines_carry_the_event(capsys, monkeypatch):
    monkeypatch.delenv("JOURNAL_STREAM", raising=False)
    monkeypatch.delenv("INVOCATION_ID", raising=False)
    logsetup.configure("INFO")
    logging.getLogger("painedge").warning("alert %s raised", "abc", extra=logsetup.fields("alert", alert_id="abc"))
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].endswith("WARNING painedge: alert abc raised")
    assert logsetup.fields("alert", alert_id="abc", frame=3) == {
        "PAINEDGE_EVENT": "alert", "PAINEDGE_ALERT_ID": "abc", "PAINEDGE_FRAME": 3}
