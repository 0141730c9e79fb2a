"""Settings: pydantic models read from TOML, environment (PAINEDGE_...), and command-line flags.

    settings.py   the settings models, one per concern (no run-time imports)
    network.py    ZeroMQ endpoints, servers' HOST:PORT and loopback hosts, as settings check them
    errors.py     ConfigError, and how user input is echoed in its messages
    loader.py     load(): defaults < TOML file < environment < flags, errors naming file and line
    preflight.py  preflight(): what `painedge run` and `painedge config check` refuse before starting
    example.py    to_toml() for `config show`, example_toml() for deploy/painedge.example.toml
"""

from __future__ import annotations

from .errors import ConfigError
from .example import example_toml, to_toml
from .loader import DEFAULT_CONFIG, ENV_PREFIX, load, load_with_flags, merge
from .network import (check_endpoint, host_and_port, host_header_is_loopback, is_loopback, is_loopback_host,
                      listen_address)
from .preflight import preflight
from .settings import (DEFAULT_MODEL, AlertSettings, AssessSettings, FaceSettings, GateSettings, MetricsSettings,
                       ModelSettings, PublishSettings, SecuritySettings, Section, Settings, SourceSettings,
                       StateSettings, relations)

__all__ = ["DEFAULT_CONFIG", "DEFAULT_MODEL", "ENV_PREFIX", "AlertSettings", "AssessSettings", "ConfigError",
           "FaceSettings", "GateSettings", "MetricsSettings", "ModelSettings", "PublishSettings", "SecuritySettings",
           "Section", "Settings", "SourceSettings", "StateSettings", "check_endpoint", "example_toml", "host_and_port",
           "host_header_is_loopback",
           "is_loopback", "is_loopback_host", "listen_address", "load", "load_with_flags", "merge", "preflight", "relations", "to_toml"]
