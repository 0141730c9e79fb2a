"""`painedge bench` as a user runs it: a real pipeline run, with table, JSON, CSV and plot."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

import pytest

from .conftest import data

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_bench_reports_stages_fps_cpu_memory_and_machine(tmp_path):
    out = tmp_path / "r.json"
    r = subprocess.run([sys.executable, "-m", "painedge", "bench", "--source", data("single_face.mp4"), "--fast",
                        "--frames", "60", "--warmup", "1", "--json", str(out), "--csv", str(tmp_path / "r.csv"),
                        "--plot", str(tmp_path / "r.png")],
                       capture_output=True, text=True, timeout=180, env={**__import__("os").environ,
                                                                         "PAINEDGE_STATE__DIR": f'"{tmp_path}"'})
    assert r.returncode == 0, r.stderr
    rep = json.loads(out.read_text())
    assert rep["frames"]["processed"] >= 60 and rep["fps"]["processed"] > 0
    for stage in ("capture", "landmarks", "gate", "inference", "publish", "frame"):
        v = rep["latency"][stage]
        assert v["n"] > 0 and 0 < v["p50_ms"] <= v["p95_ms"] <= v["p99_ms"] <= v["max_ms"], stage
    assert 0 <= rep["skip_ratio"] < 1 and rep["cpu_percent"] > 0 and rep["peak_rss_mb"] > 50
    assert rep["machine"]["cores"] and rep["machine"]["cpu"]
    assert "end-to-end" in r.stdout and "fps: captured" in r.stdout
    rows = list(csv.reader((tmp_path / "r.csv").open()))
    assert rows[0] == ["stage", "n", "p50_ms", "p95_ms", "p99_ms", "max_ms"] and len(rows) > 6
    assert (tmp_path / "r.png").stat().st_size > 10_000


def test_bench_json_dash_prints_the_report_and_writes_no_file(tmp_path):
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    r = subprocess.run([sys.executable, "-m", "painedge", "bench", "--source", data("single_face.mp4"), "--fast",
                        "--frames", "10", "--warmup", "0", "--json", "-"], cwd=cwd,
                       capture_output=True, text=True, timeout=120,
                       env={**os.environ, "PAINEDGE_STATE__DIR": f'"{tmp_path / "state"}"', "PYTHONPATH": str(ROOT)})
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["frames"]["processed"] >= 10
    assert list(cwd.iterdir()) == []  # no file named "-"


def test_bench_plot_has_one_row_and_one_labelled_curve_per_stage(tmp_path):
    from matplotlib import image

    from painedge import bench_report

    rng = np.random.default_rng(0)
    samples = {"capture": list(rng.lognormal(-1.5, 0.5, 200)), "landmarks": list(rng.lognormal(1.5, 0.1, 200)),
               "gate": list(rng.lognormal(-3, 0.3, 200)), "inference": list(rng.lognormal(-1, 0.2, 20)),
               "publish": list(rng.lognormal(-1.2, 0.8, 20)), "frame": list(rng.lognormal(2.3, 0.1, 20))}
    out = tmp_path / "p.png"
    bench_report.plot(samples, str(out), "test")
    h, w = image.imread(str(out)).shape[:2]
    assert w > 1200 and h > 500


def test_a_compared_model_is_timed_on_the_inputs_of_each_inference_and_reported_after_it(tmp_path):
    """`bench --compare-model`, in-process: the second model runs once per inference of the first."""
    from painedge import bench
    from painedge.config import Settings
    from painedge.config.settings import DEFAULT_MODEL

    settings = bench.bench_settings(Settings(source={"source": data("single_face.mp4"), "realtime": False},
                                             state={"dir": tmp_path}), threads=1)
    report, samples = bench.run(settings, frames=30, warmup_s=0.5, compare_model=str(DEFAULT_MODEL))
    # The warm-up's end clears the samples from another thread, so the two counts may differ by the one
    # inference under way at that moment.
    assert report["frames"]["inferred"] > 0
    assert abs(len(samples["compare"]) - len(samples["inference"])) <= 1
    stages = list(report["latency"])
    assert stages.index("compare") == stages.index("inference") + 1 and stages[-1] == "frame"
