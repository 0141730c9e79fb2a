"""Settings: pydantic models read from TOML, environment (PAINEDGE_...), and command-line flags.

Precedence, lowest first: defaults, the TOML file, environment variables,
flags. Unknown keys are errors. Every error names where the value came from
(the file and line, the environment variable, or the flag) and the key path:
an IT person should never read a traceback for a typo. Every number has a
range that the daemon can live with, so a value that validates cannot break
it later.

Environment: ``PAINEDGE_<SECTION>__<KEY>=value``, e.g.
``PAINEDGE_GATE__THRESHOLD=0.1``, ``PAINEDGE_DEVICE_ID=bed-12``; values are
TOML literals (``true``, ``0.1``, ``"text"``) or bare strings.

``preflight`` is the one check that ``painedge config check`` and ``painedge
run`` share: settings relations, the security rules and every file named.
"""

from __future__ import annotations

import ipaddress
import os
import re
import reprlib
import stat
import sys
import textwrap
from pathlib import Path
from typing import Annotated, Any, Literal, Mapping

from pydantic import (AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, field_validator,
                      model_validator)

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

from .model import DEFAULT_MODEL

DEFAULT_CONFIG = Path("/etc/painedge/painedge.toml")
ENV_PREFIX = "PAINEDGE_"
_ENV_NOT_SETTINGS = (f"{ENV_PREFIX}CONFIG", f"{ENV_PREFIX}TEST_DATA")
MAX_CONFIG_BYTES = 1 << 20  # a painedge.toml is a few KiB; more is not one (and /dev/zero must not hang us)
MAX_ERRORS_LISTED = 5  # an error message is one line a person reads: the first few problems, then a count
MAX_ECHO_CHARS = 60  # how much of a bad value, key or name is echoed back


class ConfigError(ValueError):
    """A configuration problem, already phrased for the user."""


# ---------------------------------------------------------------- field types


def _not_blank(v: Any) -> Any:
    if isinstance(v, str) and not v.strip():
        raise ValueError("is empty: give a path, or leave the key out for the default")
    return v


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
            raise ValueError(f"has a name of {len(os.fsencode(part))} bytes ({_echo(part)}); each part of a path "
                             f"has at most 255 (NAME_MAX)")
    return p


FsPath = Annotated[Path, BeforeValidator(_not_blank), AfterValidator(_sane_path)]


class Section(BaseModel):
    # allow_inf_nan=False: `inf` or `nan` would pass every ge/le bound test that compares false
    # (nan) or sits beyond any timer (inf: an alert that never raises). No setting needs them.
    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True, allow_inf_nan=False)


class SourceSettings(Section):
    """Where frames come from."""

    source: str = Field("demo", max_length=4096,
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

    @field_validator("source")
    @classmethod
    def _not_empty(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("is empty: give demo, a video file, a device index or /dev/videoN, an rtsp:// or "
                             "http:// URL, or gst:<pipeline>")
        return v

    @model_validator(mode="after")
    def _backoff_ordered(self) -> "SourceSettings":
        if self.reconnect_initial_s > self.reconnect_max_s:
            raise ValueError(f"need reconnect_initial_s <= reconnect_max_s, got {self.reconnect_initial_s} > "
                             f"{self.reconnect_max_s}")
        return self


class FaceSettings(Section):
    """Face Mesh and the patient's own neutral face."""

    backend: Literal["mediapipe", "litert"] = Field(
        "mediapipe", description="landmark backend: 'mediapipe' (its Face Mesh graph, 478 refined points; the "
                                 "shipped model was trained on it) or 'litert' (painedge's own tracker on Face Mesh's "
                                 "468-point model, no mediapipe import; the default once the model is retrained on it)")
    max_faces: int = Field(2, ge=1, le=10, description="faces the mesh looks for; the largest is the patient")
    min_detection_confidence: float = Field(0.7, ge=0, le=1, description="Face Mesh detection confidence (the "
                                                                         "paper's setting)")
    min_tracking_confidence: float = Field(0.7, ge=0, le=1, description="Face Mesh tracking confidence (the "
                                                                        "paper's setting)")
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


def _check_endpoint(v: str) -> str:
    """tcp://HOST:PORT (port 1-65535, or 0 / * for a free one), ipc://PATH or inproc://NAME."""
    if v.startswith("ipc://"):
        # A Unix socket path is at most 107 bytes (sun_path); libzmq would fail at bind.
        if not 0 < len(v[6:].encode()) <= 107:
            raise ValueError("an ipc:// path must be 1-107 bytes long (the Unix socket limit)")
        return v
    if v.startswith("inproc://"):
        if not v[9:]:
            raise ValueError("inproc:// needs a name")
        return v
    m = re.fullmatch(r"tcp://(\[[0-9A-Fa-f:.]+\]|[^\s:/\[\]]{1,253}):(\d{1,5}|\*)", v)
    if not m:
        raise ValueError("expected tcp://HOST:PORT, ipc://PATH or inproc://NAME")
    host, port = m.groups()
    if host.startswith("["):
        try:
            ipaddress.IPv6Address(host[1:-1])
        except ValueError:
            raise ValueError(f"{_echo(host)} is not an IPv6 address") from None
    # 0 or * asks the OS for a free port (ZeroMQ's wildcard): useful for tests, and the bound
    # endpoint is logged at start-up; stations need a fixed one.
    if port != "*" and int(port) > 65535:
        raise ValueError(f"port {port} is out of range (1-65535, or 0 / * for a free one)")
    return v


def host_header_is_loopback(value: str) -> bool:
    """Whether an HTTP Host header ("name", "name:port", "[v6]:port") names a loopback host. A server that is
    open on loopback answers only these: a page elsewhere whose DNS name rebinds to 127.0.0.1 sends its own."""
    name = value.split("]")[0] + "]" if value.startswith("[") else value.rsplit(":", 1)[0] if ":" in value else value
    return bool(value) and is_loopback_host(name)


def is_loopback(endpoint: str) -> bool:
    """True for ipc://, inproc:// and tcp:// on 127.0.0.0/8, ::1 or localhost."""
    if not endpoint.startswith("tcp://"):
        return True
    return is_loopback_host(endpoint[6:].rsplit(":", 1)[0])


def is_loopback_host(host: str) -> bool:
    """True for localhost and any loopback address (127.0.0.0/8, ::1; IPv6 with or without brackets)."""
    host = host.strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class PublishSettings(Section):
    """The ZeroMQ sockets stations connect to."""

    pub: str = Field("tcp://127.0.0.1:5556", max_length=300,
                     description="ZeroMQ PUB bind address (beyond loopback only with CURVE, see [security])")
    replay: str = Field("tcp://127.0.0.1:5557", max_length=300,
                        description="ZeroMQ ROUTER bind address of the snapshot/replay service (\"\" turns it off)")
    # Stations mark a bed stale after 3 s of silence (`painedge listen --stale-after`): the
    # heartbeat must come well within that, so at most 10 s. Under 0.1 s it floods every
    # station (1e-9 sent 390,001 messages in 12 s).
    heartbeat_s: float = Field(1.0, ge=0.1, le=10, description="seconds between heartbeats")

    @field_validator("pub")
    @classmethod
    def _endpoint(cls, v: str) -> str:
        return _check_endpoint(v)

    @field_validator("replay")
    @classmethod
    def _replay(cls, v: str) -> str:
        return _check_endpoint(v) if v else v


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
        if not self.clear_below <= self.raise_level <= self.escalate_level:
            raise ValueError(f"need clear_below <= raise_level <= escalate_level, got {self.clear_below}, "
                             f"{self.raise_level}, {self.escalate_level}")
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
    listen: str = Field("127.0.0.1:9108", max_length=300,
                        description="HOST:PORT of /metrics (port 1-65535, 0 for a free one); it shows the pain level "
                                    "and alert state, so beyond loopback only with security.insecure = true")

    @field_validator("listen")
    @classmethod
    def _host_port(cls, v: str) -> str:
        host, sep, port = v.rpartition(":")
        if not sep or not port.isdigit() or len(port) > 5 or int(port) > 65535:
            raise ValueError("expected HOST:PORT with a port of 1-65535 (or 0 for a free one), e.g. 127.0.0.1:9108")
        bare = host[1:-1] if host.startswith("[") and host.endswith("]") else host
        if bare not in ("localhost", ""):
            try:
                ipaddress.ip_address(bare)
            except ValueError:
                raise ValueError(f"{_echo(host)} is not an IP address (use 127.0.0.1, or 0.0.0.0 for all "
                                 f"interfaces)") from None
        return v

    @property
    def host_port(self) -> tuple[str, int]:
        host, _, port = self.listen.rpartition(":")
        return host.strip("[]") or "127.0.0.1", int(port)


class Settings(Section):
    device_id: str = Field("bed-1", pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$",
                           description="this bed's name on the wire: topics are <kind>/<device_id> (letters, digits, "
                                       ". _ -; at most 64)")
    log_level: Literal["debug", "info", "warning", "error"] = Field("info", description="debug, info, warning or "
                                                                                        "error")
    source: SourceSettings = SourceSettings()
    face: FaceSettings = FaceSettings()
    gate: GateSettings = GateSettings()
    model: ModelSettings = ModelSettings()
    assess: AssessSettings = AssessSettings()
    publish: PublishSettings = PublishSettings()
    state: StateSettings = StateSettings()
    alerts: AlertSettings = AlertSettings()
    security: SecuritySettings = SecuritySettings()
    metrics: MetricsSettings = MetricsSettings()


def relations(s: Settings) -> list[tuple[tuple[str, ...], str]]:
    """Rules between sections, as (key path, problem) pairs; empty when all hold."""
    out = []
    host = s.metrics.host_port[0]
    if s.metrics.enabled and not is_loopback_host(host) and not s.security.insecure:
        out.append((("metrics", "listen"),
                    f"/metrics on {_echo(host)} would show the pain level and alert state to anyone on the network: "
                    f"keep it on 127.0.0.1, or set security.insecure = true on a trusted network"))
    if s.publish.replay and s.publish.replay == s.publish.pub:
        out.append((("publish", "replay"), "is the same endpoint as publish.pub: give the replay service its own"))
    return out


# ---------------------------------------------------------------- loading

_ECHO = reprlib.Repr()
_ECHO.maxlevel, _ECHO.maxstring, _ECHO.maxother, _ECHO.maxlist, _ECHO.maxdict = 2, MAX_ECHO_CHARS, 40, 4, 4
_ECHO.maxlong = 40


def _echo(v: Any) -> str:
    """A short repr of user input: never the whole of a 2 MB value, never deeper than two levels."""
    if isinstance(v, int) and not isinstance(v, bool) and v.bit_length() > 128:
        return f"an integer of about {int(v.bit_length() * 0.30103) + 1} digits"
    try:
        text = _ECHO.repr(v)
    except (ValueError, RecursionError):
        text = f"a {type(v).__name__}"
    return text if len(text) <= MAX_ECHO_CHARS + 10 else text[:MAX_ECHO_CHARS] + "..."


def _short(name: str, limit: int = MAX_ECHO_CHARS) -> str:
    """A key or variable name as echoed in a message: control characters escaped, long names cut."""
    if not name.isprintable():
        name = repr(name)[1:-1]
    return name if len(name) <= limit else name[:limit] + "..."


def _p(path: Path | str) -> str:
    """A file path as echoed in a message: whole unless absurdly long."""
    return _short(str(path), 300)


_KEY = re.compile(r"[A-Za-z0-9_.\-\"' ]+")


def _key_lines(text: str) -> dict[tuple[str, ...], int]:
    """Where each key (and table) of a TOML text is set: its key path -> line number.

    One pass, and no regular expression that can backtrack: string methods and a fullmatch of a
    single character class, so a hostile line costs its length, never its square.
    """
    lines: dict[tuple[str, ...], int] = {}
    table: tuple[str, ...] = ()

    def parts(dotted: str) -> tuple[str, ...]:
        return tuple(p.strip().strip("\"'") for p in dotted.split("."))

    for n, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if line.startswith("[") and line.endswith("]") and "=" not in line:
            table = parts(line.strip("[]"))
            lines.setdefault(table, n)
            continue
        key, eq, _value = line.partition("=")
        if eq and _KEY.fullmatch(key.strip() or "="):
            lines.setdefault(table + parts(key), n)
    return lines


def _longest_prefix(loc: tuple[str, ...], table: Mapping[tuple[str, ...], Any]) -> Any:
    for i in range(len(loc), 0, -1):
        if loc[:i] in table:
            return table[loc[:i]]
    return None


class _Origins:
    """Where each value came from: flags, environment variables, or the file (by line)."""

    def __init__(self, file: str, text: str | None, env: Mapping[tuple[str, ...], str],
                 flags: Mapping[tuple[str, ...], str]) -> None:
        self.file, self.env, self.flags, self.text = file, env, flags, text
        self._lines: dict[tuple[str, ...], int] | None = None

    @property
    def lines(self) -> dict[tuple[str, ...], int]:
        if self._lines is None:  # only when there is an error to place
            self._lines = _key_lines(self.text) if self.text is not None else {}
        return self._lines

    def of(self, loc: tuple[str, ...]) -> str:
        flag = _longest_prefix(loc, self.flags)
        if flag:
            return f"flag {flag}" if flag.startswith("-") else flag
        var = _longest_prefix(loc, self.env)
        if var:
            return f"environment {_short(var)}"
        line = _longest_prefix(loc, self.lines)
        return f"{self.file}, line {line}" if line else self.file


def _format(problems: list[tuple[tuple[str, ...], str]], origins: _Origins) -> str:
    """One line: the first few problems, each with where it came from and its key, then how many more."""
    parts = []
    for loc, msg in problems[:MAX_ERRORS_LISTED]:
        key = ".".join(_short(p) for p in loc) or "settings"
        parts.append(f"{origins.of(loc)}: {key}: {msg}")
    if len(problems) > MAX_ERRORS_LISTED:
        parts.append(f"and {len(problems) - MAX_ERRORS_LISTED} more")
    return " ".join("; ".join(parts).splitlines())  # one line, whatever a message quoted


def _problems(e: ValidationError) -> list[tuple[tuple[str, ...], str]]:
    out = []
    for err in e.errors(include_url=False):
        loc = tuple(str(x) for x in err["loc"])
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = "unknown key (check the spelling; `painedge config show` lists the keys)"
        elif "input" in err and not isinstance(err["input"], dict):
            msg = f"{msg} (got {_echo(err['input'])})"
        out.append((loc, msg))
    return out


def _env_overrides(environ: Mapping[str, str]) -> tuple[dict[str, Any], dict[tuple[str, ...], str]]:
    """The settings the environment sets, and which variable set each key path."""
    out: dict[str, Any] = {}
    set_by: dict[tuple[str, ...], str] = {}
    for name in sorted(n for n in environ if n.startswith(ENV_PREFIX) and n not in _ENV_NOT_SETTINGS):
        raw = environ[name]
        path = tuple(p.lower() for p in name[len(ENV_PREFIX):].split("__"))
        if not all(path):
            raise ConfigError(f"environment {_short(name)}: not a setting name (PAINEDGE_<SECTION>__<KEY>, e.g. "
                              f"PAINEDGE_GATE__THRESHOLD); unset it")
        for i in range(1, len(path) + 1):
            other = set_by.get(path[:i])
            if other is not None:
                raise ConfigError(f"environment {_short(name)}: conflicts with {_short(other)}, which sets "
                                  f"{_short('.'.join(path[:i]))} as a whole; unset one of them")
        try:
            parsed = tomllib.loads(f"v = {raw}")
            value = parsed["v"] if len(parsed) == 1 else raw
        except (ValueError, RecursionError):  # not a TOML literal (TOMLDecodeError is a ValueError): a bare string
            value = raw
        node = out
        for p in path[:-1]:
            node = node.setdefault(p, {})
            if not isinstance(node, dict):  # pragma: no cover  (excluded by the conflict check)
                raise ConfigError(f"environment {_short(name)}: conflicts with another PAINEDGE_ variable")
        if path[-1] in node:  # a longer name already set something under this one
            other = next(v for k, v in set_by.items() if k[:len(path)] == path)
            raise ConfigError(f"environment {_short(name)}: conflicts with {_short(other)}; unset one of them")
        node[path[-1]] = value
        set_by[path] = name
    return out, set_by


def _merge(base: dict[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in over.items():
        out[k] = _merge(out[k], v) if isinstance(v, Mapping) and isinstance(out.get(k), dict) else v
    return out


def _exists(path: Path) -> bool:
    """Whether ``path`` names something; one clear error for a name no file can have."""
    try:
        os.stat(path)
        return True
    except (FileNotFoundError, NotADirectoryError):
        return False
    except ValueError:
        raise ConfigError(f"{_p(path)!r}: a config path cannot contain a NUL character") from None
    except OSError as e:
        raise ConfigError(f"{_p(path)}: cannot read ({e.strerror})") from None


def _read_toml(cfg_path: Path) -> tuple[str, dict[str, Any]]:
    where = _p(cfg_path)
    try:
        st = cfg_path.stat()
    except OSError as e:
        raise ConfigError(f"{where}: cannot read ({e.strerror})") from None
    if stat.S_ISDIR(st.st_mode):
        raise ConfigError(f"{where}: is a folder, expected a TOML file")
    if not stat.S_ISREG(st.st_mode):
        raise ConfigError(f"{where}: not a regular file, expected a TOML file")
    if st.st_size > MAX_CONFIG_BYTES:
        raise ConfigError(f"{where}: {st.st_size} bytes is too large for a painedge config (at most "
                          f"{MAX_CONFIG_BYTES // 1024} KiB)")
    try:
        raw = cfg_path.read_bytes()[:MAX_CONFIG_BYTES + 1]
        text = raw.decode("utf-8")
    except OSError as e:
        raise ConfigError(f"{where}: cannot read ({e.strerror})") from None
    except UnicodeDecodeError as e:
        raise ConfigError(f"{where}: not UTF-8 text (byte {e.start}); save it as UTF-8") from None
    try:
        return text, tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{where}: not valid TOML: {_short(str(e)) if len(str(e)) > 200 else e}") from None
    except ValueError:  # tomllib lets int() errors through: an integer of over 4,300 digits
        raise ConfigError(f"{where}: not valid TOML for painedge: an integer too long to read") from None
    except RecursionError:
        raise ConfigError(f"{where}: not valid TOML for painedge: arrays or tables nested too deeply") from None


def load(path: str | Path | None = None, overrides: Mapping[str, Any] | None = None,
         environ: Mapping[str, str] | None = None, flags: Mapping[tuple[str, ...], str] | None = None) -> Settings:
    """Settings from defaults, the TOML file (``path``, else $PAINEDGE_CONFIG, else the default file if it
    exists), the environment and ``overrides`` (from flags, as nested dicts; ``flags`` names the flag that set
    each key path, for messages). Raises ConfigError, one line, for anything wrong."""
    environ = os.environ if environ is None else environ
    if path is not None:
        if str(path) == "":
            raise ConfigError("--config '': the empty path is not a file; give a TOML file, or leave --config out")
        cfg_path, explicit = Path(path), True
    elif f"{ENV_PREFIX}CONFIG" in environ:
        if not environ[f"{ENV_PREFIX}CONFIG"]:
            raise ConfigError("environment PAINEDGE_CONFIG is empty: set it to a TOML file, or unset it")
        cfg_path, explicit = Path(environ[f"{ENV_PREFIX}CONFIG"]), True
    else:
        cfg_path, explicit = DEFAULT_CONFIG, False
    data: dict[str, Any] = {}
    text = None
    origin = "defaults"
    if _exists(cfg_path):
        origin = _p(cfg_path)
        text, data = _read_toml(cfg_path)
    elif explicit:
        raise ConfigError(f"{_p(cfg_path)}: no such config file")
    env, env_locs = _env_overrides(environ)
    data = _merge(_merge(data, env), overrides or {})
    flag_locs = dict(flags or {})
    for loc in _leaf_paths(overrides or {}):
        flag_locs.setdefault(loc, "a command-line flag")
    origins = _Origins(origin, text, env_locs, flag_locs)
    try:
        settings = Settings.model_validate(data)
    except ValidationError as e:
        raise ConfigError(_format(_problems(e), origins)) from None
    except RecursionError:
        raise ConfigError(f"{origin}: values nested too deeply") from None
    problems = relations(settings)
    if problems:
        raise ConfigError(_format(problems, origins))
    return settings


def _leaf_paths(d: Mapping[str, Any], prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    out = []
    for k, v in d.items():
        out += _leaf_paths(v, prefix + (k,)) if isinstance(v, Mapping) else [prefix + (k,)]
    return out


# ---------------------------------------------------------------- one check for `config check` and `run`


def _check_readable(what: str, path: Path, folder: bool = False) -> None:
    if not path.exists():
        raise ConfigError(f"{what} {_p(path)}: no such {'folder' if folder else 'file'}")
    if folder != path.is_dir():
        raise ConfigError(f"{what} {_p(path)}: is {'not ' if folder else ''}a folder, expected "
                          f"{'a folder' if folder else 'a file'}")
    if not os.access(path, os.R_OK | (os.X_OK if folder else 0)):
        raise ConfigError(f"{what} {_p(path)}: not readable by this user (uid {os.getuid()}); "
                          f"fix its permissions")


def _check_model(path: Path) -> None:
    """The model's metadata, checksum and features, as the daemon checks them (without loading the interpreter)."""
    from .model import ModelError, ModelMeta, sha256_of

    try:
        meta = ModelMeta.read(path.with_suffix(".json"))
        if meta.sha256 and sha256_of(path) != meta.sha256:
            raise ModelError(f"{path}: does not match the checksum in its metadata (a partial copy, or another "
                             f"model's .json)")
        meta.check_features(path)
    except ModelError as e:
        raise ConfigError(f"model.path {e}") from None


def _check_state_dir(folder: Path) -> None:
    """state.dir: a folder painedge can create or write its journal in."""
    probe = folder
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if folder.exists() and not folder.is_dir():
        raise ConfigError(f"state.dir {folder}: not a folder; point it at a folder for the alert journal")
    if not probe.is_dir() or not os.access(probe, os.W_OK | os.X_OK):
        raise ConfigError(f"state.dir {folder}: {probe} is not writable; give the service a folder it owns "
                          f"(systemd's StateDirectory=)")


def preflight(settings: Settings) -> None:
    """Everything `painedge run` would refuse at start, checked without starting: the rules between settings,
    the security rules, the source, and every file named. `painedge config check` and `painedge run` both call
    it. Raises ConfigError (or SourceError for the source), one line naming the thing and the fix."""
    from . import security
    from .capture import check_source

    problems = relations(settings)
    if problems:
        raise ConfigError(_format(problems, _Origins("settings", None, {}, {})))
    model = settings.model.path
    _check_readable("model.path", model)
    _check_readable("model.path's metadata", model.with_suffix(".json"))
    _check_model(model)
    _check_state_dir(settings.state.resolved_dir)
    sec = settings.security
    if sec.server_secret_key is not None:
        _check_readable("security.server_secret_key", sec.server_secret_key)
    if sec.allowed_clients_dir is not None:
        _check_readable("security.allowed_clients_dir", sec.allowed_clients_dir, folder=True)
    security.check(settings)  # loopback-unless-CURVE-or-insecure, CURVE support, the key pair itself
    check_source(settings.source)


# ---------------------------------------------------------------- writing TOML


def _lit(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    return '"' + str(v).replace("\\", "\\\\").replace('"', '\\"') + '"'


def to_toml(settings: Settings) -> str:
    """The effective settings as TOML (for `painedge config show`)."""
    data = settings.model_dump(mode="json")
    top = [f"{k} = {_lit(v)}" for k, v in data.items() if not isinstance(v, dict) and v is not None]
    out = top + [""]
    for k, v in data.items():
        if isinstance(v, dict):
            out.append(f"[{k}]")
            out += [f"{kk} = {_lit(vv)}" for kk, vv in v.items() if vv is not None]
            out.append("")
    return "\n".join(out)


EXAMPLE_HEADER = """\
# painedge settings: every key with its default and what it means. Copy to
# /etc/painedge/painedge.toml and edit; every key is optional, and a key left out
# keeps the default written here. Check a file with
#     painedge config check --config /etc/painedge/painedge.toml
# and see the effective settings (file + PAINEDGE_* environment + flags) with `painedge config show`.
# Environment overrides: PAINEDGE_<SECTION>__<KEY>, e.g. PAINEDGE_GATE__THRESHOLD=0.1.
#
# Generated from painedge/config.py by `painedge config example`; do not edit by hand.
"""


def _bounds(field: Any) -> str:
    lo = hi = None
    for m in field.metadata:
        for attr in ("ge", "gt"):
            if getattr(m, attr, None) is not None:
                lo = getattr(m, attr)
        for attr in ("le", "lt"):
            if getattr(m, attr, None) is not None:
                hi = getattr(m, attr)
    if lo is None and hi is None:
        return ""
    fmt = lambda x: f"{x:g}" if isinstance(x, float) else f"{x:,}"  # noqa: E731
    return f" (range {fmt(lo) if lo is not None else ''}-{fmt(hi) if hi is not None else ''})"


def example_toml() -> str:
    """deploy/painedge.example.toml: every key, its description (and range) as a comment, its default."""
    out = [EXAMPLE_HEADER]

    def keys(model: type[BaseModel], values: BaseModel) -> None:
        for name, field in model.model_fields.items():
            if isinstance(getattr(values, name), BaseModel):
                continue
            extra = field.json_schema_extra or {}
            desc = (field.description or "") + _bounds(field)
            out.extend(textwrap.wrap(desc, 100, initial_indent="# ", subsequent_indent="# "))
            default = getattr(values, name)
            if default is None or extra.get("commented"):
                out.append(f"# {name} = {_lit(extra['example'])}")
            else:
                out.append(f"{name} = {_lit(default)}")

    defaults = Settings()
    keys(Settings, defaults)
    for name, field in Settings.model_fields.items():
        section = getattr(defaults, name)
        if isinstance(section, BaseModel):
            out += ["", f"[{name}]", f"# {(type(section).__doc__ or '').strip()}", ""]
            keys(type(section), section)
    return "\n".join(out) + "\n"
