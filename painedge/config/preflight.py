"""The one check that `painedge config check` and `painedge run` share: the rules between settings,
the security rules, the source, and every file named."""

from __future__ import annotations

import os
from pathlib import Path

from .errors import ConfigError, shown_path
from .loader import Origins, format_problems
from .settings import Settings, relations


def _check_readable(what: str, path: Path, folder: bool = False) -> None:
    if not path.exists():
        raise ConfigError(f"{what} {shown_path(path)}: no such {'folder' if folder else 'file'}")
    if folder != path.is_dir():
        raise ConfigError(f"{what} {shown_path(path)}: is {'not ' if folder else ''}a folder, expected "
                          f"{'a folder' if folder else 'a file'}")
    if not os.access(path, os.R_OK | (os.X_OK if folder else 0)):
        raise ConfigError(f"{what} {shown_path(path)}: not readable by this user (uid {os.getuid()}); "
                          f"fix its permissions")


def _check_model(path: Path) -> None:
    """The model's metadata, checksum and features, as the daemon checks them (without loading the interpreter)."""
    from ..model import ModelError, ModelMeta, sha256_of

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
    from .. import security
    from ..sources import check_source

    problems = relations(settings)
    if problems:
        raise ConfigError(format_problems(problems, Origins("settings", None, {}, {})))
    if settings.face.backend == "mediapipe":
        from ..errors import UserError, need

        try:
            need("mediapipe", "mediapipe", 'face.backend = "mediapipe"')
        except UserError as e:
            raise ConfigError(f"{e}; or use the default, face.backend = \"litert\" (the same landmarks)") from None
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
