"""The settings: one pydantic model per concern, each field with its default, range and description.

Every number has a range that the daemon can live with, so a value that validates cannot break it
later. This module imports nothing from the daemon's run time (no model, camera or socket code):
loading or checking settings never starts anything.
"""

from __future__ import annotations

import ipaddress
import os
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from .errors import echo
from .network import check_endpoint, host_and_port, is_loopback_host, listen_address

# The model shipped in the package (painedge/models/, package data); painedge.model.DEFAULT_MODEL is this file.
DEFAULT_MODEL = Path(str(resources.files("painedge").joinpath("models"))) / "painedge-edge-int8.tflite"


# ---------------------------------------------------------------- field types


def _given(fix: str) -> BeforeValidator:
    """Refuses a blank string, saying what to give instead."""
    def check(v: Any) -> Any:
        if isinstance(v, str) and not v.strip():
            raise ValueError(f"is empty: {fix}")
        return v
    return BeforeValidator(check)


def _sane_path(p: Path) -> Path:
    """A path the OS can take: no NUL, each component within NAME_MAX, the whole within PATH_MAX."""
    text = str(p)
    if "\x00" in text:
        raise ValueError("contains a NUL character")
    raw = os.fsencode(text)
    if len(raw) > 4095:
        raise ValueError(f"is {len(raw)} bytes long; a path has at most 4095 (PATH_MAX)")
    for part in p.parts:
        if len(os.fsencode(part)) > 255:
            raise ValueError(f"has a name of {len(os.fsencode(part))} bytes ({echo(part)}); each part of a path "
                             f"has at most 255 (NAME_MAX)")
    return p


def _endpoint_or_off(v: str) -> str:
    return check_endpoint(v) if v else v


def _metrics_listen(v: str) -> str:
    bare, _port = listen_address(v, "expected HOST:PORT with a port of 1-65535 (or 0 for a free one), e.g. "
                                    "127.0.0.1:9108", defaults=True)
    if bare not in ("localhost", ""):
        try:
            ipaddress.ip_address(bare)
        except ValueError:
            raise ValueError(f"{echo(v.rpartition(':')[0])} is not an IP address (use 127.0.0.1, or 0.0.0.0 for "
                             f"all interfaces)") from None
    return v


def _in_order(section: BaseModel, *keys: str) -> None:
    """Refuses a section whose values of these keys do not rise (each at most the next)."""
    values = [getattr(section, k) for k in keys]
    if values != sorted(values):
        raise ValueError(f"need {' <= '.join(keys)}, got {', '.join(f'{k} = {v}' for k, v in zip(keys, values))}")


FsPath = Annotated[Path, _given("give a path, or leave the key out for the default"), AfterValidator(_sane_path)]
SourceSpec = Annotated[str, _given("give demo, a video file, a device index or /dev/videoN, an rtsp:// or http:// "
                                   "URL, or gst:<pipeline>")]
Endpoint = Annotated[str, AfterValidator(check_endpoint)]
EndpointOrOff = Annotated[str, AfterValidator(_endpoint_or_off)]
ListenAddress = Annotated[str, AfterValidator(_metrics_listen)]


class Section(BaseModel):
    # allow_inf_nan=False: `inf` or `nan` would pass every ge/le bound test that compares false
    # (nan) or sits beyond any timer (inf: an alert that never raises). No setting needs them.
    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True, allow_inf_nan=False)


class SourceSettings(Section):
    """Where frames come from."""

    source: SourceSpec = Field("demo", max_length=4096,
                        description="demo (the built-in synthetic face), a video file, a V4L2 camera (0 or "
                                    "/dev/video0), an rtsp:// or http(s):// URL, or gst:<GStreamer pipeline> (needs an "
                                    "OpenCV built with GStreamer; pip's is not)")
    loop: bool = Field(True, description="restart a video file when it ends")
    realtime: bool = Field(True, description="pace a video file to its own frame rate (false: as fast as possible)")
    # The demo script is rendered at this rate; under 1 fps it has no frame at all (and the
    # frame count would be zero), over 60 it only burns CPU a bedside camera never would.
    demo_fps: float = Field(15.0, ge=1, le=60, description="frames per second of the demo source")
    # 16 px is the least a driver accepts; 8192 is beyond any camera a bed would have (8K).
    width: int | None = Field(None, ge=16, le=8192, description="ask a camera for this width (pixels)",
                              json_schema_extra={"example": 1280})
    height: int | None = Field(None, ge=16, le=8192, description="ask a camera for this height (pixels)",
                               json_schema_extra={"example": 720})
    # Under 0.1 s a healthy 15 fps camera would be "stalled" between frames; over 10 minutes
    # a dead camera goes unreported for too long on a monitor.
    stall_after_s: float = Field(5.0, ge=0.1, le=600,
                                 description="no frame for this long (seconds): the camera is reported stalled and "
                                             "reopened")
    # The backoff doubles from initial to max: it must stay short enough that a camera that
    # comes back is used within a minute or so, and over 10 ms so a dead camera is not spun on.
    reconnect_initial_s: float = Field(0.5, ge=0.01, le=60,
                                       description="first wait (seconds) before reopening a failed camera; "
                                                   "doubles each time ...")
    reconnect_max_s: float = Field(10.0, ge=0.01, le=300, description="... up to this (seconds)")

    @model_validator(mode="after")
    def _backoff_ordered(self) -> "SourceSettings":
        _in_order(self, "reconnect_initial_s", "reconnect_max_s")
        return self


class FaceSettings(Section):
    """Face Mesh and the patient's own neutral face."""

    backend: Literal["litert", "mediapipe"] = Field(
        "litert", description="landmark backend: 'litert' (painedge's own tracker on Face Mesh's refined 478-point "
                              "model, no mediapipe import, no detector on every frame) or 'mediapipe' (MediaPipe's "
                              "Face Mesh graph, the same model; the landmarks agree to under 0.01 IOD)")
    max_faces: int = Field(2, ge=1, le=10, description="faces the mesh looks for; the largest is the patient")
    min_detection_confidence: float = Field(0.7, ge=0, le=1, description="Face Mesh detection confidence (the "
                                                                         "paper's setting)")
    min_tracking_confidence: float = Field(0.7, ge=0, le=1, description="Face Mesh tracking confidence (the "
                                                                        "paper's setting)")
    # The landmark model is most of a frame's time: a second thread took its first part from 1.15 to
    # 0.80 ms here (2 cores). More threads than cores only contend; 8 is more than any Jetson has.
    threads: int = Field(1, ge=1, le=8, description="TFLite threads for the landmark models (the litert backend; "
                                                    "MediaPipe's graph keeps its own); 2 on a 4- or 6-core Jetson "
                                                    "shortens the landmark stage")
    # 9,000 frames is 10 minutes at 15 fps: a neutral older than that may no longer be the
    # patient's (position, lighting). Under 10 frames it is noise.
    baseline_window_frames: int = Field(900, ge=10, le=9000,
                                        description="frames the patient's neutral face is learnt over")
    # 3,600 frames is 2-4 minutes: longer, a patient who left would still be "present".
    lost_after_frames: int = Field(15, ge=1, le=3600,
                                   description="frames without a face before the face counts as lost (a flicker of "
                                               "a frame or two does not)")
    # An hour: beyond it a returning face is a new patient anyway (the identity check catches a new face sooner).
    reset_after_lost_s: float = Field(60.0, ge=1, le=3600,
                                      description="a face back after being gone this long is measured as a new "
                                                  "patient: their neutral face is learnt again")


class GateSettings(Section):
    """The paper's frame-skip gate."""

    enabled: bool = Field(True, description="skip frames whose landmarks barely moved (false: every frame is "
                                            "analysed)")
    # In inter-ocular distances: a move of 10 IOD is the head leaving the frame, so a larger
    # threshold would only ever pass the every-Nth frame.
    threshold: float = Field(0.05, ge=0, le=10,
                             description="mean landmark move (in inter-ocular distances) below which a frame may be "
                                         "skipped (paper: 0.05)")
    # 1,000 frames is over a minute between model runs at 15 fps: beyond it a still patient's
    # level would be stale for too long.
    interval_frames: int = Field(10, ge=1, le=1000, description="every Nth frame passes regardless (paper: 10)")


class ModelSettings(Section):
    """The pain model."""

    path: FsPath = Field(DEFAULT_MODEL, description="a .tflite model with its .json metadata beside it; unset: "
                                                    "the model shipped in the package",
                         json_schema_extra={"example": "/etc/painedge/models/painedge-edge-int8.tflite",
                                            "commented": True})
    threads: int = Field(1, ge=1, le=8, description="TFLite interpreter threads (a Nano has 4 cores; Face Mesh "
                                                    "uses the others)")


class AssessSettings(Section):
    """Smoothing the model's levels."""

    # Over 10 s the smoothed level lags a grimace by longer than the 3 s alert rule itself,
    # which delays alerts; 0 turns smoothing off.
    smoothing_s: float = Field(1.5, ge=0, le=10, description="time constant (seconds) of the probability smoothing")
    cue_weight: float = Field(0.5, ge=0, le=1, description="how much the PSPI cue weighs in the published level "
                                                           "(0: the model alone, 1: the cue alone)")


class PublishSettings(Section):
    """The ZeroMQ sockets stations connect to."""

    pub: Endpoint = Field("tcp://127.0.0.1:5556", max_length=300,
                     description="ZeroMQ PUB bind address (beyond loopback only with CURVE, see [security])")
    replay: EndpointOrOff = Field("tcp://127.0.0.1:5557", max_length=300,
                        description="ZeroMQ ROUTER bind address of the snapshot/replay service (\"\" turns it off)")
    # Stations mark a bed stale after 3 s of silence (`painedge listen --stale-after`): the
    # heartbeat must come well within that, so at most 10 s. Under 0.1 s it floods every
    # station (1e-9 sent 390,001 messages in 12 s).
    heartbeat_s: float = Field(1.0, ge=0.1, le=10, description="seconds between heartbeats")


class StateSettings(Section):
    """The alert journal."""

    dir: FsPath | None = Field(None, description="where the alert journal lives (default: $STATE_DIRECTORY, as "
                                                 "systemd's StateDirectory= sets it, else ~/.local/state/painedge)",
                               json_schema_extra={"example": "/var/lib/painedge"})
    # SQLite takes at most 2^63-1 in LIMIT; 10 million rows is years of alerts and status
    # changes and a few GB, as much as a Nano's SD card should hold.
    retention_rows: int = Field(100_000, ge=100, le=10_000_000, description="journal rows kept (oldest go first)")
    # A few hours at least, so a station off over a break can still catch up; ten years at most.
    retention_days: float = Field(30.0, ge=0.1, le=3650, description="days journal rows are kept")

    @property
    def resolved_dir(self) -> Path:
        if self.dir is not None:
            return self.dir
        env = os.environ.get("STATE_DIRECTORY")
        if env:
            return Path(env.split(":")[0])
        base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
        return Path(base) / "painedge"


class AlertSettings(Section):
    """When a pain alert is raised, escalated and cleared."""

    enabled: bool = Field(True, description="raise alerts (false: readings only; no alert ever reaches a station)")
    raise_level: int = Field(3, ge=1, le=4, description="raise at this smoothed level or above (3 Severe) ...")
    # The timers are clinical: a nurse should hear of Severe pain within a minute, so no hold
    # may exceed 60 s (inf or 1e308 here used to switch alerting off unnoticed).
    raise_after_s: float = Field(3.0, ge=0, le=60, description="... held this long (seconds)")
    escalate_level: int = Field(4, ge=1, le=4, description="escalate at this level (4 Extreme) ...")
    escalate_after_s: float = Field(2.0, ge=0, le=60, description="... held this long (seconds)")
    clear_below: int = Field(2, ge=1, le=4, description="clear when the level stays below this (2 Moderate) ...")
    # Clearing may wait longer (hysteresis), but not past 10 minutes: an alert that never
    # clears hides the next episode.
    clear_after_s: float = Field(10.0, ge=0, le=600, description="... for this long (seconds)")
    # One hour at most: a longer quiet period would mute a new Severe episode for a whole shift
    # (Extreme always raises regardless).
    cooldown_s: float = Field(60.0, ge=0, le=3600,
                              description="after clearing, no new alert for this long (seconds; Extreme always raises)")

    @model_validator(mode="after")
    def _ordered(self) -> "AlertSettings":
        _in_order(self, "clear_below", "raise_level", "escalate_level")
        return self


class SecuritySettings(Section):
    """CURVE encryption and who may connect."""

    server_secret_key: FsPath | None = Field(None, description="this device's CURVE secret key file (from "
                                                               "`painedge keys generate NAME`); turns CURVE on",
                                             json_schema_extra={"example": "/etc/painedge/keys/bed-12.key_secret"})
    allowed_clients_dir: FsPath | None = Field(None, description="folder of the public key files (*.key) of the "
                                                                 "stations allowed to subscribe",
                                               json_schema_extra={"example": "/etc/painedge/stations"})
    insecure: bool = Field(False, description="allow a non-loopback bind without CURVE, and /metrics beyond "
                                              "loopback (a trusted network only)")


class MetricsSettings(Section):
    """The Prometheus endpoint."""

    enabled: bool = Field(True, description="serve Prometheus metrics over HTTP")
    listen: ListenAddress = Field("127.0.0.1:9108", max_length=300,
                        description="HOST:PORT of /metrics (port 1-65535, 0 for a free one); it shows the pain level "
                                    "and alert state, so beyond loopback only with security.insecure = true")

    @property
    def host_port(self) -> tuple[str, int]:
        host, port = host_and_port(self.listen)
        return host or "127.0.0.1", port


def _section(model: type[Section]) -> Any:
    """A section of Settings: its defaults, described by its docstring (the example file's section comment)."""
    return Field(default_factory=model, description=(model.__doc__ or "").strip())


class Settings(Section):
    """Everything painedge run reads: the device's name, its log level and one section per concern."""

    device_id: str = Field("bed-1", pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$",
                           description="this bed's name on the wire: topics are <kind>/<device_id> (letters, digits, "
                                       ". _ -; at most 64)")
    log_level: Literal["debug", "info", "warning", "error"] = Field("info", description="debug, info, warning or "
                                                                                        "error")
    source: SourceSettings = _section(SourceSettings)
    face: FaceSettings = _section(FaceSettings)
    gate: GateSettings = _section(GateSettings)
    model: ModelSettings = _section(ModelSettings)
    assess: AssessSettings = _section(AssessSettings)
    publish: PublishSettings = _section(PublishSettings)
    state: StateSettings = _section(StateSettings)
    alerts: AlertSettings = _section(AlertSettings)
    security: SecuritySettings = _section(SecuritySettings)
    metrics: MetricsSettings = _section(MetricsSettings)


def relations(s: Settings) -> list[tuple[tuple[str, ...], str]]:
    """Rules between sections, as (key path, problem) pairs; empty when all hold."""
    out: list[tuple[tuple[str, ...], str]] = []
    host = s.metrics.host_port[0]
    if s.metrics.enabled and not is_loopback_host(host) and not s.security.insecure:
        out.append((("metrics", "listen"),
                    f"/metrics on {echo(host)} would show the pain level and alert state to anyone on the network: "
                    f"keep it on 127.0.0.1, or set security.insecure = true on a trusted network"))
    if s.publish.replay and s.publish.replay == s.publish.pub:
        out.append((("publish", "replay"), "is the same endpoint as publish.pub: give the replay service its own"))
    return out
