"""The fused model: a few training steps, int8 export round-trip, metadata checks, bad model files."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from painedge import face as F
from painedge.model import FRAME_DIM, ModelError, ModelMeta, PainModel, model_input

from .incli import run_cli

pytestmark = pytest.mark.slow  # TensorFlow: training and conversion take a few seconds


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """A real (tiny) training run and its int8 export: one identity, two short sequences, two epochs."""
    pytest.importorskip("tensorflow")
    from painedge.train import data as D
    from painedge.train.export import agreement, convert_int8, write_model
    from painedge.train.fit import TrainConfig, fit, model_inputs
    from painedge.train.net import VARIANTS

    from .eager import eager_training

    out = tmp_path_factory.mktemp("run")
    ident = D.load_identities(["astronaut"])
    parts = [w for _, w in D.synthesize(ident, sequences_per_identity=2, duration_s=8.0, fps=5.0, window=8, seed=1)]
    w = D.Windows.concat(parts)
    cfg = TrainConfig(epochs=2)
    with eager_training():
        model = fit(w, cfg, epochs=2, verbose=0)
    v = VARIANTS["edge"]
    path = write_model(convert_int8(model, model_inputs(w, v.crop_px, v.crop_channels)), out / "tiny-int8.tflite",
                       ModelMeta.for_features("tiny", "0", "edge", 8, v.crop_px, v.crop_channels, "int8"))
    dynamic = write_model(convert_int8(model, {}, activations="dynamic"), out / "tiny-dynamic.tflite",
                          ModelMeta.for_features("tiny", "0", "edge", 8, v.crop_px, v.crop_channels, "int8-dynamic"))
    return {"windows": w, "model": model, "path": path, "dynamic": dynamic,
            "agreement": agreement(PainModel(path), model, w, v.crop_px, v.crop_channels),
            "dynamic_agreement": agreement(PainModel(dynamic), model, w, v.crop_px, v.crop_channels)}


def test_a_few_training_steps_give_a_model_with_five_probabilities(tiny_run):
    w = tiny_run["windows"]
    assert len(w) > 40 and w.seq.shape[1:] == (8, FRAME_DIM)
    probs = tiny_run["model"].predict(model_input(w.seq[:4], w.crop[:4], 64, 1), verbose=0)
    assert probs.shape == (4, 5)
    np.testing.assert_allclose(probs.sum(1), 1.0, atol=1e-5)


def test_int8_export_round_trips_and_agrees_with_the_float_model(tiny_run):
    a = tiny_run["agreement"]
    assert a["n"] == len(tiny_run["windows"])
    assert a["top1_agreement"] >= 0.9
    assert a["mean_abs_prob_diff"] < 0.05


def test_exported_model_is_int8_inside(tiny_run):
    from painedge.train.export import float_ops

    from .tflite_ops import tensors

    m = PainModel(tiny_run["path"])
    assert m.meta.quantization == "int8"
    weights = [(kind, shape) for name, kind, shape in tensors(tiny_run["path"])
               if name.endswith("kernel") or "MatMul" in name or "Conv2D" in name]
    assert weights and all(kind in ("INT8", "INT32") for kind, shape in weights if len(shape) >= 2)
    assert float_ops(tiny_run["path"]) == []


def test_the_dynamic_export_has_int8_weights_float_activations_and_follows_the_float_model(tiny_run):
    """What ships (`painedge export`'s default): int8 weight matrices with one scale each, no calibration, the
    activations float between the matrix ops; closer to the float model than the full-integer file."""
    from painedge.train.export import float_ops

    from .tflite_ops import LOADED_BY_TFLITE_RUNTIME_2_13, op_versions, weights_of

    m = PainModel(tiny_run["dynamic"])
    assert m.meta.quantization == "int8-dynamic"
    # Every weight matrix or kernel of 1,024 elements or more is int8; smaller ones (the first convolution's
    # 144, the output layer's 320) the converter leaves in float.
    weights = weights_of(tiny_run["dynamic"], ("FULLY_CONNECTED", "CONV_2D"))
    assert weights and all((kind == "INT8") == (np.prod(shape) >= 1024) for _name, kind, shape in weights)
    assert {"FULLY_CONNECTED", "LOGISTIC", "TANH"} <= set(float_ops(tiny_run["dynamic"]))
    # One scale per weight matrix (FULLY_CONNECTED 9), not per row (12, which the Nano's 2.13 cannot load).
    ops = op_versions(tiny_run["dynamic"])
    assert ("FULLY_CONNECTED", 9) in ops and ops <= LOADED_BY_TFLITE_RUNTIME_2_13
    a, full = tiny_run["dynamic_agreement"], tiny_run["agreement"]
    assert a["top1_agreement"] >= 0.95 and a["mean_abs_prob_diff"] < 0.02
    assert a["mean_abs_prob_diff"] < full["mean_abs_prob_diff"]


def test_predict_checks_its_window(tiny_run):
    m = PainModel(tiny_run["path"])
    with pytest.raises(ValueError, match=r"landmark window has shape \(3, 150\)"):
        m.predict(np.zeros((3, FRAME_DIM)), np.zeros((64, 64), np.uint8))
    p = m.predict(tiny_run["windows"].seq[0], tiny_run["windows"].crop[0])
    assert p.shape == (5,) and abs(float(p.sum()) - 1) < 0.02


def _copy(run: dict, tmp_path: Path) -> Path:
    dst = tmp_path / run["path"].name
    shutil.copy(run["path"], dst)
    shutil.copy(run["path"].with_suffix(".json"), dst.with_suffix(".json"))
    return dst


def _edit_meta(path: Path, **changes) -> None:
    meta = ModelMeta.read(path.with_suffix(".json"))
    path.with_suffix(".json").write_text(replace(meta, **changes).to_json())


@pytest.mark.parametrize(
    "spoil, message",
    [
        (lambda p: p.unlink(), "no such model file"),
        (lambda p: p.with_suffix(".json").unlink(), "model metadata missing"),
        (lambda p: p.with_suffix(".json").write_text("{not json"), "not valid JSON (line 1"),
        (lambda p: p.write_bytes(p.read_bytes()[:1000]), "does not match the checksum"),
        (lambda p: (p.write_bytes(b"\0" * 4096), _edit_meta(p, sha256="")), "not a TFLite model"),
        (lambda p: _edit_meta(p, feature_version="pe-face-0"), "feature version 'pe-face-0'"),
        (lambda p: _edit_meta(p, window_frames=16), "do not match its metadata"),
        # a temperature of 0 or NaN made every probability NaN, and the published level 0 (No pain) for ever
        (lambda p: _edit_meta(p, temperature=0.0), "temperature 0.0 is not a calibration temperature"),
        (lambda p: _edit_meta(p, temperature=float("nan")), "temperature nan is not a calibration temperature"),
        (lambda p: _edit_meta(p, temperature=-1.0), "temperature -1.0 is not"),
        (lambda p: _edit_meta(p, calibration_scale=(1.0,) * 4, calibration_bias=(0.0,) * 4),
         "calibration_scale and calibration_bias must be 5 numbers each"),
        (lambda p: _edit_meta(p, calibration_scale=(1.0,) * 5, calibration_bias=(0.0,) * 4 + (float("nan"),)),
         "calibration_scale and calibration_bias must be 5 numbers each"),
        (lambda p: _edit_meta(p, calibration_scale=(0.0,) * 5, calibration_bias=(0.0,) * 5), "scales 0.05-20"),
        (lambda p: _edit_meta(p, temperature=1.3, calibration_scale=(1.0,) * 5, calibration_bias=(0.0,) * 5),
         "both a temperature"),
        (lambda p: _edit_meta(p, fusion_temperature=0.0), "fusion_temperature 0.0 .0.05-20; 1 = none. at"),
        (lambda p: _edit_meta(p, fusion_temperature="1"), "is not a calibration of the published level"),
        (lambda p: _edit_meta(p, fusion_temperature=0.8, fusion_cue_weight=1.5), "at fusion_cue_weight 1.5 (0-1"),
        (lambda p: _edit_meta(p, fusion_cue_weight=float("nan")), "at fusion_cue_weight nan"),
        (lambda p: _edit_meta(p, fusion_temperature=0.8, fusion_cue_weight=None), "at fusion_cue_weight None"),
    ],
)
def test_bad_model_files_are_refused_with_one_message_naming_the_file(tiny_run, tmp_path, spoil, message):
    path = _copy(tiny_run, tmp_path)
    spoil(path)
    with pytest.raises(ModelError, match=message.replace("(", r"\(")) as e:
        PainModel(path)
    assert str(tmp_path) in str(e.value)


def test_model_info_command(tiny_run, capsys, monkeypatch):
    r = run_cli(["model", "info", str(tiny_run["path"]), "--json"], capsys, monkeypatch)
    assert r.status == 0, r.err
    info = json.loads(r.out)
    assert info["feature_version"] == F.FEATURE_VERSION and info["window_frames"] == 8
    assert info["labels"] == ["No pain", "Mild", "Moderate", "Severe", "Extreme"]


def test_model_info_on_a_missing_file_is_one_line(tmp_path, capsys, monkeypatch):
    r = run_cli(["model", "info", str(tmp_path / "nope.tflite")], capsys, monkeypatch)
    assert r.status == 2 and "nope.tflite: no such model file" in r.err and "Traceback" not in r.err


# ---------------------------------------------------------------- the shipped model, through the CLI

# In the test's own process (TensorFlow is loaded once for the module): the commands print and exit, and a
# child process would prove nothing more than the daemon's own tests do.

@pytest.mark.parametrize("bar, frames, code, verdict", [("0.0", 36, 0, "OK"),
                                                          ("1.01", 12, 1, "FAILED: agreement below 1.01")])
def test_model_verify_compares_the_shipped_file_with_float_on_a_real_clip_and_fails_below_the_bar(
        bar, frames, code, verdict, capsys, monkeypatch):
    from .conftest import data

    r = run_cli(["model", "verify", "--clip", data("single_face.mp4"), "--min-agreement", bar,
                 "--max-frames", str(frames)], capsys, monkeypatch)
    assert r.status == code, r.out + r.err
    assert f"{frames} windows; int8-dynamic vs float top-1 agreement" in r.out  # the shipped file's quantisation
    assert r.out.strip().endswith(verdict)


def test_explain_writes_a_grad_cam_heat_map(tmp_path, capsys, monkeypatch):
    import cv2

    from .conftest import data

    out = tmp_path / "cam.png"
    r = run_cli(["explain", data("single_face.jpg"), "--image", "--out", str(out)], capsys, monkeypatch)
    assert r.status == 0, r.err
    assert "Grad-CAM for level" in r.out
    img = cv2.imread(str(out))
    top, gap, side = 44, 10, 256  # the 64x64 crop enlarged 4x, twice, then the colour bar (train/explain.py)
    assert img.shape[0] > top + side and img.shape[1] > 2 * side + 3 * gap
    plain = img[top:top + side, gap:gap + side].astype(int)
    assert (plain.max(axis=2) - plain.min(axis=2)).max() <= 1 and plain.std() > 10  # the grey crop itself
    heat = img[top:top + side, 2 * gap + side:2 * gap + 2 * side]
    assert heat.std() > 10 and not np.array_equal(heat, plain)  # the heat map over it
    # The legend: a colour bar from red (strong, top) to dark blue (none, bottom), and its words.
    bar = img[top + 2:top + side - 2, 3 * gap + 2 * side + 9]
    assert bar[0][2] > 100 > bar[0][0] and bar[-1][0] > 100 > bar[-1][2]
    assert (img[top:top + side, 3 * gap + 2 * side + 24:] < 128).any()  # its labels


def test_model_card_and_readme_quote_the_shipped_models_measured_figures():
    from painedge.model import DEFAULT_MODEL

    root = Path(__file__).resolve().parents[1]
    meta = json.loads(DEFAULT_MODEL.with_suffix(".json").read_text())["metrics"]
    card = (DEFAULT_MODEL.parent / "README.md").read_text()
    readme = (root / "README.md").read_text()
    test, agree, cv = meta["test"], meta["int8_vs_float"], meta["cross_validation"]
    for text in (card, readme):
        assert f"{test['accuracy']:.3f}" in text and f"{agree['int8_accuracy']:.3f}" in text
        assert f"{cv['accuracy_mean']:.3f}" in text
    assert f"{agree['top1_agreement']:.3f}" in card and f"{100 * agree['top1_agreement']:.1f} %" in readme
    assert f"{test['macro_f1']:.3f}" in card and f"{test['severe_or_worse_recall']:.3f}" in card
    fusion = meta["calibration"]["fusion"][meta["calibration"]["applied"]]  # the published level's, shipped
    assert f"T = {fusion['temperature']:.3f}" in card and f"{fusion['ece_test_after']:.3f}" in card


def _windows(seqs: list[np.ndarray], subjects: list[str], levels: list[int] | None = None):
    from painedge.train.data import Windows

    n = len(seqs)
    return Windows(np.stack(seqs).astype(np.float32), np.zeros((n, 4, 4), np.uint8), np.zeros(n, np.float32),
                   np.asarray(levels if levels is not None else [0] * n, np.int64), np.asarray(subjects))


def _slide(frames: np.ndarray, window: int = 3) -> list[np.ndarray]:
    return [frames[i: i + window] for i in range(len(frames) - window + 1)]


def test_consecutive_windows_are_found_by_their_overlap():
    from painedge.train.export import runs_of_consecutive_windows

    a = np.arange(6, dtype=np.float32)[:, None]  # one sequence: 4 sliding windows
    b = 100 + np.arange(5, dtype=np.float32)[:, None]  # another: 3 windows
    seqs = _slide(a) + _slide(b) + _slide(b)  # b played twice: the repeat starts a new run
    w = _windows(seqs, ["p"] * 4 + ["p"] * 3 + ["q"] * 3)
    assert [r.tolist() for r in runs_of_consecutive_windows(w)] == [[0, 1, 2, 3], [4, 5, 6], [7, 8, 9]]


def test_smoothed_levels_follow_the_daemons_smoother_and_restart_each_run():
    from painedge.train.export import smoothed_levels

    # One window of level 3 among level-0 windows: smoothing (1.5 s at 0.1 s) keeps it at 0,
    # while a new run starts from its own first window.
    probs = np.array([[0.9, 0, 0, 0.1, 0], [0.1, 0, 0, 0.9, 0], [0.9, 0, 0, 0.1, 0], [0.1, 0, 0, 0.9, 0]])
    runs = [np.array([0, 1, 2]), np.array([3])]
    assert smoothed_levels(probs, runs, tau_s=1.5, period_s=0.1).tolist() == [0, 0, 0, 3]
    assert smoothed_levels(probs, runs, tau_s=0.0, period_s=0.1).tolist() == [0, 3, 0, 3]


@pytest.mark.parametrize("n, stratify, expect_levels", [
    (None, False, [0] * 80 + [1] * 20),
    (500, True, [0] * 80 + [1] * 20),
    (10, True, [0] * 8 + [1] * 2),
])
def test_subsample_keeps_order_and_level_shares(n, stratify, expect_levels):
    from painedge.train.fit import subsample

    levels = [0] * 80 + [1] * 20
    w = _windows([np.full((2, 1), i) for i in range(100)], ["p"] * 100, levels)
    got = subsample(w, n, seed=0, stratify=stratify)
    assert sorted(got.level.tolist()) == expect_levels
    order = got.seq[:, 0, 0]
    assert np.all(np.diff(order) > 0)


def test_training_noise_is_training_only_and_sized_per_stage():
    pytest.importorskip("tensorflow")
    from painedge.train.net import build

    noisy, clean = build("edge", 8, noise=0.05), build("edge", 8)
    sd = {layer.name: layer.stddev for layer in noisy.layers if "noise" in layer.name}
    assert sd == pytest.approx({"landmark_noise": 0.05, "bilstm_noise": 0.05, "cnn_noise": 0.1, "lstm_noise": 0.1})
    assert not any("noise" in layer.name for layer in clean.layers)
    clean.set_weights(noisy.get_weights())  # noise layers hold no weights: the same network
    rng = np.random.default_rng(0)
    x = {"landmarks": rng.normal(0, 0.5, (4, 8, FRAME_DIM)).astype(np.float32),
         "crop": rng.random((4, 64, 64, 1)).astype(np.float32)}
    np.testing.assert_allclose(np.asarray(noisy(x, training=False)), np.asarray(clean(x, training=False)), atol=1e-6)


def test_the_models_calibration_temperature_is_applied_at_run_time(tmp_path):
    """The metadata's temperature (fitted by `painedge train` on out-of-fold windows) softens or sharpens the
    probabilities the daemon sees, and never changes the level."""
    from painedge.model import DEFAULT_MODEL, FRAME_DIM, PainModel

    rng = np.random.default_rng(0)
    shutil.copy(DEFAULT_MODEL, tmp_path / "m.tflite")
    meta = json.loads(DEFAULT_MODEL.with_suffix(".json").read_text())
    models = {}
    for t in (1.0, 3.0):
        (tmp_path / "m.json").write_text(json.dumps({**meta, "temperature": t}))
        models[t] = PainModel(tmp_path / "m.tflite")  # reads its metadata now
    window = rng.normal(0, 0.3, (models[1.0].window_frames, FRAME_DIM)).astype(np.float32)
    crop = rng.integers(0, 255, (64, 64), dtype=np.uint8)
    p1, p3 = models[1.0].predict(window, crop), models[3.0].predict(window, crop)
    assert p1.argmax() == p3.argmax() and p3.max() < p1.max() and p3.sum() == pytest.approx(1.0)


def test_the_models_vector_calibration_is_applied_at_run_time_and_can_be_left_off(tmp_path):
    """The metadata's vector scaling (fitted by `painedge train` on out-of-fold windows) is what the daemon sees;
    ``calibrated=False`` gives the network's own output, which is what the float model is compared with."""
    from painedge.model import DEFAULT_MODEL, FRAME_DIM, PainModel

    rng = np.random.default_rng(0)
    shutil.copy(DEFAULT_MODEL, tmp_path / "m.tflite")
    meta = json.loads(DEFAULT_MODEL.with_suffix(".json").read_text())
    window = rng.normal(0, 0.3, (8, FRAME_DIM)).astype(np.float32)
    crop = rng.integers(0, 255, (64, 64), dtype=np.uint8)
    target = (int(PainModel(DEFAULT_MODEL).predict(window, crop, calibrated=False).argmax()) + 2) % 5
    bias = [15.0 if level == target else 0.0 for level in range(5)]  # a level the network does not give
    (tmp_path / "m.json").write_text(json.dumps({**meta, "temperature": 1.0, "calibration_scale": [1.0] * 5,
                                                 "calibration_bias": bias}))
    m = PainModel(tmp_path / "m.tflite")
    raw, calibrated = m.predict(window, crop, calibrated=False), m.predict(window, crop)
    assert raw.argmax() != target and calibrated.argmax() == target and calibrated.sum() == pytest.approx(1.0)
    expected = np.exp(np.log(np.clip(raw, 1e-6, 1)) + bias)
    np.testing.assert_allclose(calibrated, expected / expected.sum(), rtol=1e-5)


@pytest.mark.parametrize(
    "quantization, backend, refused",
    [
        ("int8", "tflite_runtime", None),
        ("int8", "ai_edge_litert", None),
        ("int16x8", "ai_edge_litert", None),
        ("int16x8", "tensorflow.lite", None),
        # The Jetson Nano's interpreter loads a 16-bit file and computes it wrong (the model card's measurement):
        # this pair is the only one refused. tflite-runtime 2.13 has no wheel for this machine's Python, so the
        # interpreter's name is given here rather than installed.
        ("int16x8", "tflite_runtime", "m.tflite: this interpreter (tflite_runtime) computes 16-bit activations "
                                      "wrong (measured with 2.13.0), and this model is int16x8; use an int8 export"),
    ],
)
def test_a_quantisation_an_interpreter_computes_wrong_is_refused(quantization, backend, refused):
    from painedge.model import check_runtime

    if refused is None:
        check_runtime(quantization, backend, Path("m.tflite"))
    else:
        with pytest.raises(ModelError, match=refused.replace("(", r"\(").replace(")", r"\)")):
            check_runtime(quantization, backend, Path("m.tflite"))


def test_export_copies_the_float_model_beside_the_file_unless_it_is_that_file(tmp_path):
    """A run re-exported in place (its model.keras a link to the copy beside the shipped model) failed after
    writing the model: copying a file onto itself is an error."""
    from painedge.commands.training import copy_float_model

    run, out = tmp_path / "run", tmp_path / "out"
    run.mkdir()
    out.mkdir()
    (run / "model.keras").write_bytes(b"float model")
    copy_float_model(run / "model.keras", out / "m.keras")
    assert (out / "m.keras").read_bytes() == b"float model"
    (run / "model.keras").unlink()
    (run / "model.keras").symlink_to(out / "m.keras")
    copy_float_model(run / "model.keras", out / "m.keras")  # the same file: nothing to copy, no error
    assert (out / "m.keras").read_bytes() == b"float model"


@pytest.mark.parametrize("fitted, kind, shipped, applied", [
    ({"temperature": 1.3, "vector": {"scale": [1.0] * 5, "bias": [0.0] * 5}}, "temperature", {"temperature": 1.3},
     "temperature"),
    ({"temperature": 1.3, "vector": {"scale": [0.5] * 5, "bias": [0.1] * 5}}, "vector",
     {"calibration_scale": (0.5,) * 5, "calibration_bias": (0.1,) * 5}, "vector"),
    ({"temperature": 1.3}, "none", {"temperature": 1.0}, "none"),
    ({}, "temperature", {"temperature": 1.0}, "none"),  # no cross-validation, nothing fitted: say so
    # the published level's temperature, fitted after the model's calibration that ships
    ({"temperature": 1.3, "fusion": {"cue_weight": 0.5, "temperature": {"temperature": 0.8},
                                     "none": {"temperature": 0.9}}}, "temperature",
     {"temperature": 1.3, "fusion_temperature": 0.8, "fusion_cue_weight": 0.5}, "temperature"),
    ({"temperature": 1.3, "fusion": {"cue_weight": 0.5, "temperature": {"temperature": 0.8},
                                     "none": {"temperature": 0.9}}}, "none",
     {"temperature": 1.0, "fusion_temperature": 0.9, "fusion_cue_weight": 0.5}, "none"),
    ({"temperature": 1.3, "vector": {"scale": [0.5] * 5, "bias": [0.1] * 5}, "fusion": {"cue_weight": 0.5}}, "vector",
     {"calibration_scale": (0.5,) * 5, "calibration_bias": (0.1,) * 5}, "vector"),  # none fitted after vector
])
def test_export_ships_the_calibration_asked_for_and_says_which(fitted, kind, shipped, applied):
    from painedge.commands.training import _calibration

    assert _calibration(fitted, kind) == (shipped, applied)


def test_export_refuses_a_vector_calibration_the_run_does_not_have():
    from painedge.commands.training import _calibration
    from painedge.errors import UserError

    with pytest.raises(UserError, match="this run has no vector calibration"):
        _calibration({"temperature": 1.3}, "vector")


def test_agreement_compares_the_networks_output_whatever_calibration_the_metadata_adds(tiny_run, tmp_path):
    """The float model is not calibrated, so the int8 file is compared uncalibrated: a bias that moves every
    level leaves the agreement as it was."""
    from painedge.train.export import agreement

    path = _copy({"path": tiny_run["dynamic"]}, tmp_path)
    _edit_meta(path, calibration_scale=(1.0,) * 5, calibration_bias=(0.0, 0.0, 0.0, 0.0, 15.0))
    w = tiny_run["windows"]
    m = PainModel(path)
    assert m.predict(w.seq[0], w.crop[0]).argmax() == 4  # calibrated: the bias wins
    assert agreement(m, tiny_run["model"], w, 64, 1) == tiny_run["dynamic_agreement"]
