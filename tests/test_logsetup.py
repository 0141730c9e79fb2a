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


@pytest.mark.parametrize(
    "written, kept",
    [
        (b"INFO: Created TensorFlow Lite XNNPACK delegate for CPU.\n", b""),
        (b"W0000 00:00:1 123 inference_feedback_manager.cc:114] Feedback manager requires a model with a single "
         b"signature inference. Disabling support for feedback tensors.\n", b""),
        (b"a library's real warning\n", b"a library's real warning\n"),
        (b"F0000 check failed: x\nINFO: Created TensorFlow Lite XNNPACK delegate for CPU.\n", b"F0000 check failed: x\n"),
    ],
)
def test_only_the_known_native_notes_are_dropped_from_fd_2(written, kept, capfd):
    import os

    with logsetup.native_notes_dropped():
        os.write(2, written)
        with logsetup.native_notes_dropped():  # nested: the outer one holds it all
            os.write(2, b"")
    assert capfd.readouterr().err.encode() == kept


def test_what_python_logs_meanwhile_is_written_back(capfd, monkeypatch):
    import os

    monkeypatch.delenv("JOURNAL_STREAM", raising=False)
    monkeypatch.delenv("INVOCATION_ID", raising=False)
    logsetup.configure("INFO")
    with logsetup.native_notes_dropped():
        logging.getLogger("painedge").info("camera up")
        os.write(2, b"INFO: Created TensorFlow Lite XNNPACK delegate for CPU.\n")
    assert capfd.readouterr().err.strip().endswith("INFO painedge: camera up")


def test_without_a_temporary_file_the_call_runs_unfiltered(capfd, monkeypatch):
    """A unit whose temporary folder is not writable must still start its models: the notes then stay."""
    import os

    def no_room() -> None:
        raise OSError(30, "Read-only file system")

    monkeypatch.setattr(logsetup.tempfile, "TemporaryFile", no_room)  # what a read-only /tmp would raise
    ran = []
    with logsetup.native_notes_dropped():
        os.write(2, b"INFO: Created TensorFlow Lite XNNPACK delegate for CPU.\n")
        ran.append(True)
    assert ran and "XNNPACK" in capfd.readouterr().err
