"""`painedge train` (a run folder from synthetic expressions or a real dataset) and `painedge export` (that run
as a full-int8 TFLite model with its metadata, and how far int8 agrees with float). Both need TensorFlow."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..errors import UserError, need, writing

# painedge.train.data.DEFAULT_FACES and DEFAULT_TEST_SUBJECTS, repeated so the
# parser needs no OpenCV (tests/test_synth.py keeps them equal).
TRAIN_FACES = ("astronaut", "grace_hopper")
TRAIN_TEST_SUBJECTS = ("astronaut",)


def need_tensorflow(what: str) -> None:
    need("tensorflow", "train", what)


def train_run(out: str, *, faces: list[str], same_person: list[str], test_subjects: list[str] | None,
              dataset: tuple[str, str] | None, dataset_fps: float | None, variant: str, window: int, epochs: int,
              cv_epochs: int, folds: int, sequences: int, sequence_s: float, limit_train: int | None,
              limit_test: int | None, noise: float, seed: int, landmarks: str = "litert",
              boost_rounds: int = 1, episodes: str | None = None) -> int:
    """Train the fused model on synthetic expressions of ``faces`` (or a real ``dataset``: name, folder) and
    write the run to ``out``; ``test_subjects`` are held out (default: the shipped test face)."""
    need_tensorflow("painedge train")
    from ..train.data import parse_episode_mix
    from ..train.fit import TrainConfig, train

    if episodes is not None and dataset:
        raise UserError("--episodes mixes synthetic expressions; a --dataset brings its own recordings: give one")
    try:
        mix = parse_episode_mix(episodes) if episodes is not None else None
    except ValueError as e:
        raise UserError(f"--episodes: {e}") from None

    cfg = TrainConfig(variant=variant, epochs=epochs, cv_epochs=cv_epochs, folds=folds, seed=seed,
                      sequences_per_identity=sequences, sequence_s=sequence_s, faces=faces,
                      same_person=[g.split(",") for g in same_person],
                      test_subjects=test_subjects or ([] if dataset else list(TRAIN_TEST_SUBJECTS)),
                      limit_train=limit_train, limit_test=limit_test, dataset=dataset[0] if dataset else None,
                      dataset_path=dataset[1] if dataset else None, dataset_fps=dataset_fps, noise=noise,
                      window_frames=window, landmarks=landmarks, boost_rounds=boost_rounds, episodes=mix)
    with writing(out, "the run folder"):
        Path(out).mkdir(parents=True, exist_ok=True)  # before hours of work, not after
    train(cfg, Path(out), cv=cfg.folds > 1)
    print(f"run written to {out} (model.keras, report.json, confusion/roc/pr .png)")
    return 0


def export_run(run: str, out: str, name: str, version: str, activations: str = "dynamic",
               calibration: str = "temperature") -> int:
    """Convert a trained run to a TFLite model with int8 weights (activations quantised per call, full-integer
    int8, or 16-bit: ``train.export.QUANTIZATION``) and its metadata, and measure agreement with the float model."""
    need_tensorflow("painedge export")
    import json
    from dataclasses import replace

    import keras

    from ..model import ModelMeta, PainModel
    from ..train.data import Windows
    from ..train.export import QUANTIZATION, agreement, convert_int8, float_ops, write_model
    from ..train.fit import TrainConfig, model_inputs, split
    from ..train.net import VARIANTS

    run_dir = Path(run)
    for part in ("model.keras", "windows.npz", "report.json"):
        if not (run_dir / part).exists():
            raise UserError(f"{run_dir / part}: missing; point at a folder `painedge train` wrote")
    report = json.loads((run_dir / "report.json").read_text())
    cfg = TrainConfig(**report["config"])
    v = VARIANTS[cfg.variant]
    model = keras.models.load_model(run_dir / "model.keras")
    tr, te = split(Windows.load(run_dir / "windows.npz"), cfg.test_subjects)
    shipped, applied = _calibration(report.get("calibration", {}), calibration)
    quantization = QUANTIZATION[activations]
    calibrated = "" if activations == "dynamic" else f" with {min(300, len(tr))} calibration windows"
    print(f"converting to {quantization}{calibrated} ...", flush=True)
    tfl = convert_int8(model, model_inputs(tr, v.crop_px, v.crop_channels), activations=activations)
    out_path = Path(out)
    meta = ModelMeta.for_features(
        name=name, version=version, variant=cfg.variant, window_frames=cfg.window_frames,
        crop_px=v.crop_px, crop_channels=v.crop_channels, quantization=quantization, window_period_s=1.0 / cfg.fps,
        training={k: report["config"][k] for k in ("epochs", "batch_size", "learning_rate", "folds", "seed",
                                                   "sequences_per_identity", "sequence_s", "fps", "test_subjects", "mapping")}
        | {"landmarks": report["config"].get("landmarks", "mediapipe"), "episodes": report["config"].get("episodes")}
        | {"train_windows": report["train_windows"], "test_windows": report["test_windows"]},
        metrics={"test": {k: report["test"][k] for k in ("accuracy", "macro_f1", "within_one_level", "severe_or_worse_recall")},
                 "cross_validation": {k: report.get("cross_validation", {}).get(k) for k in ("accuracy_mean", "accuracy_sd", "macro_f1_mean")},
                 "calibration": report.get("calibration", {}) | {"applied": applied}},
        **shipped,
    )
    with writing(out_path, "the model"):
        write_model(tfl, out_path, meta)
    agree = agreement(PainModel(out_path), model, te, v.crop_px, v.crop_channels)
    meta = ModelMeta.read(out_path.with_suffix(".json"))
    meta = replace(meta, metrics=meta.metrics | {"int8_vs_float": agree, "float_ops": float_ops(out_path)})
    with writing(out_path, "the model"):
        out_path.with_suffix(".json").write_text(meta.to_json())
        copy_float_model(run_dir / "model.keras", out_path.with_name(out_path.stem.replace("-int8", "") + ".keras"))
    print(f"wrote {out_path} ({out_path.stat().st_size / 1024:.0f} KiB) and its metadata; {quantization} vs float on "
          f"{agree['n']} held-out windows: top-1 agreement {agree['top1_agreement']:.4f} "
          f"(smoothed level {agree['smoothed_top1_agreement']:.4f}), "
          f"accuracy {quantization} {agree['int8_accuracy']:.4f} / float {agree['float_accuracy']:.4f}")
    return 0


def copy_float_model(src: Path, dest: Path) -> None:
    """The float model beside the exported one (for `model verify` and `explain`); nothing to do when ``src`` is
    that very file (a run re-exported in place, its model.keras a link to the shipped one)."""
    import shutil

    if not (dest.exists() and dest.samefile(src)):
        shutil.copy(src, dest)


def _calibration(fitted: dict, kind: str) -> tuple[dict, str]:
    """The metadata's calibration from a run's report (fitted on out-of-fold windows by `painedge train`), and
    which one that is: its temperature (the default), its vector scaling (a run of this painedge has one), or
    none (asked for, or a run without cross-validation, which fitted nothing); with the published level's
    temperature fitted after that one, when the run has it (``fusion``)."""
    if kind == "vector":
        vector = fitted.get("vector")
        if not vector:
            raise UserError("this run has no vector calibration (its report predates it, or it was trained without "
                            "cross-validation); retrain it, or export with --calibration temperature")
        shipped: dict[str, Any] = {"calibration_scale": tuple(vector["scale"]), "calibration_bias": tuple(vector["bias"])}
        applied = "vector"
    elif kind == "temperature" and "temperature" in fitted:
        shipped, applied = {"temperature": fitted["temperature"]}, "temperature"
    else:
        shipped, applied = {"temperature": 1.0}, "none"
    fusion = fitted.get("fusion", {})
    if applied in fusion:
        shipped |= {"fusion_temperature": fusion[applied]["temperature"], "fusion_cue_weight": fusion["cue_weight"]}
    return shipped, applied
