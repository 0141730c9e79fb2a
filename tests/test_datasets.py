"""Dataset adapters on tiny trees in each dataset's published layout."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from painedge import synth as S
from painedge.train import datasets as DS


@pytest.fixture(scope="module")
def frames() -> list[np.ndarray]:
    """Ten frames of a synthetic face: real enough for Face Mesh, small enough to write fast."""
    photo = S.Photo.from_image(S.load_face("astronaut"), "astronaut")
    out = [photo.render({"au4": i / 10}) for i in range(10)]
    return [cv2.resize(f, (180, 200)) for f in out]


def _video(path: Path, frames: list[np.ndarray]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    h, w = frames[0].shape[:2]
    vw = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 25, (w, h))
    for f in frames:
        vw.write(f)
    vw.release()


def _images(folder: Path, frames: list[np.ndarray], stem: str, ext: str = ".png") -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, f in enumerate(frames, 1):
        paths.append(folder / f"{stem}{i:03d}{ext}")
        cv2.imwrite(str(paths[-1]), f)
    return paths


def test_biovid_reads_classes_from_clip_names(tmp_path, frames):
    for cls in ("BL1", "PA2", "PA4"):
        _video(tmp_path / "video" / "071309_w_21" / f"071309_w_21-{cls}-001.mp4", frames)
    clips = list(DS.biovid(tmp_path))
    assert [(c.subject, c.levels) for c in clips] == [("071309_w_21", 0), ("071309_w_21", 2), ("071309_w_21", 4)]
    assert [c.fps for c in clips] == [25.0] * 3  # from the files
    w = DS.clip_windows(clips, window=2)
    # 10 frames at 25 fps, resampled to the model's 0.1 s: frames 0, 2, 5, 8 -> 3 windows of 2 per clip
    assert len(w) == 3 * 3 and set(w.level) == {0, 2, 4}
    assert set(w.subject) == {"071309_w_21"}


def test_unbc_maps_per_frame_pspi_with_the_data_mapping(tmp_path, frames):
    seq = "ll042t1aaaff"
    paths = _images(tmp_path / "Images" / "042-ll042" / seq, frames, seq)
    pspi = [0, 0, 1, 2, 3, 4, 5, 8, 0, 0]
    for p, v in zip(paths, pspi):
        lab = tmp_path / "Frame_Labels" / "PSPI" / "042-ll042" / seq / f"{p.stem}_facs.txt"
        lab.parent.mkdir(parents=True, exist_ok=True)
        lab.write_text(f"   {v:.7e}\n")
    (clip,) = DS.unbc(tmp_path)
    assert clip.levels == (0, 0, 1, 1, 2, 2, 3, 3, 0, 0)  # PSPI 0 / 1-2 / 3-4 / >=5
    assert clip.fps is None  # images carry no frame rate
    with pytest.raises(DS.DatasetError, match="--dataset-fps"):
        DS.clip_windows([clip], window=3)
    w = DS.clip_windows([clip], window=3, fps=10)
    assert list(w.level) == list(clip.levels[2:])
    assert list(w.pspi) == [float(v) for v in pspi[2:]]


def test_mintpain_reads_trial_labels(tmp_path, frames):
    _images(tmp_path / "Sub01" / "Sub01_Trial1_Sweep1_Label3" / "RGB", frames, "f", ".jpg")
    _images(tmp_path / "Sub01" / "Sub01_Trial2_Sweep1_Label0" / "RGB", frames, "f", ".jpg")
    clips = list(DS.mintpain(tmp_path))
    assert [(c.subject, c.name, c.levels) for c in clips] == [
        ("Sub01", "Sub01_Trial1_Sweep1_Label3", 3), ("Sub01", "Sub01_Trial2_Sweep1_Label0", 0)]


@pytest.mark.parametrize(
    "n_frames, fps, expected",
    [
        (10, 10.0, list(range(10))),  # the model's own rate: every frame
        (10, 25.0, [0, 2, 5, 8]),  # BioVid: 0, 2.5, 5, 7.5 rounded half to even
        (10, 30.0, [0, 3, 6, 9]),
        (7, 15.0, [0, 2, 3, 4, 6]),  # 0, 1.5, 3, 4.5, 6 rounded half to even
        (0, 30.0, []),
        (5, 5.0, "needs at least 10 fps"),  # too slow for 0.1 s steps
    ],
)
def test_clips_are_resampled_to_the_models_window_period(n_frames, fps, expected):
    if isinstance(expected, str):
        with pytest.raises(DS.DatasetError, match=expected):
            DS.resample_index(n_frames, fps)
    else:
        assert DS.resample_index(n_frames, fps) == expected


@pytest.mark.slow
def test_train_runs_on_a_dataset_tree_and_holds_out_people(tmp_path, frames, capsys, monkeypatch):
    """`painedge train --dataset biovid PATH`, a few steps on a tiny tree in BioVid's layout (real TensorFlow, in
    the test's own process: the command trains and exits)."""
    import json

    from .eager import eager_training
    from .incli import run_cli

    for subject in ("s1", "s2", "s3"):
        for cls in ("BL1", "PA3"):
            _video(tmp_path / "bv" / "video" / subject / f"{subject}-{cls}-001.mp4", frames * 3)
    out = tmp_path / "run"
    with eager_training():
        r = run_cli(["train", "--dataset", "biovid", str(tmp_path / "bv"), "--test-subjects", "s3", "--window", "3",
                     "--epochs", "1", "--folds", "2", "--cv-epochs", "1", "--out", str(out)], capsys, monkeypatch)
    assert r.status == 0, r.err[-2000:]
    report = json.loads((out / "report.json").read_text())
    assert report["config"]["dataset"] == "biovid" and report["config"]["test_subjects"] == ["s3"]
    assert report["test_levels"][0] > 0 and report["test_levels"][3] > 0 and report["train_windows"] > 0
    assert (out / "model.keras").exists()
    # Cross-validated by person (s1 | s2), and calibrated on those out-of-fold windows, never on s3.
    assert [f["held_out"] for f in report["cross_validation"]["folds"]] in (
        [["s1"], ["s2"]], [["s2"], ["s1"]])
    cal = report["calibration"]
    assert 0.05 <= cal["temperature"] <= 20 and "out-of-fold" in cal["fitted_on"]
    assert all(0 <= cal[k] <= 1 for k in ("ece_oof_before", "ece_oof_after", "ece_test_before", "ece_test_after"))
    vector = cal["vector"]
    assert len(vector["scale"]) == len(vector["bias"]) == 5 and 0 <= vector["ece_test_after"] <= 1
    # The published level's temperature too (the fusion with the cue in the loop), after each model calibration,
    # from out-of-fold windows the run keeps (for benchmarks/calibration.py).
    fusion = cal["fusion"]
    assert fusion["cue_weight"] == 0.5 and set(fusion) == {"cue_weight", "none", "temperature", "vector"}
    assert all(0.05 <= fusion[k]["temperature"] <= 20 and 0 <= fusion[k]["ece_test_after"] <= 1
               for k in ("none", "temperature", "vector"))
    oof = np.load(out / "oof.npz")
    assert sorted(set(oof["subject"])) == ["s1", "s2"] and len(oof["probs"]) == report["train_windows"]
    # Exported with the vector calibration, the model's metadata carries it for the daemon to apply.
    with eager_training():
        r = run_cli(["export", str(out), "--out", str(tmp_path / "m" / "m-int8.tflite"), "--calibration", "vector"],
                    capsys, monkeypatch)
    assert r.status == 0, r.err[-2000:]
    meta = json.loads((tmp_path / "m" / "m-int8.json").read_text())
    assert meta["calibration_scale"] == vector["scale"] and meta["calibration_bias"] == vector["bias"]
    assert meta["quantization"] == "int8-dynamic" and meta["temperature"] == 1.0
    assert meta["name"] == "painedge-edge"  # export's --name (its default), not a file it checked for
    assert meta["fusion_temperature"] == fusion["vector"]["temperature"] and meta["fusion_cue_weight"] == 0.5


@pytest.mark.parametrize(
    "adapter, make, message",
    [
        ("biovid", lambda root: root.mkdir(exist_ok=True), "not a BioVid Part A folder: video/ is missing"),
        ("biovid", lambda root: (root / "video" / "s1").mkdir(parents=True), "no clips found"),
        ("biovid", lambda root: _touch(root / "video" / "s1" / "s1-XX9-001.mp4"), "not a BioVid clip name"),
        ("unbc", lambda root: (root / "Images").mkdir(parents=True), "Frame_Labels/PSPI/ is missing"),
        ("unbc", lambda root: (_touch(root / "Images" / "s" / "q" / "q001.png"),
                               (root / "Frame_Labels" / "PSPI").mkdir(parents=True)), "PSPI label missing"),
        ("mintpain", lambda root: root.mkdir(exist_ok=True), "no Sub<ss>/ folders"),
        ("mintpain", lambda root: (root / "Sub01" / "Sub01_Trial1_Sweep1_Label2").mkdir(parents=True), "no RGB frames"),
    ],
)
def test_wrong_layout_gives_one_clear_error_naming_the_path(tmp_path, adapter, make, message):
    root = tmp_path / "ds"
    make(root)
    with pytest.raises(DS.DatasetError, match=message.replace("(", r"\(").replace(")", r"\)")) as e:
        list(DS.ADAPTERS[adapter](root))
    assert str(tmp_path) in str(e.value)


def _touch(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"")
