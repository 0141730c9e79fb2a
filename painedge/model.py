"""Loading and running the fused pain model (TFLite), with its metadata checked.

A model is two files side by side: ``NAME.tflite`` and ``NAME.json`` (its
metadata: feature version, window length, landmark ids, labels, the model
file's sha256, and how it was trained and measured). The daemon refuses a model
whose metadata does not match its own features, or whose file does not match
its checksum, with one message naming the file.
"""

from __future__ import annotations

import hashlib
import json
import time
from importlib import resources
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from . import face as F
from .logsetup import native_notes_dropped
from .levels import LABELS


def package_folder(package: str, name: str) -> Path:
    """A data folder of an installed package (painedge/models/, painedge/landmarks/models/), via importlib.resources.

    The same folder in a checkout, an editable install and a wheel installed into
    site-packages. The TFLite interpreter and the .json beside the .tflite need real
    files, which every pip install gives (a zip import would not).
    """
    folder = resources.files(package).joinpath(name)
    return folder if isinstance(folder, Path) else Path(str(folder))


MODELS_DIR = package_folder(__package__, "models")  # the shipped models
# The one place the default model is resolved: config.py, the CLI, benchmarks and tests use it.
DEFAULT_MODEL = MODELS_DIR / "painedge-edge-int8.tflite"


class ModelError(ValueError):
    """A model file that cannot be used; the message names the file and the fix."""


def interpreter_class() -> tuple[type, str]:
    """The TFLite interpreter: LiteRT when importable, else tflite_runtime, else TensorFlow's."""
    try:
        from ai_edge_litert.interpreter import Interpreter

        return Interpreter, "ai_edge_litert"
    except ImportError:
        pass
    try:
        from tflite_runtime.interpreter import Interpreter

        return Interpreter, "tflite_runtime"
    except ImportError:
        pass
    try:
        from tensorflow.lite import Interpreter

        return Interpreter, "tensorflow.lite"
    except ImportError as e:
        raise ModelError("no TFLite interpreter installed: pip install ai-edge-litert") from e


def load_interpreter(path: str | Path, num_threads: int = 1) -> tuple[Any, str]:
    """A TFLite interpreter for ``path`` with its tensors allocated, and which runtime it is.

    The one place painedge creates interpreters: the pain model and the landmark
    backend's face detector and mesh all come through here.
    """
    cls, backend = interpreter_class()
    try:
        with native_notes_dropped():
            it = cls(model_path=str(path), num_threads=num_threads)
            it.allocate_tensors()
    except (ValueError, RuntimeError) as e:
        raise ModelError(f"{path}: not a TFLite model this interpreter can load ({str(e).splitlines()[0]})") from None
    return it, backend


# Runtimes that load a quantisation but compute it wrong. Measured: a version 2 export with 16-bit activations
# (`painedge export --activations int16`) agrees with the float model on 0.987 of held-out windows under
# ai-edge-litert 2.3, and tflite-runtime 2.13.0 (the Jetson Nano's, here its x86-64 build of the same release)
# loads and runs the same file without an error but picks LiteRT's level on only 0.590 of those windows
# (probabilities up to 0.97 apart); its full-integer int8 files pick it on 0.995-0.997, and the dynamic-range
# file that ships on all 6,288 (largest difference 0.011). So a 16-bit file needs LiteRT.
WRONG_RESULTS = {("int16x8", "tflite_runtime"): "computes 16-bit activations wrong (measured with 2.13.0)"}


def check_runtime(quantization: str, backend: str, where: Path) -> None:
    """Refuse a model file whose quantisation this interpreter is known to compute wrong (``WRONG_RESULTS``)."""
    why = WRONG_RESULTS.get((quantization, backend))
    if why:
        raise ModelError(f"{where}: this interpreter ({backend}) {why}, and this model is {quantization}; use an "
                         f"int8 export (`painedge export` without --activations: dynamic range) or install ai-edge-litert")


def frame_vector(feats: F.FaceFeatures) -> np.ndarray:
    """The landmark branch's input for one frame: the model landmarks, then the cue vector."""
    return np.concatenate([feats.model_landmarks, feats.cues.vector()]).astype(np.float32)


def window_pspi(seq: np.ndarray) -> np.ndarray:
    """The PSPI estimate of each window's last frame (the frame its output is fused with), read back from landmark
    windows (N, frames, FRAME_DIM): frame_vector ends with PSPI/16."""
    return np.asarray(seq, np.float64)[..., -1, -1] * 16.0


FRAME_DIM = 2 * len(F.MODEL_LANDMARKS) + F.N_CUES
WINDOW_PERIOD_S = 0.1  # training windows are consecutive frames of 10 fps clips


class LandmarkWindow:
    """The model's landmark window, defined in time: ``frames`` samples ``period_s`` apart.

    Every frame with a face is pushed (whether or not the gate lets the model
    run on it); ``sample`` picks, for each sample time, the latest frame at or
    before it. So the model sees the same 0.8 s of motion at 15 or 30 fps and
    however many frames the gate skipped, as it did in training.
    """

    def __init__(self, frames: int, period_s: float = WINDOW_PERIOD_S) -> None:
        self.frames, self.period_s = frames, period_s
        self._t: list[float] = []
        self._v: list[np.ndarray] = []

    def __len__(self) -> int:
        return len(self._v)

    def clear(self) -> None:
        self._t.clear()
        self._v.clear()

    def push(self, t_s: float, vector: np.ndarray) -> None:
        self._t.append(t_s)
        self._v.append(vector)
        horizon = t_s - self.frames * self.period_s - 1.0
        while len(self._t) > 2 and self._t[1] < horizon:
            del self._t[0], self._v[0]

    def sample(self, t_s: float) -> np.ndarray:
        """(frames, D): the window ending at ``t_s`` (padded with the earliest frame when shorter)."""
        if not self._v:
            raise ValueError("empty landmark window")
        import bisect

        out = []
        for k in range(self.frames):
            want = t_s - (self.frames - 1 - k) * self.period_s
            i = bisect.bisect_right(self._t, want + 1e-6) - 1
            out.append(self._v[max(i, 0)])
        return np.stack(out)


@dataclass(frozen=True)
class ModelMeta:
    """What a model expects and how it was made."""

    name: str
    version: str
    variant: str  # edge | paper
    feature_version: str
    window_frames: int
    window_period_s: float
    frame_dim: int
    crop_px: int
    crop_channels: int
    labels: tuple[str, ...]
    landmark_ids: tuple[int, ...]
    cue_names: tuple[str, ...]
    quantization: str  # int8-dynamic | int8 | int16x8 (int8 weights in all; train.export.QUANTIZATION) | float32
    sha256: str = ""
    temperature: float = 1.0  # calibration: the output is softmax(log p / temperature) (1: as the model gives it)
    # Vector scaling, when set (it then replaces the temperature): softmax(scale * log p + bias), per level.
    calibration_scale: tuple[float, ...] = ()
    calibration_bias: tuple[float, ...] = ()
    # The published distribution's calibration (assess.CueFusion's temperature), fitted out of fold with the
    # fusion at this cue weight; the daemon applies it only at that weight (None: the model has none).
    fusion_temperature: float = 1.0
    fusion_cue_weight: float | None = None
    training: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def for_features(cls, name: str, version: str, variant: str, window_frames: int, crop_px: int,
                     crop_channels: int, quantization: str, window_period_s: float = WINDOW_PERIOD_S,
                     **extra: Any) -> ModelMeta:
        """Metadata for a model built on this package's current features."""
        return cls(name=name, version=version, variant=variant, feature_version=F.FEATURE_VERSION,
                   window_frames=window_frames, window_period_s=window_period_s, frame_dim=FRAME_DIM, crop_px=crop_px,
                   crop_channels=crop_channels, labels=LABELS, landmark_ids=F.MODEL_LANDMARKS,
                   cue_names=(*F.Cues.NAMES, "pspi/16"), quantization=quantization, **extra)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2) + "\n"

    @classmethod
    def read(cls, path: Path) -> ModelMeta:
        try:
            raw = json.loads(path.read_text())
        except FileNotFoundError:
            raise ModelError(f"{path}: model metadata missing (every .tflite needs its .json beside it; "
                             f"`painedge export` writes both)") from None
        except json.JSONDecodeError as e:
            raise ModelError(f"{path}: model metadata is not valid JSON (line {e.lineno}: {e.msg})") from None
        try:
            for k in ("labels", "landmark_ids", "cue_names", "calibration_scale", "calibration_bias"):
                if k in raw:
                    raw[k] = tuple(raw[k])
            meta = cls(**raw)
        except (TypeError, KeyError) as e:
            raise ModelError(f"{path}: model metadata has the wrong fields ({e})") from None
        t = meta.temperature
        if not _number(t) or not 0.05 <= t <= 20:  # NaN fails too
            raise ModelError(f"{path}: temperature {t!r} is not a calibration temperature (0.05-20; 1 = none)")
        ft, fw = meta.fusion_temperature, meta.fusion_cue_weight
        if not _number(ft) or not 0.05 <= ft <= 20 or (fw is not None and (not _number(fw) or not 0 <= fw <= 1)) \
                or (fw is None and ft != 1):
            raise ModelError(f"{path}: fusion_temperature {ft!r} (0.05-20; 1 = none) at fusion_cue_weight {fw!r} "
                             f"(0-1, or null) is not a calibration of the published level; re-export the model")
        a, b = meta.calibration_scale, meta.calibration_bias
        if (a or b) and t != 1:
            raise ModelError(f"{path}: both a temperature ({t}) and a vector calibration: one calibration only "
                             f"(the temperature 1 when calibration_scale is set); re-export the model")
        if a or b:
            numbers = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (*a, *b))
            if not (numbers and len(a) == len(b) == len(meta.labels) and all(0.05 <= v <= 20 for v in a)
                    and all(-20 <= v <= 20 for v in b)):  # NaN fails the ranges
                raise ModelError(f"{path}: calibration_scale and calibration_bias must be {len(meta.labels)} numbers "
                                 f"each (scales 0.05-20, biases -20-20); re-export the model")
        return meta

    def calibration(self) -> tuple[np.ndarray, np.ndarray] | None:
        """The (scale, bias) of ``rescale`` this model's outputs get: its vector scaling, else its temperature,
        else None (as the network gives them)."""
        if self.calibration_scale:
            return np.asarray(self.calibration_scale), np.asarray(self.calibration_bias)
        if self.temperature != 1.0:
            return np.full(len(self.labels), 1.0 / self.temperature), np.zeros(len(self.labels))
        return None

    def check_features(self, where: Path) -> None:
        """Refuse a model built for other features than this package computes."""
        problems = []
        if self.feature_version != F.FEATURE_VERSION:
            problems.append(f"feature version {self.feature_version!r}, this painedge computes {F.FEATURE_VERSION!r}")
        if tuple(self.landmark_ids) != F.MODEL_LANDMARKS:
            problems.append("a different landmark subset")
        if self.frame_dim != FRAME_DIM:
            problems.append(f"{self.frame_dim} values per frame, this painedge makes {FRAME_DIM}")
        if tuple(self.labels) != LABELS:
            problems.append(f"labels {list(self.labels)}")
        if problems:
            raise ModelError(f"{where}: model does not match this painedge's features ({'; '.join(problems)}); "
                             f"retrain it with `painedge train` or install the painedge it was made for")


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


class PainModel:
    """A loaded, checked TFLite pain model. Not thread-safe: one per inference thread."""

    def __init__(self, path: str | Path, num_threads: int = 1) -> None:
        self.path = Path(path)
        if not self.path.exists():
            if self.path.resolve() == DEFAULT_MODEL.resolve():
                raise ModelError(f"{self.path}: the shipped model is missing: this painedge installation is "
                                 f"incomplete (reinstall painedge)")
            hint = (f"the shipped one is {DEFAULT_MODEL}" if DEFAULT_MODEL.exists()
                    else "and the shipped model is missing too: reinstall painedge")
            raise ModelError(f"{self.path}: no such model file ({hint})")
        self.meta = ModelMeta.read(self.path.with_suffix(".json"))
        if self.meta.sha256 and sha256_of(self.path) != self.meta.sha256:
            raise ModelError(f"{self.path}: file does not match the checksum in its metadata "
                             f"(corrupt or replaced); restore it or re-export")
        self.meta.check_features(self.path)
        self._it, self.backend = load_interpreter(self.path, num_threads)
        check_runtime(self.meta.quantization, self.backend, self.path)
        ins = {d["name"]: d for d in self._it.get_input_details()}
        crop = next((d for d in ins.values() if len(d["shape"]) == 4), None)
        seq = next((d for d in ins.values() if len(d["shape"]) == 3), None)
        want_seq = (1, self.meta.window_frames, self.meta.frame_dim)
        want_crop = (1, self.meta.crop_px, self.meta.crop_px, self.meta.crop_channels)
        if crop is None or seq is None or tuple(seq["shape"]) != want_seq or tuple(crop["shape"]) != want_crop:
            got = [tuple(int(v) for v in d["shape"]) for d in ins.values()]
            raise ModelError(f"{self.path}: model inputs {got} do not match its metadata "
                             f"(landmarks {want_seq}, crop {want_crop})")
        self._crop, self._seq = crop, seq
        self._out = self._it.get_output_details()[0]
        self._calibration = self.meta.calibration()
        self.last_latency_s = 0.0

    @property
    def window_frames(self) -> int:
        return self.meta.window_frames

    def predict(self, window: np.ndarray, crop: np.ndarray, calibrated: bool = True) -> np.ndarray:
        """Level probabilities (5,) for a landmark window (T, D) and a uint8 face crop (S, S): calibrated as the
        metadata says, or as the network gives them (``calibrated=False``, to compare with the float model)."""
        window = np.asarray(window, np.float32)
        if window.shape != (self.meta.window_frames, self.meta.frame_dim):
            raise ValueError(f"landmark window has shape {window.shape}, "
                             f"model wants ({self.meta.window_frames}, {self.meta.frame_dim})")
        x = model_input(window[None], np.asarray(crop)[None], self.meta.crop_px, self.meta.crop_channels)
        t0 = time.perf_counter()
        self._it.set_tensor(self._seq["index"], x["landmarks"])
        self._it.set_tensor(self._crop["index"], x["crop"])
        self._it.invoke()
        out = self._it.get_tensor(self._out["index"])[0].astype(np.float32)
        if calibrated and self._calibration is not None:
            out = rescale(out, *self._calibration).astype(np.float32)
        self.last_latency_s = time.perf_counter() - t0
        return out


# Probabilities are floored here before their log is taken: an int8 output resolves 1/256, so a dequantised 0
# means "below the step", not "impossible". Fitting a calibration and applying it use the same floor.
PROB_FLOOR = 1e-6


def _number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def rescale(probs: np.ndarray, scale: Any, bias: Any = 0.0) -> np.ndarray:
    """softmax(scale * log p + bias) over the last axis: the one calibration formula. A temperature T is the
    scale 1/T and no bias; vector scaling has a scale and a bias per level."""
    logp = np.log(np.clip(np.asarray(probs, np.float64), PROB_FLOOR, 1.0)) * scale + bias
    logp -= logp.max(axis=-1, keepdims=True)
    p = np.exp(logp)
    return p / p.sum(axis=-1, keepdims=True)


def model_input(landmarks: np.ndarray, crops: np.ndarray, crop_px: int, crop_channels: int) -> dict[str, np.ndarray]:
    """The fused model's inputs by name from a batch: landmark windows (N, T, D) as float32, uint8 grey face
    crops (N, S, S) as float32 (N, crop_px, crop_px, crop_channels) in [0, 1].

    The one preprocessing of the model's input: training, calibration, int8 conversion, `painedge model verify`
    and the daemon (a batch of one) all call it, so what the model learnt from is what it is given at the bed.
    """
    import cv2

    if crops.shape[1:3] != (crop_px, crop_px):
        crops = np.stack([cv2.resize(c, (crop_px, crop_px), interpolation=cv2.INTER_LINEAR) for c in crops])
    x = crops.astype(np.float32) / 255.0
    if x.ndim == 3:
        x = x[..., None]
    if crop_channels == 3 and x.shape[-1] == 1:
        x = np.repeat(x, 3, axis=-1)
    return {"landmarks": np.array(landmarks, np.float32), "crop": x}
