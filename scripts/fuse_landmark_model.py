"""Face Mesh's refined landmark model as one file of builtin operators, for painedge.landmarks.

    python scripts/fuse_landmark_model.py [MODEL] [--out painedge/landmarks/models]

MODEL defaults to mediapipe's ``face_landmark_with_attention.tflite`` (478 points) in the
installed wheel. It has 11 custom operators that only MediaPipe's own interpreter registers
(google-ai-edge/mediapipe, mediapipe/util/tflite/operations/, version 2 of each):

- Landmarks2TransformMatrix: a region's rotation from two landmarks (atan2), its centre and
  size from the bounding box of a subset of landmarks in the rotated frame, and the 4x4 matrix
  shift(centre) . rotate(-r) . scale(scale * size / out) . shift(-out / 2);
- TransformTensorBilinear: for each output pixel (x, y), the input position from the matrix's
  first two rows (pixel centres: + 0.5 in, - 0.5 out), bilinear, 0 outside the input;
- TransformLandmarks: each (x, y) through the matrix's first two rows.

This writes each one, with its options as constants, as a small TensorFlow function, converts it
with TFLite's converter to builtin operators only, and splices those operators into the model in
the custom operator's place, on the same input and output tensors. Two more changes:
- MediaPipe's LandmarksRefinementCalculator, which the graph runs after the model, becomes the
  model's last output, ``landmarks``: the 478 points (the lips' and eyes' over the mesh's, the
  irises after them with their eye's mean z);
- the model reads a crop as OpenCV warps it: BGR, OpenCV's channel order (the first convolution's
  kernel has its input channels reversed: weights moved, none changed), and bytes (a uint8 input
  quantised with scale 1/255, dequantised by the graph into the float input in [0, 1] it had).
Every other operator, weight and version is the wheel's. The result,
``face_landmark_with_attention.tflite``, runs in one interpreter call (no Python between its
parts); ``face_landmark_with_attention.json`` names its input's channel order, its outputs and the
refinement's index maps, and lists the custom operators it replaced with their options.

tests/test_landmark_kernels.py checks each spliced operator against the custom operator's
semantics, and ``landmarks`` against the calculator's (tests/mediapipe_ops.py), on the shipped
model's own tensors for real faces; tests/test_landmarks.py that the shipped files are what this
script makes from the wheel.

Needs TensorFlow (painedge[train]) and mediapipe: a build step, never the daemon's.
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import importlib.util
import json
import os
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


# ---------------------------------------------------------------- the custom operators, as TensorFlow
# Each takes all the operators of its kind that stand together in the graph at once (the three regions'
# matrices, their three crops of one feature map, the five point sets), so the graph gains a few dozen
# operators rather than a few hundred.


def landmarks_to_transform_matrix(tf: Any, options: list[dict[str, Any]], landmarks: list[Any]) -> list[Any]:
    """K regions' matrices (K, 1, 4, 4) from their K landmark tensors (1, N, 3)."""
    import numpy as np

    k, n = len(options), int(landmarks[0].shape[1])
    xy = tf.reshape(tf.concat([lm[..., :2] for lm in landmarks], axis=0), [k * n, 2])
    ends = tf.reshape(tf.gather(xy, [[o["left_rotation_idx"] + i * n, o["right_rotation_idx"] + i * n]
                                     for i, o in enumerate(options)]), [k, 2, 2])
    d = ends[:, 1] - ends[:, 0]
    target = np.array([o.get("target_rotation_radians", 0.0) for o in options], np.float32)
    r = target - tf.atan2(d[:, 1], d[:, 0])
    c, s = tf.cos(r)[:, None], tf.sin(r)[:, None]
    # Each subset padded to the longest with its own first index: a repeated point moves no bound.
    width = max(len(o["subset_idxs"]) for o in options)
    subsets = [list(o["subset_idxs"]) + [o["subset_idxs"][0]] * (width - len(o["subset_idxs"])) for o in options]
    sub = tf.gather(xy, [[j + i * n for j in idx] for i, idx in enumerate(subsets)])  # (K, width, 2)
    ux, uy = c * sub[..., 0] - s * sub[..., 1], s * sub[..., 0] + c * sub[..., 1]  # upright: rotated by r
    x_lo, x_hi = tf.reduce_min(ux, axis=1), tf.reduce_max(ux, axis=1)
    y_lo, y_hi = tf.reduce_min(uy, axis=1), tf.reduce_max(uy, axis=1)
    c, s = c[:, 0], s[:, 0]
    mx, my = (x_lo + x_hi) / 2, (y_lo + y_hi) / 2
    cx, cy = c * mx + s * my, -s * mx + c * my  # the centre rotated back (by -r)
    w = np.array([o["output_width"] for o in options], np.float32)
    h = np.array([o["output_height"] for o in options], np.float32)
    sx = np.array([o["scale_x"] for o in options], np.float32) * (x_hi - x_lo) / w
    sy = np.array([o["scale_y"] for o in options], np.float32) * (y_hi - y_lo) / h
    a, b, dd, e = c * sx, s * sy, -s * sx, c * sy  # shift(centre) . rotate(-r) . scale(sx, sy) . shift(-w/2, -h/2)
    zero, one = tf.zeros([k]), tf.ones([k])
    m = tf.reshape(tf.stack([a, b, zero, cx - (a * w + b * h) / 2, dd, e, zero, cy - (dd * w + e * h) / 2,
                             zero, zero, one, zero, zero, zero, zero, one], axis=1), [k, 1, 4, 4])
    return [m[i] for i in range(k)]


def transform_tensor_bilinear(tf: Any, options: list[dict[str, Any]], x: Any, matrices: list[Any]) -> list[Any]:
    """K crops (1, out_h, out_w, C) of one feature map x (1, H, W, C), one per matrix."""
    import numpy as np

    _, in_h, in_w, channels = (int(v) for v in x.shape)
    out_h, out_w = int(options[0]["output_height"]), int(options[0]["output_width"])
    gy, gx = np.mgrid[0:out_h, 0:out_w].astype(np.float32) + np.float32(0.5)
    k = len(matrices)
    m = tf.reshape(tf.concat(matrices, axis=0), [k, 16])[:, :, None, None]
    tx = m[:, 0] * gx + m[:, 1] * gy + (m[:, 3] - 0.5)  # (K, out_h, out_w)
    ty = m[:, 4] * gx + m[:, 5] * gy + (m[:, 7] - 0.5)
    outside = tf.logical_or(tf.logical_or(tx < 0, tx > in_w - 1), tf.logical_or(ty < 0, ty > in_h - 1))
    x0f, y0f = tf.floor(tx), tf.floor(ty)
    fx, fy = (tx - x0f)[..., None], (ty - y0f)[..., None]
    x0 = tf.cast(tf.clip_by_value(x0f, 0, in_w - 1), tf.int32)
    row0 = tf.cast(tf.clip_by_value(y0f, 0, in_h - 1), tf.int32) * in_w
    # The kernel reads 0 past the last row and column; inside the input a neighbour is past it only
    # when the position is exactly on the edge, where its weight is 0, so clipping reads the same.
    x1, row1 = tf.minimum(x0 + 1, in_w - 1), tf.minimum(row0 + in_w, (in_h - 1) * in_w)
    flat = tf.reshape(x, [in_h * in_w, channels])
    tl, tr = tf.gather(flat, row0 + x0), tf.gather(flat, row0 + x1)
    bl, br = tf.gather(flat, row1 + x0), tf.gather(flat, row1 + x1)
    top = tl + fx * (tr - tl)
    bottom = bl + fx * (br - bl)
    out = (top + fy * (bottom - top)) * (1.0 - tf.cast(outside, tf.float32))[..., None]
    return [out[i:i + 1] for i in range(k)]


def transform_landmarks(tf: Any, options: list[dict[str, Any]], points: list[Any], matrices: list[Any]) -> list[Any]:
    """Each point set (1, N, 2) through the first two rows of its matrix (1, 4, 4)."""
    import numpy as np

    sizes = [int(p.shape[1]) for p in points]
    unique = list(dict.fromkeys(id(m) for m in matrices))
    rows = tf.reshape(tf.concat([next(m for m in matrices if id(m) == u) for u in unique], axis=0), [len(unique), 16])
    per_point = np.repeat([unique.index(id(m)) for m in matrices], sizes)
    r = tf.gather(rows, per_point)  # (sum N, 16): each point's matrix
    p = tf.concat([q[0] for q in points], axis=0)
    out = tf.stack([p[:, 0] * r[:, 0] + p[:, 1] * r[:, 1] + r[:, 3], p[:, 0] * r[:, 4] + p[:, 1] * r[:, 5] + r[:, 7]],
                   axis=-1)
    starts = np.cumsum([0, *sizes])
    return [out[None, a:b] for a, b in zip(starts[:-1], starts[1:])]


def block_function(tf: Any, ops: list[tuple[str, dict[str, Any], list[str], list[str]]], inputs: list[str],
                   shapes: dict[str, list[int]]) -> Any:
    """A TensorFlow function for consecutive custom operators (kind, options, input names, output names): the
    block's outside inputs in, every operator's output out, in order."""

    @tf.function(input_signature=[tf.TensorSpec(shapes[n], tf.float32, name=f"in_{i}") for i, n in enumerate(inputs)])
    def f(*args: Any) -> Any:
        values = dict(zip(inputs, args))
        done = 0
        while done < len(ops):
            kind = ops[done][0]
            group = []
            for op in ops[done:]:  # the next operators of this kind that do not read each other
                if op[0] != kind or any(i in {o for g in group for o in g[3]} for i in op[2]):
                    break
                group.append(op)
            options = [g[1] for g in group]
            if kind == "Landmarks2TransformMatrix":
                outs = landmarks_to_transform_matrix(tf, options, [values[g[2][0]] for g in group])
            elif kind == "TransformTensorBilinear":
                if len({g[2][0] for g in group}) != 1 or any(o != options[0] for o in options):
                    raise SystemExit("TransformTensorBilinear: one feature map and one output size per block expected")
                outs = transform_tensor_bilinear(tf, options, values[group[0][2][0]], [values[g[2][1]] for g in group])
            elif kind == "TransformLandmarks":
                mats = [values[g[2][1]] for g in group]
                outs = transform_landmarks(tf, options, [values[g[2][0]] for g in group], mats)
            else:
                raise SystemExit(f"custom operator {kind!r} is not one this script writes as builtins")
            for g, out in zip(group, outs):
                values[g[3][0]] = out
            done += len(group)
        return [values[o[3][0]] for o in ops]

    return f


# ---------------------------------------------------------------- the refinement, as TensorFlow

# The refined points, in the order MediaPipe's LandmarksRefinementCalculator applies them
# (tensors_to_face_landmarks_with_attention.pbtxt): the lips and eyes overwrite the mesh's x and y at
# the indices of their region (z kept), the irises become points 468-477.
REFINED = ("lips", "left_eye", "right_eye", "left_iris", "right_iris")
IRIS_EYE = {"left_iris": "left_eye", "right_iris": "right_eye"}
EYE_CONTOUR = 16  # the first 16 points of an eye's list are its contour: each iris gets their mean z
LANDMARKS = "landmarks"  # the output this script adds: (478, 3) in the input's pixels, refined


def refinement(tf: Any, refine: dict[str, list[int]], shapes: list[list[int]]) -> Any:
    """mesh (1404 values) and the five regions' points -> the 478 refined landmarks (478, 3)."""
    import numpy as np

    sizes = [int(np.prod(sh)) // 2 for sh in shapes[1:]]
    source = np.arange(468)  # each landmark's row in [mesh x, y; lips; left eye; right eye; left iris; right iris]
    row = 468
    for region, n in zip(REFINED, sizes):
        if region in refine:
            source[np.asarray(refine[region])] = np.arange(row, row + n)
        else:
            source = np.concatenate([source, np.arange(row, row + n)])
        row += n
    contours = np.concatenate([refine[IRIS_EYE[i]][:EYE_CONTOUR] for i in ("left_iris", "right_iris")])
    iris_z = np.concatenate([np.full(5, 468), np.full(5, 469)])  # each iris's five points: its eye's mean z

    @tf.function(input_signature=[tf.TensorSpec(sh, tf.float32, name=f"in_{i}") for i, sh in enumerate(shapes)])
    def f(mesh: Any, *regions: Any) -> Any:
        m = tf.reshape(mesh, [468, 3])
        xy = tf.gather(tf.concat([m[:, :2], *(tf.reshape(r, [-1, 2]) for r in regions)], axis=0), source)
        z_eyes = tf.reduce_mean(tf.reshape(tf.gather(m[:, 2], contours), [2, EYE_CONTOUR]), axis=1)
        z = tf.gather(tf.concat([m[:, 2], z_eyes], axis=0), np.concatenate([np.arange(468), iris_z]))
        return tf.concat([xy, z[:, None]], axis=1)

    return f


# ---------------------------------------------------------------- splicing


def _builtin_model(tf: Any, schema: Any, fn: Any) -> Any:
    conv = tf.lite.TFLiteConverter.from_concrete_functions([fn.get_concrete_function()], fn)
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    return schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(conv.convert(), 0))


def _splice(tf: Any, schema: Any, flexbuffers: Any, model: Any, block: list[Any], refine: dict[str, list[int]],
            replaced: list[dict[str, Any]]) -> list[Any]:
    """Builtin operators that compute ``block`` (consecutive custom operators) on the same tensors."""
    g = model.subgraphs[0]
    name = lambda t: g.tensors[t].name.decode()  # noqa: E731
    ops, inputs = [], []
    made = {t for op in block for t in op.outputs}
    for op in block:
        kind = model.operatorCodes[op.opcodeIndex].customCode.decode()
        options = flexbuffers.Loads(bytes(op.customOptions)) if op.customOptions is not None else {}
        if "subset_idxs" in options:
            refine[REGION_BY_FIRST_INDEX[options["subset_idxs"][0]]] = list(options["subset_idxs"])
        ops.append((kind, options, [name(t) for t in op.inputs], [name(t) for t in op.outputs]))
        inputs += [t for t in op.inputs if t not in made and t not in inputs]
        replaced.append({"op": kind, "inputs": ops[-1][2], "outputs": ops[-1][3], "options": options})
    fn = block_function(tf, ops, [name(t) for t in inputs], {name(t): list(g.tensors[t].shape) for t in inputs})
    spliced, _ = _insert(tf, schema, model, fn, inputs, [op.outputs[0] for op in block])
    return spliced


def _insert(tf: Any, schema: Any, model: Any, fn: Any, inputs: list[int], outputs: list[int | str]) -> tuple[list[Any], list[int]]:
    """The builtin operators of ``fn`` converted, reading the tensors ``inputs`` and writing ``outputs``: an
    existing tensor (its index) or a new one (its name). The tensors, buffers and operator codes they need are
    added to ``model``; returns the operators, in order, and the output tensors' indices."""
    g = model.subgraphs[0]
    name = lambda t: g.tensors[t].name.decode()  # noqa: E731
    code_of = lambda c: (max(c.builtinCode, c.deprecatedBuiltinCode), c.version)  # noqa: E731
    glue = _builtin_model(tf, schema, fn)
    if len(glue.subgraphs) != 1:
        raise SystemExit(f"the converter made {len(glue.subgraphs)} subgraphs for one function")
    gg = glue.subgraphs[0]
    # The converter names the glue's inputs after their TensorSpecs (in_0, in_1, ...) and its outputs by
    # position (Identity, Identity_1, ...), in its own order: match both by name, never by position.
    by_in = {gg.tensors[t].name.decode(): t for t in gg.inputs}
    by_out = {gg.tensors[t].name.decode(): t for t in gg.outputs}
    want_in, want_out = [f"in_{i}" for i in range(len(inputs))], ["Identity"] + [f"Identity_{i}" for i in range(1, len(outputs))]
    if sorted(by_in) != sorted(want_in) or sorted(by_out) != sorted(want_out):
        raise SystemExit(f"the converter's inputs {sorted(by_in)} and outputs {sorted(by_out)} are not the function's")
    glue_outs = [by_out[n] for n in want_out]
    tmap = {by_in[n]: t for n, t in zip(want_in, inputs)}
    prefix = next((name(t) for t in outputs if isinstance(t, int)), None) or str(outputs[0])
    for mine, theirs in zip(glue_outs, outputs):
        if isinstance(theirs, str):  # a new tensor: the glue's own, named
            tensor = copy.deepcopy(gg.tensors[mine])
            model.buffers.append(schema.BufferT())
            tensor.buffer, tensor.name = len(model.buffers) - 1, theirs.encode()
            g.tensors.append(tensor)
            tmap[mine] = len(g.tensors) - 1
        else:
            tmap[mine] = theirs
    for mine, theirs in tmap.items():
        a, b = gg.tensors[mine], g.tensors[theirs]
        if list(a.shape) != list(b.shape) or a.type != b.type:
            raise SystemExit(f"{name(theirs)}: shape {list(a.shape)}, type {a.type} from the converter; the model "
                             f"has {list(b.shape)}, type {b.type}")
    codes = {code_of(c): i for i, c in enumerate(model.operatorCodes) if c.customCode is None}
    for t, tensor in enumerate(gg.tensors):
        if t in tmap:
            continue
        tensor = copy.deepcopy(tensor)
        buffer = glue.buffers[tensor.buffer]
        model.buffers.append(copy.deepcopy(buffer) if buffer.data is not None else schema.BufferT())
        tensor.buffer = len(model.buffers) - 1
        tensor.name = f"{prefix}/{tensor.name.decode()}".encode()
        g.tensors.append(tensor)
        tmap[t] = len(g.tensors) - 1
    spliced = []
    for gop in gg.operators:
        key = code_of(glue.operatorCodes[gop.opcodeIndex])
        if key not in codes:
            model.operatorCodes.append(copy.deepcopy(glue.operatorCodes[gop.opcodeIndex]))
            codes[key] = len(model.operatorCodes) - 1
        gop = copy.deepcopy(gop)
        gop.opcodeIndex = codes[key]
        gop.inputs = [tmap[t] if t >= 0 else -1 for t in gop.inputs]
        gop.outputs = [tmap[t] for t in gop.outputs]
        spliced.append(gop)
    return spliced, [tmap[t] for t in glue_outs]


def _take_bgr(model: Any, schema: Any) -> None:
    """Make the model read BGR (OpenCV's order) instead of RGB: the one convolution on the input gets its
    kernel's input channels reversed (the weights moved, none changed), so no frame needs converting."""
    import numpy as np

    g = model.subgraphs[0]
    users = [op for op in g.operators if g.inputs[0] in op.inputs]
    code = lambda op: max(model.operatorCodes[op.opcodeIndex].builtinCode,  # noqa: E731
                          model.operatorCodes[op.opcodeIndex].deprecatedBuiltinCode)
    if len(users) != 1:
        raise SystemExit(f"the input feeds {len(users)} operators: this script reorders the channels of one convolution")
    if code(users[0]) != schema.BuiltinOperator.CONV_2D or users[0].inputs[0] != g.inputs[0]:
        raise SystemExit("the input does not feed a convolution's data: this script cannot reorder its channels")
    kernel = users[0].inputs[1]
    producer = [op for op in g.operators if kernel in op.outputs]
    if producer:  # weights stored in float16, dequantised by the graph
        if code(producer[0]) != schema.BuiltinOperator.DEQUANTIZE:
            raise SystemExit("the first convolution's kernel is computed: this script cannot reorder its channels")
        kernel = producer[0].inputs[0]
    tensor = g.tensors[kernel]
    sharing = [t for t in g.tensors if t.buffer == tensor.buffer]
    if len(sharing) != 1 or sum(kernel in op.inputs for op in g.operators) != 1:
        raise SystemExit("the first convolution's kernel is shared with other operators: reordering it would change them")
    dtype = {schema.TensorType.FLOAT16: np.float16, schema.TensorType.FLOAT32: np.float32}[tensor.type]
    buffer = model.buffers[tensor.buffer]
    w = np.frombuffer(bytes(buffer.data), dtype).reshape(list(tensor.shape))  # (out, kh, kw, in): in is RGB
    if w.shape[-1] != 3:
        raise SystemExit(f"the first convolution takes {w.shape[-1]} channels, not 3")
    buffer.data = np.ascontiguousarray(w[..., ::-1]).view(np.uint8).reshape(-1)


def _take_uint8(model: Any, schema: Any) -> None:
    """Make the model read the crop's bytes: a uint8 input quantised with scale 1/255, which the graph's first
    operator dequantises into the float tensor in [0, 1] that the model had as its input."""
    g = model.subgraphs[0]
    old = g.inputs[0]
    tensor = copy.deepcopy(g.tensors[old])
    tensor.type = schema.TensorType.UINT8
    q = schema.QuantizationParametersT()
    q.scale, q.zeroPoint = [1.0 / 255.0], [0]
    tensor.quantization = q
    model.buffers.append(schema.BufferT())
    tensor.buffer = len(model.buffers) - 1
    g.tensors[old].name = g.tensors[old].name + b"/float"  # the float input is now the dequantised bytes
    g.tensors.append(tensor)
    g.inputs = [len(g.tensors) - 1]
    code = schema.OperatorCodeT()  # DEQUANTIZE of uint8 is the operator's version 1
    code.builtinCode = code.deprecatedBuiltinCode = schema.BuiltinOperator.DEQUANTIZE
    code.version = 1
    model.operatorCodes.append(code)
    op = schema.OperatorT()
    op.opcodeIndex, op.inputs, op.outputs = len(model.operatorCodes) - 1, [g.inputs[0]], [old]
    g.operators = [op, *g.operators]


def fuse(src: Path) -> tuple[bytes, dict[str, Any]]:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import flatbuffers
    import tensorflow as tf
    from flatbuffers import flexbuffers
    from ai_edge_litert import schema_py_generated as schema

    data = src.read_bytes()
    model = schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(data, 0))
    if len(model.subgraphs) != 1:
        raise SystemExit(f"{src}: expected one subgraph, found {len(model.subgraphs)}")
    g = model.subgraphs[0]
    name = lambda t: g.tensors[t].name.decode()  # noqa: E731
    operators: list[Any] = []
    replaced: list[dict[str, Any]] = []
    refine: dict[str, list[int]] = {}
    block: list[Any] = []  # consecutive custom operators, spliced as one
    for op in [*g.operators, None]:
        opcode = None if op is None else model.operatorCodes[op.opcodeIndex]
        if opcode is not None and opcode.customCode is not None:
            block.append(op)
            continue
        if block:
            operators += _splice(tf, schema, flexbuffers, model, block, refine, replaced)
            block = []
        if op is not None:
            operators.append(op)
    by_name = {name(t): t for t in g.outputs}
    missing = [v for v in OUTPUTS.values() if v not in by_name]
    if missing or set(refine) != set(REGION_BY_FIRST_INDEX.values()):
        raise SystemExit(f"{src}: not the model this script knows (outputs missing {missing}, regions {sorted(refine)})")
    regions = [by_name[OUTPUTS["mesh"]], *(by_name[OUTPUTS[r]] for r in REFINED)]
    tail, (landmarks,) = _insert(tf, schema, model, refinement(tf, refine, [list(g.tensors[t].shape) for t in regions]),
                                 regions, [LANDMARKS])
    operators += tail
    g.outputs = [*g.outputs, landmarks]
    g.operators = operators
    _take_bgr(model, schema)
    _take_uint8(model, schema)
    used = sorted({op.opcodeIndex for op in g.operators})  # the custom operators' codes go
    for op in g.operators:
        op.opcodeIndex = used.index(op.opcodeIndex)
    model.operatorCodes = [model.operatorCodes[c] for c in used]
    model.signatureDefs, model.metadata, model.metadataBuffer = [], [], []
    builder = flatbuffers.Builder(1 << 22)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    plan = {"source": {"file": src.name, "sha256": hashlib.sha256(data).hexdigest()}, "model": f"{PREFIX}.tflite",
            "input": name(g.inputs[0]), "input_shape": [int(x) for x in g.tensors[g.inputs[0]].shape],
            "input_channels": "BGR", "input_dtype": "uint8",
            "outputs": {**OUTPUTS, LANDMARKS: LANDMARKS}, "refine": refine, "replaced": replaced}
    return bytes(builder.Output()), plan


def main() -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("model", nargs="?", default=None)
    ap.add_argument("--out", default=str(Path(__file__).resolve().parents[1] / "painedge" / "landmarks" / "models"))
    args = ap.parse_args()
    src = Path(args.model) if args.model else wheel_model()
    out = Path(args.out)
    content, plan = fuse(src)
    (out / plan["model"]).write_bytes(content)
    (out / f"{PREFIX}.json").write_text(json.dumps(plan, indent=1) + "\n")
    print(f"{src} -> {out}: {plan['model']} and {PREFIX}.json ({len(plan['replaced'])} custom operators written as "
          f"builtins)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
