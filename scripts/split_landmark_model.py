"""Split Face Mesh's refined landmark model at its custom ops, for painedge.landmarks.attention.

    python scripts/split_landmark_model.py [MODEL] [--out painedge/landmarks/models]

MODEL defaults to mediapipe's ``face_landmark_with_attention.tflite`` (478 points) in
the installed wheel. It has 11 custom ops (Landmarks2TransformMatrix,
TransformTensorBilinear, TransformLandmarks) that only MediaPipe's own interpreter
registers. This writes the builtin ops between them as separate .tflite files
(``face_landmark_with_attention.K.tflite``, each with only the tensors, buffers and
opcodes it uses) and ``face_landmark_with_attention.json``: the steps in order (a
file to run, or a custom op with its options), the output tensor names, and the
refinement index maps. Ops, weights and op versions are copied unchanged.

It reads and writes the files with the flatbuffer schema that ai-edge-litert ships
(no TensorFlow); the daemon only reads what it writes. The output is deterministic:
tests/test_landmarks.py checks that the shipped parts are what it makes from the wheel's model.
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import importlib.util
import json
import sys
from pathlib import Path
from typing import Any

PREFIX = "face_landmark_with_attention"
# The graph's outputs, by what they hold (MediaPipe's tensors_to_face_landmarks_with_attention.pbtxt order).
OUTPUTS = {"mesh": "output_mesh_identity", "lips": "output_lips", "left_eye": "output_left_eye",
           "right_eye": "output_right_eye", "left_iris": "output_left_iris", "right_iris": "output_right_iris",
           "face_flag": "conv_faceflag"}
# Which Landmarks2TransformMatrix crops which region, by its first subset index (lip corner 61, the
# subject's right eye's outer corner 33, the left eye's 263). Each op's subset is the same list of mesh
# indices that MediaPipe's LandmarksRefinementCalculator overwrites with that region's refined points.
REGION_BY_FIRST_INDEX = {61: "lips", 33: "left_eye", 263: "right_eye"}


def wheel_model() -> Path:
    spec = importlib.util.find_spec("mediapipe")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("mediapipe is not installed: give the model file's path")
    return Path(list(spec.submodule_search_locations)[0]) / "modules" / "face_landmark" / f"{PREFIX}.tflite"


def split(src: Path, out: Path) -> dict[str, Any]:
    import flatbuffers
    from flatbuffers import flexbuffers
    from ai_edge_litert import schema_py_generated as schema

    data = src.read_bytes()
    model = schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(data, 0))
    if len(model.subgraphs) != 1:
        raise SystemExit(f"{src}: expected one subgraph, found {len(model.subgraphs)}")
    g = model.subgraphs[0]
    name = lambda t: g.tensors[t].name.decode()  # noqa: E731
    custom = lambda op: model.operatorCodes[op.opcodeIndex].customCode is not None  # noqa: E731
    constant = lambda t: bool(model.buffers[g.tensors[t].buffer].data is not None  # noqa: E731
                              and len(model.buffers[g.tensors[t].buffer].data))

    # Runs of builtin ops, in graph order, with the custom ops between them.
    runs: list[list[int] | int] = []
    for k, op in enumerate(g.operators):
        if custom(op):
            runs.append(k)
        elif runs and isinstance(runs[-1], list):
            runs[-1].append(k)
        else:
            runs.append([k])

    steps: list[dict[str, Any]] = []
    refine: dict[str, list[int]] = {}
    n_file = 0
    for run in runs:
        if isinstance(run, int):
            op = g.operators[run]
            code = model.operatorCodes[op.opcodeIndex]
            options = flexbuffers.Loads(bytes(op.customOptions)) if op.customOptions is not None else {}
            steps.append({"op": code.customCode.decode(), "version": code.version,
                          "inputs": [name(t) for t in op.inputs], "outputs": [name(t) for t in op.outputs],
                          "options": options})
            if "subset_idxs" in options:
                refine[REGION_BY_FIRST_INDEX[options["subset_idxs"][0]]] = list(options["subset_idxs"])
            continue
        inside = set(run)
        made = {t for k in run for t in g.operators[k].outputs}
        ins: list[int] = []
        for k in run:
            ins += [t for t in g.operators[k].inputs if t >= 0 and t not in made and not constant(t) and t not in ins]
        outs = [t for t in sorted(made) if t in g.outputs
                or any(t in g.operators[j].inputs for j in range(len(g.operators)) if j not in inside)]
        part = copy.deepcopy(model)
        pg = part.subgraphs[0]
        ops = [pg.operators[k] for k in run]
        used = sorted({t for op in ops for t in [*op.inputs, *op.outputs] if t >= 0})
        tmap = {t: i for i, t in enumerate(used)}
        codes = sorted({op.opcodeIndex for op in ops})
        bufs = sorted({pg.tensors[t].buffer for t in used} | {0})  # buffer 0 stays the empty sentinel
        bmap = {b: i for i, b in enumerate(bufs)}
        pg.tensors = [pg.tensors[t] for t in used]
        for t in pg.tensors:
            t.buffer = bmap[t.buffer]
        for op in ops:
            op.inputs = [tmap[t] if t >= 0 else -1 for t in op.inputs]
            op.outputs = [tmap[t] for t in op.outputs]
            op.opcodeIndex = codes.index(op.opcodeIndex)
        pg.operators, pg.inputs, pg.outputs = ops, [tmap[t] for t in ins], [tmap[t] for t in outs]
        part.operatorCodes = [part.operatorCodes[c] for c in codes]
        part.buffers = [part.buffers[b] for b in bufs]
        part.signatureDefs, part.metadata, part.metadataBuffer = [], [], []
        builder = flatbuffers.Builder(1 << 20)
        builder.Finish(part.Pack(builder), file_identifier=b"TFL3")
        file = f"{PREFIX}.{n_file}.tflite"
        (out / file).write_bytes(builder.Output())
        n_file += 1
        steps.append({"run": file, "inputs": [name(t) for t in ins], "outputs": [name(t) for t in outs]})

    graph_out = {name(t) for t in g.outputs}
    missing = [v for v in OUTPUTS.values() if v not in graph_out]
    if missing or set(refine) != set(REGION_BY_FIRST_INDEX.values()):
        raise SystemExit(f"{src}: not the model this script knows (outputs missing {missing}, regions {sorted(refine)})")
    return {"source": {"file": src.name, "sha256": hashlib.sha256(data).hexdigest()},
            "input": name(g.inputs[0]), "input_shape": [int(x) for x in g.tensors[g.inputs[0]].shape],
            "steps": steps, "outputs": OUTPUTS, "refine": refine}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model", nargs="?", default=None)
    ap.add_argument("--out", default=str(Path(__file__).resolve().parents[1] / "painedge" / "landmarks" / "models"))
    args = ap.parse_args()
    src = Path(args.model) if args.model else wheel_model()
    out = Path(args.out)
    plan = split(src, out)
    (out / f"{PREFIX}.json").write_text(json.dumps(plan, indent=1) + "\n")
    files = [s["run"] for s in plan["steps"] if "run" in s]
    print(f"{src} -> {out}: {', '.join(files)} and {PREFIX}.json "
          f"({sum('op' in s for s in plan['steps'])} custom ops left to painedge.landmarks.attention)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
