"""The wire schema checked by a validator that is not Python: Node.js with Ajv, in Ajv's default strict mode.

Station software in other languages validates painedge's messages with schema/messages.schema.json;
this proves that file compiles in a strict, widely used validator and accepts exactly what painedge
sends. Needs `node` and tests/node/node_modules (installed by `make test`: npm ci in tests/node).
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from painedge import messages as M

ROOT = Path(__file__).resolve().parents[1]
NODE_DIR = ROOT / "tests" / "node"
ENV = {"device_id": "bed-12", "seq": 41, "boot_id": "b" * 32, "ts": 1.7e9}
CUES = {"brow_lowering": 0.8, "orbital_tightening": 0.5, "levator": 0.2, "eye_closure": 1.0, "smile": 0.0, "pspi": 9.5}

GOOD = [
    M.Reading(**ENV, frame=120, level=3, level_name="Severe", probs=[0.05, 0.05, 0.1, 0.6, 0.2], smoothed_level=3,
              smoothed_level_name="Severe", cues=CUES, baseline_ready=True, explanation="eyes closed", capture_ts=1.7e9 - 0.02),
    M.Alert(**ENV, alert_id="a1b2c3d4e5f6", state="raised", priority="medium", frame=200, level=3, level_name="Severe",
            duration_s=0.0, explanation="brow lowering 0.8"),
    M.Heartbeat(**ENV, uptime_s=12.5, camera="up", face="present", fps_processed=14.8, level=None),
    M.Status(**ENV, camera="stalled", face="unknown", model="painedge-edge 2", alerts="off", detail="no frame for 5 s"),
]
BAD = [
    {**ENV, "kind": "heartbeat", "uptime_s": 1, "camera": "up", "face": True, "fps_processed": 3.0},  # schema 1's face
    {**ENV, "kind": "status", "camera": "on fire", "face": "present", "model": "m", "alerts": "on"},
    {**ENV, "kind": "status", "camera": "up", "face": "present", "model": "m"},  # no alerts on/off
    {**ENV, "kind": "alert", "alert_id": "x", "state": "snoozed", "priority": "medium", "frame": 1, "level": 3,
     "level_name": "Severe", "duration_s": 0, "explanation": ""},
    {**json.loads(GOOD[0].model_dump_json()), "probs": [0.5, 0.5]},
    {**json.loads(GOOD[0].model_dump_json()), "image": "aGVsbG8="},  # nothing beyond the schema, images least of all
]


def _node_validate(lines: list[str]) -> list[str]:
    node = shutil.which("node")
    if node is None or not (NODE_DIR / "node_modules" / "ajv").is_dir():
        pytest.fail("node and tests/node/node_modules are needed: run `make test` (it runs npm ci in tests/node)")
    out = subprocess.run([node, str(NODE_DIR / "validate.mjs"), str(ROOT / "schema" / "messages.schema.json")],
                         input="\n".join(lines) + "\n", capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr
    return out.stdout.splitlines()


def test_ajv_strict_compiles_the_schema_and_accepts_every_kind_painedge_sends():
    results = _node_validate([m.model_dump_json() for m in GOOD])
    assert results == ["ok"] * len(GOOD)


def test_ajv_refuses_what_the_python_models_refuse():
    results = _node_validate([json.dumps(b) for b in BAD])
    assert len(results) == len(BAD) and all(r != "ok" for r in results), results
    for b in BAD:  # the Python side agrees
        with pytest.raises(ValueError):
            M.MESSAGE.validate_python(b)
