"""Wire messages: topics, envelope, validation, and the JSON Schema file kept in the repo."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import ValidationError

from painedge import messages as M

ROOT = Path(__file__).resolve().parents[1]
CUES = {"brow_lowering": 0.8, "orbital_tightening": 0.5, "levator": 0.2, "eye_closure": 1.0, "smile": 0.0, "pspi": 9.5}
ENV = {"device_id": "bed-12", "seq": 41, "boot_id": "b" * 32, "ts": 1.7e9}


def test_reading_round_trips_with_its_topic():
    r = M.Reading(**ENV, frame=120, level=3, level_name="Severe", probs=[0.05, 0.05, 0.1, 0.6, 0.2], smoothed_level=3,
                  smoothed_level_name="Severe", cues=CUES, baseline_ready=False,
                  explanation="eyes closed, brow lowering 0.8", capture_ts=1.7e9 - 0.02)
    frames = M.encode(r)
    assert frames[0] == b"reading/bed-12"
    assert M.decode(frames) == r
    assert json.loads(frames[1])["schema_version"] == M.SCHEMA_VERSION


@pytest.mark.parametrize(
    "frames, error",
    [
        ([b"reading/bed-12"], ValueError),
        ([b"status/bed-12", b"{not json"], ValidationError),
        ([b"heartbeat/bed-99", json.dumps({**ENV, "kind": "heartbeat", "uptime_s": 1, "camera": "up",
                                            "face": "present", "fps_processed": 3.0}).encode()], ValueError),  # topic names another bed
        ([b"heartbeat/bed-12", json.dumps({**ENV, "kind": "heartbeat", "uptime_s": 1, "camera": "up", "face": True,
                                           "fps_processed": 3.0}).encode()], ValidationError),  # schema 1's boolean face
        ([b"status/bed-12", json.dumps({**ENV, "kind": "status", "camera": "up", "face": "present",
                                         "model": "m"}).encode()], ValidationError),  # no alerts on/off
        ([b"status/bed-12", json.dumps({**ENV, "kind": "status", "camera": "on fire", "face": "present",
                                         "model": "m"}).encode()], ValidationError),
    ],
)
def test_bad_messages_are_refused(frames, error):
    with pytest.raises(error):
        M.decode(frames)


def test_no_message_can_carry_an_image():
    # Privacy: only levels, cues and states cross the wire; every field is a number, a string or a short list.
    schema = json.loads(M.json_schema())
    for name, model in schema["$defs"].items():
        for field, spec in model.get("properties", {}).items():
            assert spec.get("type") != "string" or spec.get("format") is None, (name, field)
            assert "contentEncoding" not in spec and "binary" not in json.dumps(spec), (name, field)


def test_schema_file_in_the_repo_is_current():
    committed = (ROOT / "schema" / "messages.schema.json").read_text()
    assert committed == M.json_schema(), "run: painedge schema --out schema/messages.schema.json"
