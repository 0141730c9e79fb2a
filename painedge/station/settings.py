"""The station's settings: a TOML file of its own (``--config``), then flags. Typos name the file and line.

    http = "0.0.0.0:8443"
    db = "/var/lib/painedge-station/station.db"
    connect = ["tcp://bed-12:5556", "tcp://bed-14:5556,tcp://bed-14:5557"]
    ack_timeout_s = 120
    tls_certfile = "/etc/painedge/station.crt"
    tls_keyfile = "/etc/painedge/station.key"

    [[users]]
    name = "ward7-nurses"
    role = "nurse"
    token_sha256 = "9f86d0..."     # printf %s "$TOKEN" | sha256sum

    [[beds]]
    device_id = "bed-12"
    name = "Bed 12"
    scale = "cpot"

The board is patient data: beyond loopback the station refuses to start
without users (``check_exposure``).
"""

from __future__ import annotations

import hashlib
import hmac
import re
from pathlib import Path
from typing import Any, Literal, Mapping

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from ..config.loader import problem_message, read_toml
from ..config import (ConfigError, check_endpoint as _check_endpoint, host_and_port, is_loopback_host, listen_address,
                      merge as _merge)
from ..scales import SCALES

Role = Literal["nurse", "admin"]
ROLE_CAN: dict[str, frozenset[str]] = {
    "nurse": frozenset({"view", "acknowledge"}),
    "admin": frozenset({"view", "acknowledge", "configure"}),
}


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)


class User(_Model):
    name: str = Field(min_length=1, max_length=80, description="an account: a person or a ward's shared login")
    role: Role = Field(description="nurse: view the board and acknowledge alarms; admin: also name beds and set "
                                   "their scale")
    token_sha256: str = Field(pattern=r"^[0-9a-f]{64}$", description="SHA-256 (hex) of the account's token")

    def matches(self, token: str) -> bool:
        return hmac.compare_digest(hashlib.sha256(token.encode()).hexdigest(), self.token_sha256)


class BedSettings(_Model):
    device_id: str = Field(min_length=1, description="the device's device_id, as in its messages")
    name: str = Field("", description="what the ward calls the bed; default: the device id")
    scale: str = Field("cpot", description="the ward's pain scale whose face item the board shows: cpot, bps, painad")

    @field_validator("scale")
    @classmethod
    def _scale(cls, v: str) -> str:
        if v not in SCALES:
            raise ValueError(f"unknown scale; use one of {', '.join(SCALES)}")
        return v


class FeedSettings(_Model):
    """What every feed to a hospital system has: how long a delivery may take, and what it carries."""

    timeout_s: float = Field(5.0, gt=0, description="seconds a delivery may take before it counts as failed")
    send_observations: bool = Field(True, description="a reading per bed per reading_interval_s")
    send_alarms: bool = Field(True, description="every alarm change: raised, escalated, acknowledged, ended, ...")


class Hl7Settings(FeedSettings):
    host: str = Field(description="the HL7 v2 interface engine's host (MLLP over TCP)")
    port: int = Field(ge=1, le=65535, description="the interface engine's MLLP port")
    sending_facility: str = Field("PAINEDGE", description="MSH-4, the sending facility of every message")
    receiving_application: str = Field("HIS", description="MSH-5, the receiving application of every message")
    receiving_facility: str = Field("HOSPITAL", description="MSH-6, the receiving facility of every message")


class FhirSettings(FeedSettings):
    url: str = Field(pattern=r"^https?://", description="the FHIR server's Observation endpoint or base URL")
    bearer_token: str = Field("", description="sent as Authorization: Bearer with every request; empty: none")


class StationSettings(_Model):
    http: str = Field("127.0.0.1:8080", description="HOST:PORT the board listens on")
    db: Path = Field(Path("~/.local/state/painedge/station.db"), description="the station's SQLite history")
    connect: list[str] = Field(default_factory=list, description="devices: PUB[,REPLAY] endpoints")
    ack_timeout_s: float = Field(120.0, gt=0, description="unacknowledged for this long: the alarm escalates")
    stale_after_s: float = Field(3.0, gt=0, description="no heartbeat for this long: the bed is shown STALE "
                                                          "(heartbeats come every second)")
    reading_interval_s: float = Field(5.0, gt=0, description="history keeps one reading per bed per interval")
    history_hours: float = Field(4.0, gt=0, description="the span of a bed's history page by default")
    tls_certfile: Path | None = Field(None, description="TLS: the board's certificate (PEM), with tls_keyfile; "
                                                        "none: plain HTTP")
    tls_keyfile: Path | None = Field(None, description="TLS: the certificate's private key (PEM)")
    client_key: Path | None = Field(None, description="CURVE: this station's .key_secret")
    server_key: Path | None = Field(None, description="CURVE: the devices' public .key")
    users: list[User] = Field(default_factory=list, description="who may sign in, and in which role; none: an "
                                                                "open board, allowed on loopback only")
    beds: list[BedSettings] = Field(default_factory=list, description="names and pain scales of known beds; these "
                                                                      "are shown (OFFLINE) before they are heard")
    hl7: Hl7Settings | None = Field(None, description="an HL7 v2 feed (ORU^R01 over MLLP) of observations and alarm "
                                                          "changes; none: off")
    fhir: FhirSettings | None = Field(None, description="a FHIR R4 feed: observations and alarm changes as "
                                                           "Observations; none: off")

    @field_validator("connect")
    @classmethod
    def _endpoints(cls, v: list[str]) -> list[str]:
        for spec in v:
            for endpoint in spec.split(","):
                try:
                    _check_endpoint(endpoint)
                except ValueError as e:
                    raise ValueError(f"{spec!r}: {e} (PUB[,REPLAY])") from None
        return v

    @field_validator("http")
    @classmethod
    def _host_port(cls, v: str) -> str:
        listen_address(v, "expected HOST:PORT, e.g. 127.0.0.1:8080")
        return v

    @property
    def host_port(self) -> tuple[str, int]:
        return host_and_port(self.http)

    @property
    def tls(self) -> bool:
        return self.tls_certfile is not None  # check_exposure refuses a certfile without a keyfile

    def bed(self, device_id: str) -> BedSettings:
        for b in self.beds:
            if b.device_id == device_id:
                return b
        return BedSettings(device_id=device_id)


def _describe(e: ValidationError, origin: str, text: str | None) -> str:
    """One line per mistake, worded as painedge.config words them: where, which key, what is wrong."""
    lines = []
    for err in e.errors(include_url=False):
        loc = tuple(err["loc"])
        line = line_of(text, loc) if text is not None else None
        where = f"{origin}, line {line}" if line else origin
        msg = problem_message(err, "the README's station section")
        lines.append(f"{where}: {'.'.join(str(x) for x in loc)}: {msg}")
    return "; ".join(lines)


def check_exposure(s: StationSettings) -> str:
    """One line for the log about who can reach the board; raises ConfigError where it would be open to a network."""
    host, port = s.host_port
    if (s.tls_certfile is None) != (s.tls_keyfile is None):
        raise ConfigError("TLS needs both tls_certfile and tls_keyfile")
    if is_loopback_host(host):
        if not s.users:
            return (f"the board at http://{host}:{port}/ is open to anyone on this machine (loopback, no users "
                    "configured)")
        return f"the board at {'https' if s.tls else 'http'}://{host}:{port}/ needs a login ({len(s.users)} users)"
    if not s.users:
        raise ConfigError(f"the board would listen on {host}, beyond loopback, with no users: add [[users]] with "
                          "roles to the station config (behind a reverse proxy too: a proxy in front of an open "
                          "board opens it to the network)")
    scheme = "https" if s.tls else "http"
    note = "" if s.tls else " (no TLS here: put it behind a TLS reverse proxy, see the README)"
    return f"the board at {scheme}://{host}:{port}/ needs a login ({len(s.users)} users){note}"


def line_of(text: str, loc: tuple[Any, ...]) -> int | None:
    """The line where the key at ``loc`` is set, counting ``[[users]]``-style arrays of tables by index
    (painedge.config's finder knows only plain tables); else the line of the nearest enclosing table."""
    want = tuple(str(x) for x in loc)
    table: tuple[str, ...] = ()
    counts: dict[tuple[str, ...], int] = {}
    best, best_len = None, 0
    for n, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        m = re.match(r"^\[\[\s*([^\]]+?)\s*\]\]$", line) or re.match(r"^\[\s*([^\]]+?)\s*\]$", line)
        if m:
            name = tuple(p.strip() for p in m.group(1).split("."))
            if line.startswith("[["):
                counts[name] = counts.get(name, -1) + 1
                name += (str(counts[name]),)
            table = name
            if want[:len(table)] == table and len(table) > best_len:
                best, best_len = n, len(table)
            continue
        m = re.match(r"^([A-Za-z0-9_.-]+)\s*=", line)
        if m and table + tuple(p.strip() for p in m.group(1).split(".")) == want:
            return n
    return best


def load(path: str | Path | None, overrides: Mapping[str, Any] | None = None) -> StationSettings:
    """Settings from the TOML file at ``path`` (if any), then ``overrides`` (from flags)."""
    data: dict[str, Any] = {}
    text, origin = None, "flags"
    if path is not None:
        p = Path(path)
        origin = str(p)
        if not str(path):
            raise ConfigError("station config '': the empty path is not a file; give the station's TOML settings file")
        if not p.is_file():
            raise ConfigError(f"{p}: no such station config file" if not p.exists() else
                              f"{p}: not a file; give the station's TOML settings file")
        text, data = read_toml(p)
    data = _merge(data, {k: v for k, v in (overrides or {}).items() if v is not None})
    try:
        s = StationSettings.model_validate(data)
    except ValidationError as e:
        raise ConfigError(_describe(e, origin, text)) from None
    return s.model_copy(update={"db": s.db.expanduser()})
