"""`painedge evaluate`: the daemon's pipeline over the labelled real footage in ../shared/data."""

from __future__ import annotations

import json
import subprocess
import sys
from contextlib import nullcontext as does_not_raise

import numpy as np
import pytest

from painedge import evaluate as E

from .conftest import DATA, data


@pytest.mark.parametrize(
    "scores, positive, auc",
    [
        ([0.1, 0.2, 0.8, 0.9], [0, 0, 1, 1], 1.0),
        ([0.9, 0.8, 0.2, 0.1], [0, 0, 1, 1], 0.0),
        ([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1], 0.75),  # 3 of the 4 pain/no-pain pairs ordered right
        ([1, 1, 2], [0, 1, 1], 0.75),  # a tie counts a half
        ([3, 3, 3, 3], [0, 1, 0, 1], 0.5),
        ([0.5, 0.7], [1, 1], None),  # no negatives: undefined
    ],
)
def test_roc_auc_is_the_probability_a_pain_frame_scores_higher(scores, positive, auc):
    got = E.roc_auc(scores, [bool(p) for p in positive])
    assert got == (None if auc is None else pytest.approx(auc))


@pytest.mark.parametrize(
    "labels, expectation",
    [
        ({"single_face.jpg": {"still": True, "segments": [{"expect": "no_pain", "level": [0, 1]}]}}, does_not_raise()),
        ({"single_face.jpg": {"still": True, "segments": [{"expect": "happy"}]}},
         pytest.raises(E.LabelsError, match="expect must be pain, no_pain or none")),
        ({"nothere.mp4": {"segments": [{"expect": "none"}]}}, pytest.raises(E.LabelsError, match="no such file")),
        ({"single_face.mp4": {"segments": [{"from": 80, "to": 90, "expect": "none"}]}},
         pytest.raises(E.LabelsError, match="outside the clip's 0-71")),
        ({"single_face.jpg": {"still": True, "baseline_from": "x.png", "segments": [{"expect": "pain"}]}},
         pytest.raises(E.LabelsError, match="baseline_from 'x.png' is not labelled")),
        ({"format": "only a comment"}, pytest.raises(E.LabelsError, match="no labelled files")),
    ],
)
def test_labels_are_checked_with_a_message_naming_the_file(tmp_path, labels, expectation):
    f = tmp_path / "labels.json"
    f.write_text(json.dumps({str(DATA / k) if k != "format" else k: v for k, v in labels.items()}))
    with expectation:
        items = E.load_labels(f, still_frames=10)
        assert items[0].segments[0].end == 9  # a still of 10 frames, whole-clip segment


@pytest.fixture(scope="module")
def report() -> E.Evaluation:
    return E.evaluate(data("labels.json"))


@pytest.mark.slow
def test_no_face_gives_no_readings_and_faces_give_one_per_frame(report):
    by = {(r.item, r.segment): r for r in report.segments}
    for r in report.segments:
        if r.expect == "none":
            assert r.face_frames == 0 and r.max_smoothed is None and not r.alerts and r.checks == {"no readings": True}
        else:  # every labelled face segment here shows its face on every frame
            assert r.face_frames == r.frames == r.end - r.start + 1
            assert sum(r.level_dist) == pytest.approx(1, abs=0.01) and sum(r.gated_smoothed_dist) == pytest.approx(1, abs=0.01)
    assert by[("no_face.mp4", 1)].frames > 90 and by[("face_noface.mov", 2)].start == 72


@pytest.mark.slow
def test_the_reports_cue_auc_is_recomputed_from_its_own_timelines_and_beats_chance(report):
    scores, pain = [], []
    for _name, t in report.timelines.items():
        for start, end, expect in t["segments"]:
            for f, p in zip(t["frame"], t["pspi"]):
                if start <= f <= end and expect != "none" and p is not None:
                    scores.append(p)
                    pain.append(expect == "pain")
    assert report.auc["frames"] == len(scores) and report.auc["pain_frames"] == sum(pain) > 0
    assert report.auc["pspi_cue"] == pytest.approx(E.roc_auc(scores, pain))
    assert report.auc["pspi_cue"] > 0.5
    assert 0 <= report.auc["model_p_moderate_or_worse"] <= 1 and 0 <= report.auc["model_expected_level"] <= 1


@pytest.mark.slow
def test_the_pain_still_is_measured_against_the_neutral_before_it(report):
    by = {r.item: r for r in report.segments}
    pain, neutral = by["unbc_pain.png"], by["unbc_neutral.png"]
    assert pain.pspi_median > neutral.pspi_median + 2  # brows lowered, eyes tightened against her own neutral
    sf = pain.start_frame
    assert sf["started"] == "without unbc_neutral.png first" and sf["frames_compared"] == pain.face_frames
    assert sf["invariant"] == (sf["max_level_difference"] <= 1 and sf["alert_from_clip_start"] == sf["alert_from_here"])
    # Started on the pain still, the baseline's warm-up keeps the population's resting eye (her eyes look
    # narrowed), so the pain still reads Moderate or worse rather than her neutral (Mild, before the warm-up rule).
    assert sf["invariant"], sf
    # the gate lets through a still face only every 10th frame: the daemon's smoothed level changes only there
    smoothed = report.timelines["unbc_pain.png"]["smoothed"]
    changes = [i for i in range(1, len(smoothed)) if smoothed[i] != smoothed[i - 1]]
    assert all(i % 10 in (0, 9) for i in changes)


@pytest.mark.slow
def test_the_command_writes_a_table_json_and_a_timeline_png(tmp_path):
    labels = tmp_path / "labels.json"
    labels.write_text(json.dumps({
        data("single_face.jpg"): {"still": True, "segments": [{"expect": "no_pain", "level": [0, 1]}]},
        data("no_face.mp4"): {"segments": [{"from": 0, "to": 40, "expect": "none"}]}}))
    out, png = tmp_path / "r.json", tmp_path / "r.png"
    r = subprocess.run([sys.executable, "-m", "painedge", "evaluate", str(labels), "--still-frames", "20",
                        "--json", str(out), "--plot", str(png)], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "ROC AUC" in r.stdout and "single_face.jpg" in r.stdout
    rep = json.loads(out.read_text())
    assert [s["frames"] for s in rep["segments"]] == [20, 41]
    assert rep["auc"]["pspi_cue"] is None  # no pain frames: undefined, not made up
    assert png.stat().st_size > 10_000
    assert np.isfinite(rep["segments"][0]["pspi_median"])


@pytest.mark.parametrize("path,shown", [
    (None, "painedge/models/painedge-edge-int8.tflite (shipped)"),  # the default: no path of this machine
    ("/opt/models/bed-12.tflite", "/opt/models/bed-12.tflite"),  # one the user chose: as given
    ("models/mine.tflite", "models/mine.tflite"),
])
def test_a_report_names_the_model_without_this_machines_paths(path, shown):
    from pathlib import Path

    from painedge.config import DEFAULT_MODEL
    from painedge.evaluate import _model_path

    assert _model_path(DEFAULT_MODEL if path is None else Path(path)) == shown
