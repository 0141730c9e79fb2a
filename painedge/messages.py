"""Messages on the wire: two ZeroMQ frames, the topic then UTF-8 JSON of one of these models.

Topics are ``<kind>/<device_id>`` with kind reading, alert, heartbeat or status,
so a subscriber filters by kind and by bed with ZeroMQ's prefix subscription
(``reading/`` for all beds' readings, ``status/bed-12`` for one bed's status).
Every payload carries schema_version, device_id, seq (one counter across all
kinds: +1 per message, so a gap means a lost message), boot_id (new at every
start) and ts (UTC epoch seconds of publishing). No image or face crop is ever
part of a message: only levels, cues and states.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from enum import Enum
from typing import Annotated, Iterable, Literal, Union, get_args

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

SCHEMA_VERSION = 2  # 2: face is one of FaceState in heartbeats too; status says whether alerts are on; readings
# say whether the patient's neutral face is learnt (baseline_ready)


# ---------------------------------------------------------------- the registry: one name per concept
# Every module (publisher, journal, daemon, metrics, client) names these through the enums below; the
# wire models' Literal types spell out the same values (checked at import), so the schema and the bytes are
# what they were.


class Name(str, Enum):
    """A str enum that reads as its value everywhere (logs, f-strings, metric labels), on 3.10 as on 3.12."""

    def __str__(self) -> str:
        return self.value

    def __format__(self, spec: str) -> str:
        return format(self.value, spec)


class Kind(Name):
    """A message's kind: the first part of its topic and its ``kind`` field."""

    READING = "reading"
    ALERT = "alert"
    HEARTBEAT = "heartbeat"
    STATUS = "status"


class AlertState(Name):
    RAISED = "raised"
    ESCALATED = "escalated"
    CLEARED = "cleared"


class Priority(Name):
    """IEC 60601-1-8's alarm priorities: Severe pain is medium, Extreme high."""

    MEDIUM = "medium"
    HIGH = "high"


class Alerting(Name):
    """Whether a device raises alerts at all (its ``alerts.enabled``), as its status says."""

    ON = "on"
    OFF = "off"

    @classmethod
    def of(cls, enabled: bool) -> Alerting:
        return cls.ON if enabled else cls.OFF


class FaceState(Name):
    PRESENT = "present"
    LOST = "lost"
    UNKNOWN = "unknown"

    @classmethod
    def of(cls, present: bool | None) -> FaceState:
        """The debounced face presence (None: not known yet) as a state."""
        return cls.UNKNOWN if present is None else (cls.PRESENT if present else cls.LOST)


class CameraState(Name):
    STARTING = "starting"
    UP = "up"
    STALLED = "stalled"
    DOWN = "down"
    ENDED = "ended"  # a file that ended, without loop


class Stage(Name):
    """The timed stages of a frame (the ``stage`` label of painedge_stage_latency_seconds)."""

    CAPTURE = "capture"
    LANDMARKS = "landmarks"
    GATE = "gate"
    INFERENCE = "inference"
    PUBLISH = "publish"


# The wire types: a Literal of each enum's values (the JSON Schema stays a plain string enum), written out so
# that a type checker can read them (it cannot evaluate a Literal built at run time). _check_wire_types makes sure
# at import that each still names exactly its enum's values, in their order.
ReadingKind = Literal["reading"]
AlertKind = Literal["alert"]
HeartbeatKind = Literal["heartbeat"]
StatusKind = Literal["status"]
FaceStateName = Literal["present", "lost", "unknown"]
CameraStateName = Literal["starting", "up", "stalled", "down", "ended"]
AlertStateName = Literal["raised", "escalated", "cleared"]
PriorityName = Literal["medium", "high"]
AlertingName = Literal["on", "off"]


def _check_wire_types() -> None:
    wire: list[tuple[object, Iterable[Enum]]] = [
        (ReadingKind, [Kind.READING]), (AlertKind, [Kind.ALERT]), (HeartbeatKind, [Kind.HEARTBEAT]),
        (StatusKind, [Kind.STATUS]), (FaceStateName, FaceState), (CameraStateName, CameraState),
        (AlertStateName, AlertState), (PriorityName, Priority), (AlertingName, Alerting)]
    for literal, members in wire:
        values = tuple(m.value for m in members)
        if get_args(literal) != values:
            raise TypeError(f"{literal} is not the wire type of {values}")


_check_wire_types()
KINDS = tuple(k.value for k in Kind)


def kinds_of(names: Iterable[str]) -> tuple[Kind, ...]:
    """Message kinds by name; ValueError naming the first unknown one and the kinds there are."""
    names = tuple(names)
    unknown = [n for n in names if n not in KINDS]
    if unknown:
        raise ValueError(f"{unknown[0]!r} is not a message kind; kinds are {', '.join(KINDS)}")
    return tuple(Kind(n) for n in names)


@dataclass(frozen=True)
class CueSpec:
    """One pain cue painedge reads from landmarks, 0 (absent) to 1 (maximal).

    ``name`` is its field everywhere: in ``face.Cues``, in a reading's ``cues`` on the wire, in the model's
    metadata and input vector, in `painedge cues` output. The registry lives here, beside the wire's other names,
    because the station and the clients read it without importing the face code (OpenCV).
    """

    name: str
    action_units: str  # the FACS action units it stands for (the wire field's description)
    words: str  # how explanations name it: 'brow lowering 0.8'
    header: str  # its column in `painedge cues`
    tightening: bool = False  # a tightening the behavioural scales count (CPOT "tense", BPS "tightened")


# The cues in the model's input order (face.Cues.vector). A cue added here changes the model's input and the wire
# schema; each place that names cues fails until it has it too (face.Cues and CueValues are checked at import,
# the explanations, the scales and `painedge cues` by tests/test_cue_registry.py).
CUES = (
    CueSpec("brow_lowering", "AU4", "brow lowering", "brow", tightening=True),
    CueSpec("orbital_tightening", "AU6/AU7", "eyes narrowed", "eyes_narrow", tightening=True),
    CueSpec("levator", "AU9/AU10", "upper lip raised", "lip_raise", tightening=True),
    CueSpec("eye_closure", "AU43", "eyes closed", "eyes_closed"),
    CueSpec("smile", "AU12", "smiling", "smile"),
)
CUE_NAMES = tuple(c.name for c in CUES)
PSPI = CueSpec("pspi", "PSPI estimate from landmarks, 0-16", "PSPI", "PSPI")  # the estimate made from the cues
CUE_FIELDS = (*CUE_NAMES, PSPI.name)  # a frame's cue values: the cues, then PSPI


class Envelope(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    schema_version: int = SCHEMA_VERSION
    device_id: str
    seq: int = Field(ge=0, description="one counter across all kinds, +1 per message")
    boot_id: str = Field(description="new at every start of the daemon")
    ts: float = Field(description="UTC epoch seconds when the message was published")


class CueValues(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    brow_lowering: float = Field(ge=0, le=1, description="AU4")
    orbital_tightening: float = Field(ge=0, le=1, description="AU6/AU7")
    levator: float = Field(ge=0, le=1, description="AU9/AU10")
    eye_closure: float = Field(ge=0, le=1, description="AU43")
    smile: float = Field(ge=0, le=1, description="AU12")
    pspi: float = Field(ge=0, le=16, description="PSPI estimate from landmarks, 0-16")


def check_cue_fields() -> None:
    """CueValues spells its fields out for type checkers (a model made at run time is opaque to them): they must
    still be the registry's cues and PSPI, in order, each described by what it stands for."""
    got = [(name, f.description) for name, f in CueValues.model_fields.items()]
    want = [(c.name, c.action_units) for c in (*CUES, PSPI)]
    if got != want:
        raise TypeError(f"CueValues has fields {got}; the cue registry (messages.CUES) says {want}")


check_cue_fields()


class Reading(Envelope):
    kind: ReadingKind = Kind.READING.value
    frame: int = Field(ge=0, description="the frame's index in its source")
    face: bool = True
    level: int = Field(ge=0, le=4)
    level_name: str
    probs: list[float] = Field(min_length=5, max_length=5, description="probability of each level 0-4")
    smoothed_level: int = Field(ge=0, le=4)
    smoothed_level_name: str
    cues: CueValues
    baseline_ready: bool = Field(description="false while the patient's own neutral face is still being learnt "
                                             "(the first seconds, or after a new face): the cues are provisional")
    explanation: str = Field(description="the cues in words, e.g. 'brow lowering 0.8, eyes closed'")
    capture_ts: float = Field(description="UTC epoch seconds when the frame was captured")


class Heartbeat(Envelope):
    kind: HeartbeatKind = Kind.HEARTBEAT.value
    uptime_s: float
    camera: CameraStateName
    face: FaceStateName
    fps_processed: float
    level: int | None = Field(None, description="the last smoothed level, none before the first reading")


class Status(Envelope):
    kind: StatusKind = Kind.STATUS.value
    camera: CameraStateName
    face: FaceStateName
    model: str = Field(description="name and version of the loaded model")
    alerts: AlertingName = Field(description="off: alerting is disabled in this device's settings")
    detail: str = ""


class Alert(Envelope):
    """Raised, escalated and cleared pain alerts (filled in by the alerting stage)."""

    kind: AlertKind = Kind.ALERT.value
    alert_id: str
    state: AlertStateName
    priority: PriorityName
    frame: int = Field(ge=0)
    level: int = Field(ge=0, le=4)
    level_name: str
    duration_s: float = Field(ge=0)
    explanation: str


AnyMessage = Union[Reading, Alert, Heartbeat, Status]
Message = Annotated[AnyMessage, Field(discriminator="kind")]
MESSAGE = TypeAdapter(Message)


def encode(msg: AnyMessage) -> list[bytes]:
    """The two frames of a message: topic, JSON."""
    return [f"{msg.kind}/{msg.device_id}".encode(), msg.model_dump_json().encode()]


def decode(frames: list[bytes]) -> AnyMessage:
    """Parse and validate a received message (raises pydantic.ValidationError or ValueError)."""
    if len(frames) != 2:
        raise ValueError(f"expected 2 frames (topic, JSON), got {len(frames)}")
    msg = MESSAGE.validate_json(frames[1])
    topic = frames[0].decode()
    if topic != f"{msg.kind}/{msg.device_id}":
        raise ValueError(f"topic {topic!r} does not match the payload ({msg.kind}/{msg.device_id})")
    return msg


def json_schema() -> str:
    """The JSON Schema of every message, for subscribers in other languages."""
    schema = MESSAGE.json_schema()
    # "discriminator" is OpenAPI's keyword, not JSON Schema's: strict validators (Ajv's default) refuse it.
    # The "kind" constant of each branch already tells the branches apart.
    schema.pop("discriminator", None)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = f"painedge messages, schema_version {SCHEMA_VERSION}"
    schema["description"] = (__doc__ or "").strip()
    return json.dumps(schema, indent=2, sort_keys=True) + "\n"
