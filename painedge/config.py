"""Settings: pydantic models read from TOML, environment (PAINEDGE_...), and command-line flags.

Precedence, lowest first: defaults, the TOML file, environment variables,
flags. Unknown keys are errors. Every error names the file, the key path and,
for a file, the line: an IT person should never read a traceback for a typo.

Environment: ``PAINEDGE_<SECTION>__<KEY>=value``, e.g.
``PAINEDGE_GATE__THRESHOLD=0.1``, ``PAINEDGE_DEVICE_ID=bed-12``; values are
TOML literals (``true``, ``0.1``, ``"text"``) or bare strings.
"""

from __future__ import annotations

import ipaddress
import os
import re
import sys
from pathlib import Path
from typing import Any, Literal, Mapping

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

from .model import DEFAULT_MODEL

DEFAULT_CONFIG = Path("/etc/painedge/painedge.toml")
ENV_PREFIX = "PAINEDGE_"


class ConfigError(ValueError):
    """A configuration problem, already phrased for the user."""


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)


class SourceSettings(Section):
    source: str = Field("demo", description="demo, a video file, a V4L2 device (index or /dev/videoN), "
                                           "an rtsp:// or http(s):// URL, or gst:<GStreamer pipeline>")
    loop: bool = Field(True, description="restart a video file when it ends")
    realtime: bool = Field(True, description="pace a video file to its own frame rate (false: as fast as possible)")
    demo_fps: float = Field(15.0, gt=0, le=120)
    width: int | None = Field(None, ge=16, description="ask a camera for this width")
    height: int | None = Field(None, ge=16)
    stall_after_s: float = Field(5.0, gt=0, description="no frame for this long: camera reported stalled")
    reconnect_initial_s: float = Field(0.5, gt=0)
    reconnect_max_s: float = Field(10.0, gt=0)


class FaceSettings(Section):
    backend: Literal["mediapipe", "litert"] = Field(
        "mediapipe", description="landmark backend: 'mediapipe' (its Face Mesh graph, 478 refined points; the "
                                 "shipped model was trained on it) or 'litert' (painedge's own tracker on Face Mesh's "
                                 "468-point model, no mediapipe import; the default once the model is retrained on it)")
    max_faces: int = Field(2, ge=1, le=10, description="faces the mesh looks for; the largest is the patient")
    min_detection_confidence: float = Field(0.7, ge=0, le=1)  # paper
    min_tracking_confidence: float = Field(0.7, ge=0, le=1)  # paper
    baseline_window_frames: int = Field(900, ge=10, description="frames the patient's neutral face is learnt over")
    lost_after_frames: int = Field(15, ge=1, description="frames without a face before it counts as lost")
    reset_after_lost_s: float = Field(60.0, ge=1, le=3600,
                                      description="a face back after being gone this long is measured as a new "
                                                  "patient: their neutral face is learnt again")


class GateSettings(Section):
    enabled: bool = True
    threshold: float = Field(0.05, ge=0, description="mean landmark move (IOD units) below which a frame may be skipped (paper: 0.05)")
    interval_frames: int = Field(10, ge=1, description="every Nth frame passes regardless (paper: 10)")


class ModelSettings(Section):
    path: Path = DEFAULT_MODEL
    threads: int = Field(1, ge=1, le=8, description="TFLite interpreter threads")


class AssessSettings(Section):
    smoothing_s: float = Field(1.5, ge=0, description="time constant of the probability smoothing")


def _check_endpoint(v: str) -> str:
    if not re.match(r"^(tcp://[^:]+:\d+|ipc://.+|inproc://.+)$", v):
        raise ValueError("expected tcp://HOST:PORT, ipc://PATH or inproc://NAME")
    return v


def is_loopback(endpoint: str) -> bool:
    """True for ipc://, inproc:// and tcp:// on 127.0.0.0/8, ::1 or localhost."""
    if not endpoint.startswith("tcp://"):
        return True
    host = endpoint[6:].rsplit(":", 1)[0].strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class PublishSettings(Section):
    pub: str = Field("tcp://127.0.0.1:5556", description="ZeroMQ PUB bind address")
    replay: str = Field("tcp://127.0.0.1:5557", description="ZeroMQ ROUTER bind address of the snapshot/replay "
                                                            "service ('' to turn it off)")
    heartbeat_s: float = Field(1.0, gt=0, le=60)

    @field_validator("pub")
    @classmethod
    def _endpoint(cls, v: str) -> str:
        return _check_endpoint(v)

    @field_validator("replay")
    @classmethod
    def _replay(cls, v: str) -> str:
        return _check_endpoint(v) if v else v


class StateSettings(Section):
    dir: Path | None = Field(None, description="where the alert journal lives (default: $STATE_DIRECTORY, "
                                               "as systemd's StateDirectory= sets it, else ~/.local/state/painedge)")
    retention_rows: int = Field(100_000, ge=100)
    retention_days: float = Field(30.0, gt=0)

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
    enabled: bool = True
    raise_level: int = Field(3, ge=1, le=4, description="raise at this smoothed level or above (3 Severe)")
    raise_after_s: float = Field(3.0, ge=0, description="... held this long")
    escalate_level: int = Field(4, ge=1, le=4, description="escalate at this level (4 Extreme)")
    escalate_after_s: float = Field(2.0, ge=0)
    clear_below: int = Field(2, ge=1, le=4, description="clear when the level stays below this (2 Moderate) ...")
    clear_after_s: float = Field(10.0, ge=0, description="... for this long")
    cooldown_s: float = Field(60.0, ge=0, description="after clearing, no new alert for this long (Extreme excepted)")

    @model_validator(mode="after")
    def _ordered(self) -> "AlertSettings":
        if not self.clear_below <= self.raise_level <= self.escalate_level:
            raise ValueError(f"need clear_below <= raise_level <= escalate_level, got {self.clear_below}, "
                             f"{self.raise_level}, {self.escalate_level}")
        return self


class SecuritySettings(Section):
    server_secret_key: Path | None = Field(None, description="this device's CURVE secret key file "
                                                            "(from `painedge keys generate`); turns CURVE on")
    allowed_clients_dir: Path | None = Field(None, description="folder of the public key files of the "
                                                              "subscribers allowed in")
    insecure: bool = Field(False, description="allow a non-loopback bind without CURVE (a trusted network only)")


class MetricsSettings(Section):
    enabled: bool = True
    listen: str = Field("127.0.0.1:9108", description="HOST:PORT of the Prometheus /metrics endpoint")

    @field_validator("listen")
    @classmethod
    def _host_port(cls, v: str) -> str:
        host, sep, port = v.rpartition(":")
        if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
            raise ValueError("expected HOST:PORT, e.g. 127.0.0.1:9108")
        if host not in ("localhost", "") and not host.startswith("["):
            try:
                ipaddress.ip_address(host)
            except ValueError:
                raise ValueError(f"{host!r} is not an IP address (use 127.0.0.1, or 0.0.0.0 for all interfaces)") from None
        return v

    @property
    def host_port(self) -> tuple[str, int]:
        host, _, port = self.listen.rpartition(":")
        return host.strip("[]") or "127.0.0.1", int(port)


class Settings(Section):
    device_id: str = Field("bed-1", pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$",
                           description="this bed's name on the wire (letters, digits, . _ -)")
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    source: SourceSettings = SourceSettings()
    face: FaceSettings = FaceSettings()
    gate: GateSettings = GateSettings()
    model: ModelSettings = ModelSettings()
    assess: AssessSettings = AssessSettings()
    publish: PublishSettings = PublishSettings()
    metrics: MetricsSettings = MetricsSettings()
    state: StateSettings = StateSettings()
    alerts: AlertSettings = AlertSettings()
    security: SecuritySettings = SecuritySettings()


# ---------------------------------------------------------------- loading


def _line_of(text: str, loc: tuple[Any, ...]) -> int | None:
    """The line in a TOML text where the key at ``loc`` is set (or its table starts)."""
    table: tuple[str, ...] = ()
    want_table, key = tuple(str(x) for x in loc[:-1]), str(loc[-1])
    table_line = None
    for n, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        m = re.match(r"^\[\s*([^\]]+?)\s*\]$", line)
        if m:
            table = tuple(p.strip() for p in m.group(1).split("."))
            if table == tuple(str(x) for x in loc):
                table_line = n
            continue
        m = re.match(r"^([A-Za-z0-9_.-]+)\s*=", line)
        if m:
            parts = table + tuple(p.strip() for p in m.group(1).split("."))
            if parts == want_table + (key,):
                return n
    return table_line


def _merge(base: dict[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in over.items():
        out[k] = _merge(out[k], v) if isinstance(v, Mapping) and isinstance(out.get(k), dict) else v
    return out


def _env_overrides(environ: Mapping[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, raw in environ.items():
        if not name.startswith(ENV_PREFIX) or name in (f"{ENV_PREFIX}CONFIG", f"{ENV_PREFIX}TEST_DATA"):
            continue
        path = [p.lower() for p in name[len(ENV_PREFIX):].split("__")]
        try:
            value = tomllib.loads(f"v = {raw}")["v"]
        except tomllib.TOMLDecodeError:
            value = raw
        node = out
        for p in path[:-1]:
            node = node.setdefault(p, {})
        node[path[-1]] = value
    return out


def _describe(e: ValidationError, origin: str, text: str | None, env_keys: set[str]) -> str:
    lines = []
    for err in e.errors():
        loc = tuple(err["loc"])
        key = ".".join(str(x) for x in loc)
        where = origin
        env_name = ENV_PREFIX + "__".join(str(x).upper() for x in loc)
        if env_name in env_keys:
            where = f"environment {env_name}"
        elif text is not None:
            line = _line_of(text, loc)
            where = f"{origin}, line {line}" if line else origin
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            msg = "unknown key (check the spelling; `painedge config show` lists the keys)"
        elif "input" in err and not isinstance(err["input"], dict):
            msg = f"{msg} (got {err['input']!r})"
        lines.append(f"{where}: {key}: {msg}")
    return "; ".join(lines)


def load(path: str | Path | None = None, overrides: Mapping[str, Any] | None = None,
         environ: Mapping[str, str] | None = None) -> Settings:
    """Settings from defaults, the TOML file (``path``, else $PAINEDGE_CONFIG, else the default file if it
    exists), the environment and ``overrides`` (from flags, as nested dicts)."""
    environ = os.environ if environ is None else environ
    explicit = path is not None or f"{ENV_PREFIX}CONFIG" in environ
    cfg_path = Path(path or environ.get(f"{ENV_PREFIX}CONFIG") or DEFAULT_CONFIG)
    data: dict[str, Any] = {}
    text = None
    origin = "defaults"
    if cfg_path.exists():
        origin = str(cfg_path)
        try:
            text = cfg_path.read_text()
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as e:
            raise ConfigError(f"{cfg_path}: not valid TOML: {e}") from None
        except (OSError, UnicodeDecodeError) as e:
            raise ConfigError(f"{cfg_path}: cannot read ({e})") from None
    elif explicit:
        raise ConfigError(f"{cfg_path}: no such config file")
    env = _env_overrides(environ)
    data = _merge(_merge(data, env), overrides or {})
    try:
        return Settings.model_validate(data)
    except ValidationError as e:
        env_keys = {k for k in environ if k.startswith(ENV_PREFIX)}
        flag_note = " (or a command-line flag)" if overrides else ""
        raise ConfigError(_describe(e, origin + flag_note if origin == "defaults" else origin, text, env_keys)) from None


def to_toml(settings: Settings) -> str:
    """The effective settings as TOML (for `painedge config show`)."""

    def lit(v: Any) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, (int, float)):
            return repr(v)
        return '"' + str(v).replace("\\", "\\\\").replace('"', '\\"') + '"'

    data = settings.model_dump(mode="json")
    top = [f"{k} = {lit(v)}" for k, v in data.items() if not isinstance(v, dict) and v is not None]
    out = top + [""]
    for k, v in data.items():
        if isinstance(v, dict):
            out.append(f"[{k}]")
            out += [f"{kk} = {lit(vv)}" for kk, vv in v.items() if vv is not None]
            out.append("")
    return "\n".join(out)
