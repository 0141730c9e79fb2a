"""`painedge bench --project`: op counts read from real .tflite files, and a projection labelled as one."""

from __future__ import annotations


import numpy as np
import pytest

from painedge import bench_projection
from painedge.landmarks import DETECTOR_MODEL, MESH_MODEL

from .incli import run_cli


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> str:
    """A float model with known work: conv 3x3x3->4 on 8x8 (same padding) = 6912 MACs, dense 256->10 = 2560."""
    tf = pytest.importorskip("tensorflow")
    inp = tf.keras.Input((8, 8, 3), batch_size=1)
    x = tf.keras.layers.Conv2D(4, 3, padding="same")(inp)
    x = tf.keras.layers.Flatten()(x)
    out = tf.keras.layers.Dense(10)(x)
    model = tf.keras.Model(inp, out)
    path = tmp_path_factory.mktemp("tiny") / "tiny.tflite"
    path.write_bytes(tf.lite.TFLiteConverter.from_keras_model(model).convert())
    return str(path)


def test_macs_counted_from_the_model_file(tiny_model):
    m = bench_projection.model_macs(tiny_model)
    assert m["by_op"] == {"CONV_2D": 8 * 8 * 4 * 3 * 3 * 3, "FULLY_CONNECTED": 256 * 10}
    assert not m["int8"]


def test_the_face_models_are_counted_as_float_and_the_pain_model_as_int8():
    from painedge.model import DEFAULT_MODEL

    mesh, det, pain = bench_projection.model_macs(MESH_MODEL), bench_projection.model_macs(DETECTOR_MODEL), bench_projection.model_macs(DEFAULT_MODEL)
    assert 20e6 < mesh["macs"] < 60e6 and 20e6 < det["macs"] < 60e6  # BlazeFace-sized networks, tens of MMACs
    assert not mesh["int8"] and not det["int8"] and pain["int8"]


@pytest.mark.parametrize("board", sorted(bench_projection.BOARDS))
def test_projection_sums_what_runs_per_frame(board):
    p = bench_projection.project(board, bench_projection.default_project_models("litert"))
    rows = p["models"]
    assert rows["detector (on loss only)"]["runs_per_frame"] == 0
    for i in (0, 1):
        want = rows["landmarks"]["ms"][i] + rows["pain model"]["ms"][i]
        assert p["frame_ms"][i] == pytest.approx(want, abs=0.02)
    assert p["fps_ceiling"][0] <= p["fps_ceiling"][1]
    assert "NOT a measurement" in bench_projection.projection_table(p)


def test_the_orin_is_projected_faster_than_the_nano():
    models = bench_projection.default_project_models("litert")
    nano, orin = bench_projection.project("nano", models), bench_projection.project("orin-nano", models)
    assert np.all(np.array(orin["frame_ms"]) < np.array(nano["frame_ms"]))


def test_bench_project_command_prints_the_projection_and_refuses_other_boards(capsys, monkeypatch):
    ok = run_cli(["bench", "--project", "orin-nano"], capsys, monkeypatch, PAINEDGE_FACE__BACKEND="litert")
    assert ok.status == 0, ok.err[-2000:]
    assert "PROJECTION for Jetson Orin Nano" in ok.out and "face_landmark_with_attention" in ok.out
    bad = run_cli(["bench", "--project", "pi5"], capsys, monkeypatch)
    assert bad.status == 2 and "invalid choice" in bad.err
