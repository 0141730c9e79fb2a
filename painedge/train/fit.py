"""Training as in the paper: AdamW, lr 1e-4 with cosine decay, batch 32, class weights,
its augmentations, stratified k-fold cross-validation split by subject, then a
final model on all training subjects, measured on held-out subjects."""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np

from ..errors import UserError
from ..landmarks import DEFAULT_BACKEND, using_backend
from ..levels import N_LEVELS
from ..model import WINDOW_PERIOD_S, model_input, window_pspi
from . import data as D
from .metrics import (apply_temperature, apply_vector_scaling, ece, fit_temperature, fit_temperature_ece,
                      fit_vector_scaling, summarise, write_figures)

log = logging.getLogger(__name__)


@dataclass
class TrainConfig:
    variant: str = "edge"  # edge or paper (net.VARIANTS)
    window_frames: int = 8  # landmark frames per window
    epochs: int = 30  # the final model's
    batch_size: int = 32  # paper, Table 3
    learning_rate: float = 1e-4  # paper: AdamW 1e-4, cosine decay
    weight_decay: float = 1e-4  # AdamW's
    folds: int = 5  # paper: stratified 5-fold, here split by subject
    cv_epochs: int = 10  # each cross-validation fold model's
    seed: int = 0  # every random choice: synthesis, folds, shuffling, augmentation, initial weights
    sequences_per_identity: int = 8  # synthetic sequences per face
    sequence_s: float = 40.0  # each synthetic sequence's length
    fps: float = 1.0 / WINDOW_PERIOD_S  # windows are consecutive frames: the model's window period
    faces: list[str] = field(default_factory=lambda: ["astronaut"])  # synthetic: shipped faces by name, photos, videos
    same_person: list[list[str]] = field(default_factory=list)  # faces of one person: kept on one side of every split
    test_subjects: list[str] = field(default_factory=lambda: ["astronaut"])  # held out for the test ([]: default_test_subjects)
    mapping: str = "synthetic"  # the PSPI-to-level mapping of synthetic labels (levels.mapping)
    limit_train: int | None = None  # cap on training windows (quick runs, the paper variant)
    noise: float = 0.0  # training-only Gaussian noise for int8 robustness (net.build)
    limit_test: int | None = None  # stratified cap on held-out windows (the paper variant: 0.3 s a window)
    dataset: str | None = None  # biovid | unbc | mintpain: real recordings instead of synthetic expressions
    dataset_path: str | None = None  # its folder
    dataset_fps: float | None = None  # the frame rate of a dataset's image sequences (videos say their own)
    # the landmark backend the windows are made with; the daemon must run the same (face.backend)
    landmarks: str = DEFAULT_BACKEND
    boost_rounds: int = 1  # the paper's adaptive boosting (SAMME) on the fusion head: rounds, 1 = off (boost.py)
    episodes: dict[str, float] | None = None  # synthetic: the episode mix (None: data.EPISODE_MIX, with every confounder)

    def __post_init__(self) -> None:
        if self.boost_rounds < 1:
            raise ValueError(f"boost_rounds {self.boost_rounds}: give 1 (no boosting) or more rounds")


def model_inputs(w: D.Windows, crop_px: int, crop_channels: int) -> dict[str, np.ndarray]:
    """Windows as the model's float inputs: the daemon's own preprocessing (``model.model_input``)."""
    return model_input(w.seq, w.crop, crop_px, crop_channels)


# What the windows depend on: a cached dataset is reused only for the same values (the rest of a run's
# settings, the epochs or the held-out people, can change between runs on one folder).
DATA_FIELDS = ("faces", "same_person", "sequences_per_identity", "sequence_s", "fps", "window_frames", "seed",
               "mapping", "landmarks", "episodes", "dataset", "dataset_path", "dataset_fps")


def build_dataset(cfg: TrainConfig, cache: Path, progress: bool = True) -> D.Windows:
    """All windows for cfg's identities (or cfg's dataset), cached in ``cache`` (an .npz, with what made it
    beside it as .json), with cfg's landmark backend. A cache made with other data settings is refused."""
    made_with = {k: getattr(cfg, k) for k in DATA_FIELDS}
    record = cache.with_suffix(".json")
    if cache.exists():
        if record.exists():
            before = json.loads(record.read_text())
            changed = sorted(k for k in DATA_FIELDS if k in before and before[k] != json.loads(json.dumps(made_with[k])))
            if changed:
                raise UserError(f"{cache} was made with other {', '.join(changed)} than asked now; give a new --out "
                                f"(or delete {cache.name} to make the windows again)")
        log.info("dataset: reusing %s", cache)
        return D.Windows.load(cache)
    with using_backend(cfg.landmarks):
        out = _build_dataset(cfg, cache, progress)
    record.write_text(json.dumps(made_with, indent=1) + "\n")
    return out


def _build_dataset(cfg: TrainConfig, cache: Path, progress: bool) -> D.Windows:
    if cfg.dataset is not None:
        out = dataset_windows(cfg, progress)
        cache.parent.mkdir(parents=True, exist_ok=True)
        out.save(cache)
        return out
    idents = D.load_identities(cfg.faces, [tuple(g) for g in cfg.same_person])
    missing = set(cfg.test_subjects) - {i.subject for i in idents}
    if missing:
        raise UserError(f"test subjects {sorted(missing)} are not among the faces "
                         f"({', '.join(sorted({i.subject for i in idents}))})")
    total = len(idents) * cfg.sequences_per_identity
    parts, t0 = [], time.monotonic()
    for n, (name, w) in enumerate(D.synthesize(idents, cfg.sequences_per_identity, cfg.sequence_s, cfg.fps,
                                               cfg.window_frames, cfg.seed, cfg.mapping, cfg.episodes), 1):
        parts.append(w)
        if progress:
            eta = (time.monotonic() - t0) / n * (total - n)
            print(f"\rdataset: sequence {n}/{total} ({name}), {sum(len(p) for p in parts)} windows, "
                  f"~{eta:.0f} s left   ", end="", flush=True)
    if progress:
        print()
    out = D.Windows.concat(parts)
    cache.parent.mkdir(parents=True, exist_ok=True)
    out.save(cache)
    return out


def dataset_windows(cfg: TrainConfig, progress: bool = True) -> D.Windows:
    """Windows of a real dataset (BioVid, UNBC-McMaster, MIntPAIN) through its adapter."""
    from . import datasets as DS

    if cfg.dataset not in DS.ADAPTERS or not cfg.dataset_path:
        raise DS.DatasetError(f"dataset must be one of {', '.join(DS.ADAPTERS)} with its folder, got {cfg.dataset!r}")
    clips = list(DS.ADAPTERS[cfg.dataset](cfg.dataset_path))
    done = [0]

    def tell(clip: DS.Clip, n: int) -> None:
        done[0] += 1
        if progress:
            print(f"\rdataset: clip {done[0]}/{len(clips)} ({clip.subject}/{clip.name}), {n} windows   ",
                  end="", flush=True)

    out = DS.clip_windows(clips, cfg.window_frames, cfg.dataset_fps, tell)
    if progress:
        print()
    subjects = sorted(set(out.subject))
    if len(subjects) < 2:
        raise DS.DatasetError(f"{cfg.dataset_path}: windows of {len(subjects)} subject(s); training and test need "
                              f"different people")
    missing = set(cfg.test_subjects) - set(subjects)
    if missing:
        raise DS.DatasetError(f"test subjects {sorted(missing)[:5]} are not in {cfg.dataset_path} "
                              f"(its subjects: {', '.join(subjects[:20])}{' ...' if len(subjects) > 20 else ''})")
    return out


def default_test_subjects(subjects: list[str]) -> list[str]:
    """Every fifth subject (at least one), when a dataset run names none: people kept apart, as always."""
    ordered = sorted(subjects)
    return ordered[4::5] or ordered[-1:]


def _compile(model: Any, steps: int, cfg: TrainConfig) -> None:
    import keras

    schedule = keras.optimizers.schedules.CosineDecay(cfg.learning_rate, decay_steps=max(steps, 1))
    model.compile(optimizer=keras.optimizers.AdamW(schedule, weight_decay=cfg.weight_decay),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])


def fit(train: D.Windows, cfg: TrainConfig, epochs: int, verbose: int = 2) -> Any:
    """Train one model on ``train``; returns the Keras model."""
    import keras
    import tensorflow as tf

    from .net import VARIANTS, augmenter, build

    keras.utils.set_random_seed(cfg.seed)
    v = VARIANTS[cfg.variant]
    model = build(cfg.variant, cfg.window_frames, cfg.noise)
    x = model_inputs(train, v.crop_px, v.crop_channels)
    weights = D.class_weights(train.level, N_LEVELS)
    sw = np.array([weights[int(k)] for k in train.level], np.float32)
    aug = augmenter(cfg.seed)

    def augment(inputs: dict, y: Any, w: Any) -> tuple:
        return {"landmarks": inputs["landmarks"], "crop": aug(inputs["crop"], training=True)}, y, w

    ds = (tf.data.Dataset.from_tensor_slices((x, train.level, sw)).shuffle(len(train), seed=cfg.seed)
          .batch(cfg.batch_size).map(augment, num_parallel_calls=tf.data.AUTOTUNE).prefetch(2))
    steps = epochs * int(np.ceil(len(train) / cfg.batch_size))
    _compile(model, steps, cfg)
    # No validation on the held-out people during training: nothing may be chosen by them.
    model.fit(ds, epochs=epochs, shuffle=False, verbose=verbose)  # the dataset shuffles itself, with the seed
    if cfg.boost_rounds > 1:  # the model above is round 1 (cross-validation folds boost too)
        from .boost import boost

        model = boost(model, train, cfg, epochs, verbose)
    return model


def predict_batch(crop_px: int) -> int:
    """Prediction batch size: small for the paper's 224x224 VGG16, where 256 needs tens of GB of activations."""
    return 256 if crop_px <= 64 else 8


def predict(model: Any, w: D.Windows, cfg: TrainConfig) -> np.ndarray:
    from .net import VARIANTS

    v = VARIANTS[cfg.variant]
    return np.asarray(model.predict(model_inputs(w, v.crop_px, v.crop_channels), batch_size=predict_batch(v.crop_px),
                                    verbose=0))


def cross_validate(train: D.Windows, cfg: TrainConfig) -> tuple[dict[str, Any], np.ndarray, np.ndarray, np.ndarray]:
    """Stratified k-fold by subject over the training subjects: the summary, and every training window's
    out-of-fold probabilities with its index among ``train`` and its fold (for calibration, on people each
    fold's model never saw)."""
    folds = D.subject_folds(train.subject, train.level, cfg.folds, cfg.seed)
    results = []
    oof_probs, oof_index, oof_fold = [], [], []
    for f, (tr, te) in enumerate(folds):
        held = sorted(set(train.subject[te]))
        print(f"cv fold {f + 1}/{cfg.folds}: holding out {', '.join(held)} ({len(te)} windows)", flush=True)
        model = fit(train.take(tr), cfg, cfg.cv_epochs, verbose=0)
        fold_probs = predict(model, train.take(te), cfg)
        oof_probs.append(fold_probs)
        oof_index.append(te)
        oof_fold.append(np.full(len(te), f))
        s = summarise(train.level[te], fold_probs)
        s["held_out"] = held
        print(f"  accuracy {s['accuracy']:.3f}, macro F1 {s['macro_f1']:.3f}, within one level "
              f"{s['within_one_level']:.3f}", flush=True)
        results.append(s)
    acc = [r["accuracy"] for r in results]
    f1 = [r["macro_f1"] for r in results]
    summary = {"folds": results, "accuracy_mean": round(float(np.mean(acc)), 4),
               "accuracy_sd": round(float(np.std(acc)), 4), "macro_f1_mean": round(float(np.mean(f1)), 4),
               "epochs": cfg.cv_epochs}
    return summary, np.concatenate(oof_probs), np.concatenate(oof_index), np.concatenate(oof_fold)


def calibration(oof: tuple[np.ndarray, np.ndarray], test_level: np.ndarray, test_probs: np.ndarray,
                oof_pspi: np.ndarray | None = None, test_pspi: np.ndarray | None = None) -> dict[str, Any]:
    """Temperature and vector scaling, each fitted on the cross-validation's out-of-fold windows (training people,
    each scored by a model that did not see them), and the held-out test's ECE before and after each; with the
    windows' PSPI estimates, also the published level's calibration (``fusion``).

    The fold models train for cv_epochs, the final one for epochs: the calibration is theirs, applied to the
    final model; the test ECE after it says how well that carries over. `painedge export` ships the
    temperature, or with ``--calibration vector`` the vector scaling (``vector``: a scale and a bias per level,
    which can also move the top level), and the fusion temperature fitted after that calibration."""
    t = fit_temperature(*oof)
    scale, bias = fit_vector_scaling(*oof)
    vector_test = apply_vector_scaling(test_probs, scale, bias)
    out = {"temperature": round(t, 4), "fitted_on": f"{len(oof[1])} out-of-fold cross-validation windows",
           "ece_oof_before": round(ece(oof[1], oof[0]), 4),
           "ece_oof_after": round(ece(oof[1], apply_temperature(oof[0], t)), 4),
           "ece_test_before": round(ece(test_level, test_probs), 4),
           "ece_test_after": round(ece(test_level, apply_temperature(test_probs, t)), 4),
           "vector": {"scale": [round(float(v), 4) for v in scale], "bias": [round(float(v), 4) for v in bias],
                      "ece_oof_after": round(ece(oof[1], apply_vector_scaling(oof[0], scale, bias)), 4),
                      "ece_test_after": round(ece(test_level, vector_test), 4),
                      "test_accuracy_after": round(float((vector_test.argmax(1) == test_level).mean()), 4)}}
    if oof_pspi is not None and test_pspi is not None:
        model_calibrations = {"none": lambda p: p, "temperature": lambda p: apply_temperature(p, t),
                              "vector": lambda p: apply_vector_scaling(p, scale, bias)}
        out["fusion"] = fusion_calibration(oof, oof_pspi, test_level, test_probs, test_pspi, model_calibrations)
    return out


def fusion_calibration(oof: tuple[np.ndarray, np.ndarray], oof_pspi: np.ndarray, test_level: np.ndarray,
                       test_probs: np.ndarray, test_pspi: np.ndarray,
                       model_calibrations: dict[str, Callable[[np.ndarray], np.ndarray]]) -> dict[str, Any]:
    """The published level's temperature (assess.CueFusion's, at the daemon's default cue weight), fitted on the
    out-of-fold windows fused with their own PSPI estimates, after each of the model's calibrations; with the
    published ECE out of fold and on the held-out test before and after it. Dividing the fused log-probabilities
    by it is what CueFusion does. It is fitted to the least out-of-fold ECE (``temperature``, shipped): the
    fusion's shape is the cue's Gaussian, which no temperature makes right, so the likelihood's optimum
    (``temperature_nll``, reported beside it) leaves the top level's confidence further off."""
    from ..assess import CueFusion
    from ..config import AssessSettings

    weight = AssessSettings().cue_weight
    fusion = CueFusion(weight=weight)
    out: dict[str, Any] = {"cue_weight": weight}
    for name, calibrate in model_calibrations.items():
        oof_pub = fusion.fuse(calibrate(oof[0]), oof_pspi)
        test_pub = fusion.fuse(calibrate(test_probs), test_pspi)
        tf, tn = fit_temperature_ece(oof_pub, oof[1]), fit_temperature(oof_pub, oof[1])
        out[name] = {"temperature": round(tf, 4), "ece_oof_before": round(ece(oof[1], oof_pub), 4),
                     "ece_oof_after": round(ece(oof[1], apply_temperature(oof_pub, tf)), 4),
                     "ece_test_before": round(ece(test_level, test_pub), 4),
                     "ece_test_after": round(ece(test_level, apply_temperature(test_pub, tf)), 4),
                     "temperature_nll": round(tn, 4),
                     "ece_test_after_nll": round(ece(test_level, apply_temperature(test_pub, tn)), 4)}
    return out


def split(all_w: D.Windows, test_subjects: Iterable[str]) -> tuple[D.Windows, D.Windows]:
    test = np.isin(all_w.subject, list(test_subjects))
    return all_w.take(np.where(~test)[0]), all_w.take(np.where(test)[0])


def subsample_index(w: D.Windows, n: int | None, seed: int, stratify: bool = False) -> np.ndarray:
    """Indices of n windows drawn at random, in order; with ``stratify``, about n keeping each level's share."""
    if not n or len(w) <= n:
        return np.arange(len(w))
    rng = np.random.default_rng(seed)
    if not stratify:
        return np.sort(rng.choice(len(w), n, replace=False))
    picked = []
    for level in np.unique(w.level):
        idx = np.where(w.level == level)[0]
        picked.append(rng.choice(idx, max(1, round(n * len(idx) / len(w))), replace=False))
    return np.sort(np.concatenate(picked))


def subsample(w: D.Windows, n: int | None, seed: int, stratify: bool = False) -> D.Windows:
    return w.take(subsample_index(w, n, seed, stratify))


def train(cfg: TrainConfig, out_dir: Path, cv: bool = True) -> dict[str, Any]:
    """The whole run: dataset, cross-validation, final model, held-out test, figures. Returns the report."""
    out_dir.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    all_w = build_dataset(cfg, out_dir / "windows.npz")
    if not cfg.test_subjects:
        cfg.test_subjects = default_test_subjects(sorted(set(all_w.subject)))
    tr, te = split(all_w, cfg.test_subjects)
    tr = subsample(tr, cfg.limit_train, cfg.seed)
    te = subsample(te, cfg.limit_test, cfg.seed, stratify=True)
    print(f"training on {len(tr)} windows of {len(set(tr.subject))} subjects; testing on {len(te)} windows of "
          f"{', '.join(sorted(set(te.subject)))}; levels (train) {np.bincount(tr.level, minlength=N_LEVELS).tolist()}",
          flush=True)
    report: dict[str, Any] = {"config": asdict(cfg), "train_windows": len(tr), "test_windows": len(te),
                              "train_levels": np.bincount(tr.level, minlength=N_LEVELS).tolist(),
                              "test_levels": np.bincount(te.level, minlength=N_LEVELS).tolist()}
    oof: tuple[np.ndarray, np.ndarray] | None = None
    people = len(set(tr.subject))
    if cv and cfg.folds > people:  # cross-validation by person needs a person per fold
        print(f"cross-validation: {cfg.folds} folds asked, {people} training people; "
              f"{'using ' + str(people) + ' folds' if people >= 2 else 'none possible'}", flush=True)
        cfg.folds = people
    if cv and cfg.folds > 1:
        t0 = time.monotonic()
        report["cross_validation"], oof_probs, oof_index, oof_fold = cross_validate(tr, cfg)
        oof = (oof_probs, tr.level[oof_index])
        # Kept for benchmarks/calibration.py: each row's window is the run's training windows' [index].
        np.savez_compressed(out_dir / "oof.npz", probs=oof_probs, level=oof[1], index=oof_index, fold=oof_fold,
                            subject=tr.subject[oof_index])
        report["cross_validation"]["seconds"] = round(time.monotonic() - t0)
    t0 = time.monotonic()
    model = fit(tr, cfg, cfg.epochs)
    report["train_seconds"] = round(time.monotonic() - t0)
    model.save(out_dir / "model.keras")  # before testing: a failed test must not cost the training
    probs = predict(model, te, cfg)
    report["test"] = summarise(te.level, probs)
    if cfg.boost_rounds > 1:
        from .boost import summary

        report["boost"] = summary(model, te, cfg)
    if oof is not None:
        report["calibration"] = calibration(oof, te.level, probs, window_pspi(tr.seq[oof_index]), window_pspi(te.seq))
    report["figures"] = [p.name for p in write_figures(te.level, probs, out_dir, f"{cfg.variant}, held-out subjects")]
    np.savez_compressed(out_dir / "test_probs.npz", probs=probs, level=te.level)
    (out_dir / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    print(f"held-out test: accuracy {report['test']['accuracy']:.3f}, macro F1 {report['test']['macro_f1']:.3f}, "
          f"severe-or-worse recall {report['test']['severe_or_worse_recall']:.3f}", flush=True)
    return report
