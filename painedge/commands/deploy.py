"""Deploying and running: `painedge run` (and `preview`), `painedge station`, `painedge config
check/show/example` (the check `run` makes before starting, without starting), `painedge keys generate`
and `painedge schema` (the wire messages' JSON Schema for subscribers)."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any, Callable

from ..config import DEFAULT_CONFIG, Settings, example_toml, preflight, to_toml
from ..errors import UserError, writing


def preview_view(listen: str | None, show: bool) -> Any:
    """Where annotated frames go: an MJPEG server on loopback (``listen``), a window (``show``), or nowhere."""
    if not (listen or show):
        return None
    from .. import preview

    try:
        if listen:
            host, _, port = listen.rpartition(":")
            if not 0 <= int(port) <= 65535:
                raise ValueError(port)
            return preview.HttpView(host or "127.0.0.1", int(port))
        return preview.WindowView()
    except preview.PreviewError as e:
        raise UserError(str(e)) from None
    except ValueError:
        raise UserError(f"--listen {listen}: expected HOST:PORT on loopback, e.g. 127.0.0.1:8090") from None


def run_daemon(settings: Settings, max_frames: int | None = None, duration: float | None = None,
               exit_at_end: bool = False, listen: str | None = None, show: bool = False, debug: bool = False) -> int:
    """The daemon, after the same check as `painedge config check`; its exit code."""
    from ..service import RunLimits, run_service

    preflight(settings)
    if not debug:
        logging.getLogger().setLevel(settings.log_level.upper())
    view = preview_view(listen, show)
    return run_service(settings, RunLimits(max_frames, duration, exit_at_end), view)


def run_station(config: str | None, connect: list[str], http: str | None = None, db: str | None = None,
                ack_timeout: float | None = None, stale_after: float | None = None) -> int:
    """The nursing station (painedge.station): its settings file, then these flags (None: not given)."""
    from ..station import service, settings
    from ..station.store import StoreError

    try:
        flags = {"connect": connect or None, "http": http, "db": db, "ack_timeout_s": ack_timeout,
                 "stale_after_s": stale_after}
        return service.run(settings.load(config, flags))
    except StoreError as e:
        raise UserError(str(e)) from None


def config_command(config_command: str, config: str | None, load_settings: Callable[[], Settings]) -> int:
    """check: everything `run` checks before starting; show: the effective settings; example: every key."""
    if config_command == "example":
        print(example_toml(), end="")
        return 0
    settings = load_settings()
    if config_command == "check":
        preflight(settings)
        where = config or os.environ.get("PAINEDGE_CONFIG") or str(DEFAULT_CONFIG)
        print(f"ok: {where if Path(where).exists() else 'defaults (no config file)'} is valid, and every file it "
              f"names is there")
    else:
        print(to_toml(settings), end="")
    return 0


def generate_key_pair(dir: str, name: str, force: bool = False) -> int:
    """NAME.key and NAME.key_secret in ``dir``, and where each goes."""
    from ..security import generate_keys

    with writing(dir, "the key pair"):
        public, secret = generate_keys(Path(dir), name, force=force)
    print(f"public key: {public}  (give it to the other side: devices list stations' keys in allowed_clients_dir)")
    print(f"secret key: {secret}  (mode 0600; keep it on this machine)")
    return 0


def write_schema(out: str | None) -> int:
    """The JSON Schema of the wire messages, printed or written to ``out``."""
    from ..messages import json_schema

    text = json_schema()
    if out:
        with writing(out, "the schema"):
            Path(out).write_text(text)
        print(f"wrote {out}")
    else:
        print(text, end="")
    return 0
