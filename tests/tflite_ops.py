"""The (operator, version) pairs a .tflite file asks its interpreter for, read from the file itself.

An interpreter refuses a file that asks for an op version it does not register ("Didn't find op for builtin
opcode 'FULLY_CONNECTED' version '12'"): tflite-runtime 2.13.0, the Nano's, did exactly that with a
per-channel dynamic-range export. ``LOADED_BY_TFLITE_RUNTIME_2_13`` is every pair of the two files measured
to load and compute right under tflite-runtime 2.13.0 (its x86-64 build, Python 3.10, all 6,288 held-out
windows; models/README.md): version 2's full-integer file and version 2.1's dynamic-range file. A file
within them asks for nothing those runs did not load; a new pair needs a new measurement.
"""

from __future__ import annotations

from pathlib import Path

from ai_edge_litert import schema_py_generated as fb

_NAMES = {v: k for k, v in vars(fb.BuiltinOperator).items() if not k.startswith("_")}

LOADED_BY_TFLITE_RUNTIME_2_13 = frozenset({
    # version 2.1, int8-dynamic
    ("ADD", 1), ("BATCH_MATMUL", 1), ("CONCATENATION", 1), ("CONV_2D", 5), ("FILL", 1), ("FULLY_CONNECTED", 9),
    ("LOGISTIC", 1), ("MEAN", 1), ("MUL", 1), ("PACK", 1), ("RESHAPE", 1), ("REVERSE_V2", 1), ("SHAPE", 1),
    ("SOFTMAX", 1), ("SPLIT", 1), ("STRIDED_SLICE", 1), ("TANH", 1), ("TRANSPOSE", 1), ("UNPACK", 1),
    # version 2, int8
    ("ADD", 2), ("BATCH_MATMUL", 2), ("CONCATENATION", 2), ("CONV_2D", 3), ("DEQUANTIZE", 2), ("FILL", 3),
    ("FULLY_CONNECTED", 5), ("LOGISTIC", 2), ("MEAN", 2), ("MUL", 2), ("PACK", 2), ("QUANTIZE", 1),
    ("REVERSE_V2", 3), ("SOFTMAX", 2), ("SPLIT", 2), ("TANH", 2), ("TRANSPOSE", 2), ("UNPACK", 2),
})


# The landmark backend's files: BlazeFace and the refined mesh with its custom operators written as builtins
# and the refinement as builtins (scripts/fuse_landmark_model.py). Measured 2026-11-26: tflite-runtime 2.13.0
# (x86-64 build, Python 3.10) loads and runs both; on 10 real-face crops (8 frames of single_face.mp4,
# unbc_pain.png, laughing.jpg; uint8 BGR in) every output of the mesh is LiteRT's to 5.3e-5 crop pixels at most.
LANDMARKS_LOADED_BY_TFLITE_RUNTIME_2_13 = frozenset({
    ("ADD", 1), ("ATAN2", 1), ("CAST", 1), ("CONCATENATION", 1), ("CONV_2D", 1), ("COS", 1), ("DEPTHWISE_CONV_2D", 1),
    ("DEQUANTIZE", 1), ("DEQUANTIZE", 2), ("FLOOR", 1), ("GATHER", 1), ("GREATER", 1), ("LESS", 1), ("LOGICAL_OR", 1), ("MAX_POOL_2D", 1),
    ("MEAN", 1), ("MINIMUM", 1), ("MUL", 1), ("NEG", 1), ("PACK", 1), ("PAD", 1), ("PRELU", 1), ("REDUCE_MAX", 1),
    ("REDUCE_MIN", 1), ("RELU", 1), ("RESHAPE", 1), ("SIN", 1), ("STRIDED_SLICE", 1), ("SUB", 1),
})


def op_versions(path: str | Path) -> set[tuple[str, int]]:
    model = fb.Model.GetRootAsModel(Path(path).read_bytes(), 0)
    out = set()
    for i in range(model.OperatorCodesLength()):
        code = model.OperatorCodes(i)
        out.add((_NAMES[max(code.BuiltinCode(), code.DeprecatedBuiltinCode())], code.Version()))
    return out


_TYPES = {v: k for k, v in vars(fb.TensorType).items() if not k.startswith("_")}


def tensors(path: str | Path) -> list[tuple[str, str, tuple[int, ...]]]:
    """The main graph's tensors as (name, type, shape), by index, as the file declares them ('INT8', 'FLOAT32')."""
    graph = fb.Model.GetRootAsModel(Path(path).read_bytes(), 0).Subgraphs(0)
    out = []
    for i in range(graph.TensorsLength()):
        t = graph.Tensors(i)
        out.append((t.Name().decode(), _TYPES[t.Type()], tuple(int(d) for d in t.ShapeAsNumpy())))
    return out


def weights_of(path: str | Path, ops: tuple[str, ...]) -> list[tuple[str, str, tuple[int, ...]]]:
    """The weight tensor (second input) of each of the main graph's operators named in ``ops``."""
    model = fb.Model.GetRootAsModel(Path(path).read_bytes(), 0)
    graph, table = model.Subgraphs(0), tensors(path)
    out = []
    for i in range(graph.OperatorsLength()):
        op = graph.Operators(i)
        code = model.OperatorCodes(op.OpcodeIndex())
        if _NAMES[max(code.BuiltinCode(), code.DeprecatedBuiltinCode())] in ops:
            out.append(table[op.Inputs(1)])
    return out
