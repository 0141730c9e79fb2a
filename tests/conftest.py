"""Shared fixtures: the real clips in ../shared/data and one Face Mesh per test module."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from painedge import face as F

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("PAINEDGE_TEST_DATA", ROOT.parent / "shared" / "data"))


def data(name: str) -> str:
    """A real test clip. Missing clips fail the test (a skip would let CI pass on nothing)."""
    path = DATA / name
    if not path.exists():
        pytest.fail(f"test clip {path} is missing: put shared/ beside the repo or set PAINEDGE_TEST_DATA")
    return str(path)


def spearman(x: np.ndarray, y: np.ndarray) -> float:
    """Spearman rank correlation (average ranks for ties)."""

    def ranks(a: np.ndarray) -> np.ndarray:
        a = np.asarray(a, float)
        order = a.argsort()
        r = np.empty(len(a))
        r[order] = np.arange(len(a))
        for v in np.unique(a):  # average the ranks of ties
            r[a == v] = r[a == v].mean()
        return r

    rx, ry = ranks(x), ranks(y)
    if rx.std() == 0 or ry.std() == 0:
        return 0.0
    return float(np.corrcoef(rx, ry)[0, 1])


@pytest.fixture(scope="module")
def still_mesh() -> F.FaceMesh:
    mesh = F.FaceMesh(F.MeshSettings(static_image_mode=True))
    yield mesh
    mesh.close()


@pytest.fixture(scope="module")
def single_face_frames() -> list[np.ndarray]:
    return [frame for _, frame in F.read_video(data("single_face.mp4"))]


# ---------------------------------------------------------------- real daemons, shared


# The demo, unpaced and looping, with alert times short enough for a test: a grimace every loop.
FAST_ALERTS = {
    "PAINEDGE_SOURCE__REALTIME": "false",
    "PAINEDGE_GATE__ENABLED": "false",
    "PAINEDGE_ALERTS__RAISE_AFTER_S": "0.3",
    "PAINEDGE_ALERTS__ESCALATE_AFTER_S": "0.3",
    "PAINEDGE_ALERTS__CLEAR_AFTER_S": "0.5",
    "PAINEDGE_ALERTS__COOLDOWN_S": "0",
    "PAINEDGE_ASSESS__SMOOTHING_S": "0.2",
}


@pytest.fixture(scope="session")
def demo_run():
    """One finished daemon run: the demo, unpaced, gate off, fast alerts, 420 frames (calm, smile, grimace,
    relax). Its readings (the per-frame level, which no alert setting changes) and alerts serve several tests."""
    from .daemon import Daemon

    with Daemon("--source", "demo", "--no-gate", "--max-frames", "420", env=FAST_ALERTS) as d:
        code, err = d.wait(timeout_s=120)
        d.receive(lambda ms: False, timeout_s=0.5)
    assert code == 0, err
    d.stderr = err
    return d


@pytest.fixture
def running():
    """A live daemon for one test: the demo looping with fast alerts, its replay service, and a subscriber noting
    when each heartbeat arrives. One per test: the demo runs unpaced, a whole core, so it must not outlive the
    test that uses it (it starts in about a second)."""
    from .daemon import watched_demo

    with watched_demo(FAST_ALERTS) as running:
        yield running


@pytest.fixture
def cli(capsys, tmp_path, monkeypatch):
    """``painedge ARGS...`` in-process: (exit code, stderr). Its state folder is the test's; the logging
    it configures is undone after."""
    import logging

    from painedge import cli as painedge_cli

    monkeypatch.setenv("PAINEDGE_STATE__DIR", f'"{tmp_path}"')
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level

    def run(*argv: str) -> tuple[int, str]:
        capsys.readouterr()
        try:
            code = painedge_cli.main(list(argv))
        finally:
            for h in list(root.handlers):
                if h not in handlers:
                    root.removeHandler(h)
            for h in handlers:
                if h not in root.handlers:
                    root.addHandler(h)
            root.setLevel(level)
        return code, capsys.readouterr().err

    return run


# ---------------------------------------------------------------- the fast set

# Whole modules left out of `make test-fast` (the inner loop); `make test` and CI run them.
SLOW_MODULES = {
    "test_synth.py": "the generator warps and re-meshes real photos: seconds a case",
    "test_config_fuzz.py": "hypothesis fuzzing of files and environments",
    "test_demo.py": "`painedge demo` as a user runs it, a daemon child process each",
    "test_face_trims.py": "each trim against the code it replaced, on every frame of the real clips",
    "test_bench_projection.py": "op counts read from every model file",
    "test_station_browser.py": "a real headless Chromium",
}
# Single tests that take a second or more of real clips, processes or retries.
SLOW_TESTS = {
    "test_preview.py::test_preview_streams_annotated_frames_from_a_real_daemon",
    "test_preview.py::test_show_with_an_unreachable_display_says_so_instead_of_aborting",
    "test_landmarks.py::test_landmarks_agree_with_mediapipes_refined_graph",
    "test_landmarks.py::test_face_found_exactly_where_mediapipe_finds_it",
    "test_landmarks.py::test_litert_backend_daemon_imports_no_mediapipe_tensorflow_or_matplotlib",
    "test_landmarks.py::test_mediapipe_backend_daemon_imports_no_matplotlib_or_tensorflow",
    "test_station_sinks.py::test_a_stalled_channel_does_not_hold_up_the_others",
    "test_face.py::test_cues_command_prints_one_json_object_per_frame",
    "test_face.py::test_stream_keeps_each_frames_key_and_says_none_where_there_is_no_face",
    "test_face.py::test_face_then_gone_in_face_noface_clip",
    "test_capture.py::test_a_camera_that_stops_delivering_is_reported_stalled_and_reopened",
    "test_capture.py::test_the_daemon_refuses_an_undecodable_file_at_start_in_one_line",
    "test_landmarks.py::test_irises_lie_inside_the_eyes",
    "test_landmarks.py::test_periodic_recheck_keeps_the_tracked_face",
    "test_face.py::test_cues_command_prints_a_table_for_people",
    "test_face.py::test_cues_command_bad_video_gives_one_line_and_no_traceback",
    "test_bench.py::test_bench_plot_has_one_row_and_one_labelled_curve_per_stage",
    "test_bench.py::test_bench_json_dash_prints_the_report_and_writes_no_file",
    "test_resilience.py::test_frames_refused_in_a_row_are_said_once_in_the_log_and_a_status",
    "test_station_web.py::test_alerts_off_and_stale_come_from_the_device",
    "test_station_sinks.py::test_fhir_observations_validate_as_r4_and_carry_our_codes",
    "test_alerts.py::test_service_pauses_the_alarm_only_for_a_face_lost_for_several_frames",
    "test_daemon.py::test_no_face_clip_reports_no_face_and_gives_no_readings",
    "test_landmarks.py::test_no_face_in_no_face_clip_nor_after_the_person_left",
}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        module = item.path.name
        name = f"{module}::{item.originalname or item.name}"
        if module in SLOW_MODULES or name in SLOW_TESTS:
            item.add_marker(pytest.mark.slow)


# ---------------------------------------------------------------- workers

# `make test` runs the suite on 4 workers (pytest-xdist, `--dist loadfile`): a module goes whole to one worker,
# so its fixtures (a daemon, a trained model) are made once. The modules that train or convert with TensorFlow
# go together to one worker: TensorFlow loads once, and two trainings never fight over the 2 cores. So do the two
# modules that read the one finished demo run (`demo_run`, made once per worker).
TOGETHER = {"test_model.py": "tensorflow", "test_datasets.py": "tensorflow", "test_boost.py": "tensorflow",
            "test_bench_projection.py": "tensorflow",  # converts one tiny model: not worth a second TF import
            "test_daemon.py": "demo_run", "test_alerting.py": "demo_run"}


def pytest_xdist_make_scheduler(config: pytest.Config, log: object) -> object | None:
    if config.getvalue("dist") != "loadfile":
        return None  # xdist's own scheduler for any other --dist
    from xdist.scheduler import LoadScopeScheduling

    class ModulesTogether(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            module = nodeid.split("::", 1)[0]
            return TOGETHER.get(Path(module).name, module)

    return ModulesTogether(config, log)
