"""Face Mesh's refined (attention) landmark model, 478 points, without MediaPipe's custom operators.

``face_landmark_with_attention.tflite`` is the model MediaPipe's Face Mesh runs with
``refine_landmarks=True`` (the one the shipped pain model was trained on). Between its
builtin layers the wheel's file has 11 custom operators that only MediaPipe's interpreter
registers; they crop the lips and eyes out of a feature map and map the regions' points
back. The file shipped here has each of them written as builtin operators and reads a crop's
BGR bytes (``scripts/fuse_landmark_model.py``; every other operator and weight is the wheel's, the
first convolution's kernel with its input channels reversed),
so the whole model is one call of the one interpreter loader, ``painedge.model.load_interpreter``,
on a crop OpenCV warps straight into its input.

The script also adds MediaPipe's LandmarksRefinementCalculator
(tensors_to_face_landmarks_with_attention.pbtxt) to the model as its ``landmarks`` output: the lip
and eye points overwrite the mesh's at the same indices (z kept), the irises become points 468-477
with the mean z of their eye's contour.
"""

from __future__ import annotations

import json
import traceback
from pathlib import Path
from typing import Callable

import numpy as np

LANDMARKS = "landmarks"  # the output scripts/fuse_landmark_model.py adds: the 478 points, refined
FACE_FLAG = "face_flag"


class RefinedLandmarkModel:
    """The refined model as one call: a (192, 192, 3) uint8 BGR crop -> 478 x (x, y, z) in crop pixels, flag logit.

    ``plan`` is the JSON ``scripts/fuse_landmark_model.py`` writes beside the model: the file, its
    input and its outputs by what they hold; ``landmarks`` is the refined 478 (MediaPipe's
    LandmarksRefinementCalculator, done in the model: the lip and eye points over the mesh's, the irises
    after it with the mean z of their eye's contour).
    """

    def __init__(self, plan: str | Path, num_threads: int = 1) -> None:
        from ..model import ModelError, load_interpreter

        plan = Path(plan)
        incomplete = "painedge's install is incomplete (its landmark models are package data): reinstall painedge"
        try:
            spec = json.loads(plan.read_text())
        except (OSError, ValueError) as e:
            raise ModelError(f"{plan}: cannot read the landmark model's description ({e.__class__.__name__}); "
                             f"{incomplete}") from None
        if spec.get("input_channels") != "BGR" or spec.get("input_dtype") != "uint8" or LANDMARKS not in spec.get("outputs", {}):
            raise ModelError(f"{plan}: not a landmark model scripts/fuse_landmark_model.py made (BGR bytes in, refined "
                             f"landmarks out); {incomplete}")
        path = plan.parent / spec["model"]
        if not path.is_file():
            raise ModelError(f"{path}: missing; {incomplete}")
        self._it, _ = load_interpreter(path, num_threads)
        self.input_shape = tuple(spec["input_shape"])
        self._input = next(d["index"] for d in self._it.get_input_details() if d["name"] == spec["input"])
        outputs = {d["name"]: d["index"] for d in self._it.get_output_details()}
        self._outputs = {key: outputs[name] for key, name in spec["outputs"].items()}
        self._landmarks, self._flag = self._outputs[LANDMARKS], self._outputs[FACE_FLAG]

    def tensors(self, crop: np.ndarray) -> dict[str, np.ndarray]:
        """Every output of the model for ``crop`` (192 x 192 x 3 uint8, BGR), by what it holds (the description's keys)."""
        if crop.dtype != np.uint8:
            raise ValueError(f"the landmark model reads a crop's BGR bytes (uint8), not {crop.dtype}")
        self._it.set_tensor(self._input, np.ascontiguousarray(crop).reshape(self.input_shape))
        self._it.invoke()
        return {key: self._it.get_tensor(index) for key, index in self._outputs.items()}

    def run_on(self, write: Callable[[np.ndarray], np.ndarray]) -> tuple[np.ndarray, float]:
        """The landmarks and the face flag's logit for the crop ``write`` puts into the model's input buffer (a
        192 x 192 x 3 uint8 array, BGR) and returns: e.g. an OpenCV warp with it as ``dst``, so the crop is
        never copied. A ``write`` that returns another array (OpenCV makes one when ``dst`` does not fit) is
        refused: the buffer would still hold the last crop."""
        view = self._it.tensor(self._input)()  # the input buffer; no reference to it may outlive invoke()
        buf = view[0]
        try:
            written = write(buf)
        except BaseException as e:
            # The error's traceback keeps ``write``'s frame, and with it the buffer: that would block every later
            # invoke() for as long as anyone holds the error (a log record, a caller's variable).
            del view, buf
            traceback.clear_frames(e.__traceback__)
            raise
        fits, got = written is buf, getattr(written, "shape", None)
        del view, buf, written
        if not fits:
            raise ValueError(f"the crop was not written into the model's input (got {got}, expected "
                             f"{self.input_shape[1:]} uint8)")
        self._it.invoke()
        return self._it.get_tensor(self._landmarks), float(self._it.get_tensor(self._flag).reshape(-1)[0])

    def __call__(self, crop: np.ndarray) -> tuple[np.ndarray, float]:
        t = self.tensors(crop)
        return t[LANDMARKS], float(t[FACE_FLAG].reshape(-1)[0])
