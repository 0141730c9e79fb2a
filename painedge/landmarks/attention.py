"""Face Mesh's refined (attention) landmark model, 478 points, without MediaPipe's custom operators.

``face_landmark_with_attention.tflite`` is the model MediaPipe's Face Mesh runs with
``refine_landmarks=True`` (the one the shipped pain model was trained on). Between its
builtin layers the wheel's file has 11 custom operators that only MediaPipe's interpreter
registers; they crop the lips and eyes out of a feature map and map the regions' points
back. The file shipped here has each of them written as builtin operators and reads BGR
(``scripts/fuse_landmark_model.py``; every other operator and weight is the wheel's), so
the whole model is one call of the one interpreter loader, ``painedge.model.load_interpreter``,
on a frame's crop as OpenCV gives it.

Then MediaPipe's LandmarksRefinementCalculator (tensors_to_face_landmarks_with_attention.pbtxt):
the lip and eye points overwrite the mesh's at the same indices (z kept), the irises
become points 468-477 with the mean z of their eye's contour.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

N_POINTS = 478
# The first 16 points of each eye's refined list are its contour (lower, then upper without corners):
# MediaPipe gives each iris their mean z.
EYE_CONTOUR = 16
IRIS_START = {"left_iris": 468, "right_iris": 473}  # subject's right eye's iris first (MediaPipe's "left" = image left)
IRIS_EYE = {"left_iris": "left_eye", "right_iris": "right_eye"}
IRIS_FIRST = 468  # the irises: 5 points each, in IRIS_START's order, after the 468 of the mesh
REGIONS = ("lips", "left_eye", "right_eye")  # refined points, in the order MediaPipe's calculator applies them


class RefinedLandmarkModel:
    """The refined model as one call: a (192, 192, 3) BGR crop in [0, 1] -> 478 x (x, y, z) in crop pixels, flag logit.

    ``plan`` is the JSON ``scripts/fuse_landmark_model.py`` writes beside the model: the file,
    its input, its outputs by what they hold, and which mesh points each region's points replace.
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
        path = plan.parent / spec["model"]
        if not path.is_file():
            raise ModelError(f"{path}: missing; {incomplete}")
        self.path = path
        self._it, _ = load_interpreter(path, num_threads)
        by_name = {d["name"]: d for d in self._it.get_input_details()}
        self.input_name: str = spec["input"]
        self.input_shape = tuple(spec["input_shape"])
        if spec.get("input_channels") != "BGR":
            raise ModelError(f"{plan}: the landmark model must read BGR (scripts/fuse_landmark_model.py makes it so); "
                             f"{incomplete}")
        self._input = by_name[self.input_name]["index"]
        outputs = {d["name"]: d["index"] for d in self._it.get_output_details()}
        self._outputs = [(name, outputs[name]) for name in spec["outputs"].values()]
        self._out = spec["outputs"]
        self._refine = {k: np.asarray(v, np.intp) for k, v in spec["refine"].items()}
        # Where the refined points go: the lips' and eyes' over the mesh's, then the irises after it.
        self._refined = np.concatenate([*(self._refine[r] for r in REGIONS), np.arange(IRIS_FIRST, N_POINTS)])
        self._contours = np.concatenate([self._refine[IRIS_EYE[i]][:EYE_CONTOUR] for i in IRIS_START])

    def tensors(self, crop: np.ndarray | None) -> dict[str, np.ndarray]:
        """The model's outputs for ``crop``, by tensor name (``crop`` None: already in the input buffer, ``from_bgr``)."""
        if crop is not None:
            self._it.set_tensor(self._input, np.ascontiguousarray(crop, np.float32).reshape(self.input_shape))
        self._it.invoke()
        return {name: self._it.get_tensor(index) for name, index in self._outputs}

    def from_bgr(self, crop_bgr: np.ndarray) -> tuple[np.ndarray, float]:
        """As calling the model on ``crop_bgr`` (192 x 192 x 3 uint8) in [0, 1], written into its input buffer."""
        view = self._it.tensor(self._input)()  # the input buffer, written in place; no reference may outlive invoke()
        np.multiply(crop_bgr, np.float32(1.0 / 255.0), out=view[0], dtype=np.float32)
        del view
        return self._result(self.tensors(None))

    def __call__(self, crop: np.ndarray) -> tuple[np.ndarray, float]:
        return self._result(self.tensors(crop))

    def _result(self, t: dict[str, np.ndarray]) -> tuple[np.ndarray, float]:
        pts = np.empty((N_POINTS, 3), np.float32)
        pts[:468] = t[self._out["mesh"]].reshape(468, 3)
        refined = [t[self._out[k]] for k in (*REGIONS, *IRIS_START)]
        pts[self._refined, :2] = np.concatenate(refined, axis=None).reshape(-1, 2)
        # Each iris the mean z of its eye's contour (mean: a float32 sum, divided by the count).
        z = np.add.reduce(pts[self._contours, 2].reshape(len(IRIS_START), EYE_CONTOUR), axis=1) / EYE_CONTOUR
        pts[IRIS_FIRST:, 2] = np.repeat(z, 5)
        return pts, float(t[self._out["face_flag"]].reshape(-1)[0])
