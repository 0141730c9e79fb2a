"""`painedge bench` as a user runs it: a real pipeline run, with table, JSON, CSV and plot."""

from __future__ import annotations

import csv
import json
import subprocess
import sys

import pytest

from .conftest import data

pytestmark = pytest.mark.slow


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
