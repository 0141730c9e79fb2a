"""CURVE encryption and authentication for the PUB and replay sockets.

With ``security.server_secret_key`` set, both sockets are CURVE servers and
pyzmq's authenticator (a thread, alive for the daemon's lifetime) admits only
clients whose public key files are in ``security.allowed_clients_dir``. Without
CURVE, painedge refuses to bind beyond loopback unless ``security.insecure``
says so: pain levels are patient data.
"""

from __future__ import annotations

import logging
import os
import stat
import time
from pathlib import Path
from typing import Callable

import zmq
import zmq.auth
import zmq.utils.z85
from zmq.auth.thread import ThreadAuthenticator

from .config import ConfigError, Settings, is_loopback
from .sockets import ZAP_DOMAIN, Curve


log = logging.getLogger(__name__)

REFUSAL_LOG_INTERVAL_S = 60.0  # a refused peer is logged once a minute at most (it may retry every second)


def curve_available() -> bool:
    return bool(zmq.has("curve"))


def _key_file(path: Path, kind: str, public: bytes, secret: bytes | None, mode: int, force: bool) -> None:
    """Write a ZeroMQ certificate (the format zmq.auth reads), created with ``mode`` from the first byte."""
    flags = os.O_WRONLY | os.O_CREAT | (os.O_TRUNC if force else os.O_EXCL)
    try:
        fd = os.open(path, flags, mode)
    except FileExistsError:
        raise ConfigError(f"{path} exists; stations that pinned that key would be cut off. Pass --force to replace "
                          f"it, or choose another name") from None
    if force:
        os.fchmod(fd, mode)  # an existing file keeps its mode through O_TRUNC
    lines = [f"#   ZeroMQ CURVE {kind} certificate, written by painedge", "", "metadata", "curve",
             f'    public-key = "{public.decode()}"']
    if secret is not None:
        lines.append(f'    secret-key = "{secret.decode()}"')
    with os.fdopen(fd, "w") as f:
        f.write("\n".join(lines) + "\n")


def generate_keys(folder: Path, name: str, force: bool = False) -> tuple[Path, Path]:
    """Write NAME.key (public, share it) and NAME.key_secret (mode 0600 from creation, keep it) in ``folder``.

    Refuses to replace an existing pair unless ``force``: a device or station
    whose key changes locks out every peer that knew the old one."""
    if not curve_available():
        raise ConfigError(f"this libzmq ({zmq.zmq_version()}) was built without CURVE; install a pyzmq wheel that has it")
    if not name or "/" in name or name.startswith("."):
        raise ConfigError(f"{name!r}: a key name is a plain file name, e.g. bed-12 or station-a")
    folder.mkdir(parents=True, exist_ok=True)
    public_file, secret_file = folder / f"{name}.key", folder / f"{name}.key_secret"
    if not force:
        for p in (public_file, secret_file):
            if p.exists():
                raise ConfigError(f"{p} exists; stations that pinned that key would be cut off. Pass --force to "
                                  f"replace it, or choose another name")
    public, secret = zmq.curve_keypair()
    _key_file(secret_file, "**Secret**", public, secret, 0o600, force)
    _key_file(public_file, "Public", public, None, 0o644, force)
    return public_file, secret_file


def _public_key(path: Path, fix: str) -> bytes:
    """The public key in a ZeroMQ certificate file, checked to be a CURVE key; else one ConfigError naming the file,
    what is wrong and ``fix``."""
    try:
        public, _secret = zmq.auth.load_certificate(str(path))
        raw = zmq.utils.z85.decode(public)
    except (ValueError, OSError, KeyError) as e:  # z85 raises KeyError for a character outside its alphabet
        raise ConfigError(f"{path}: not a ZeroMQ public key file ({type(e).__name__}: {e}); {fix}") from None
    if len(raw) != 32:
        raise ConfigError(f"{path}: the public key is not a 40-character Z85 CURVE key; {fix}")
    return public


def load_allowed_keys(folder: Path) -> dict[bytes, Path]:
    """The public keys in ``folder`` (*.key files); one clear error naming the first file that is not one."""
    keys: dict[bytes, Path] = {}
    for path in sorted(folder.glob("*.key")):
        public = _public_key(path, "every *.key file in security.allowed_clients_dir must be one (from "
                                     "`painedge keys generate`): fix or remove it")
        keys[public] = path
    if not keys:  # a device set up before its stations: allowed, but nobody can connect yet
        log.warning("security.allowed_clients_dir %s holds no *.key file: no station can connect until their public "
                    "keys are copied there", folder)
    return keys


def load_public_key(path: Path, what: str) -> bytes:
    """The other side's public key from its ``.key`` file; ``what`` names the setting or flag, for the errors."""
    fix = f"{what} is the other side's public .key file (from `painedge keys generate`)"
    if not path.is_file():
        raise ConfigError(f"{path}: no such key file; {fix}" if not path.exists() else f"{path}: not a file; {fix}")
    return _public_key(path, fix)


def load_keypair(path: Path) -> Curve:
    """A key pair from a ``.key_secret`` file, readable by its owner only; one clear error when it is not one."""
    if not path.exists():
        raise ConfigError(f"{path}: no such key file (create one with `painedge keys generate`)")
    try:
        public, secret = zmq.auth.load_certificate(str(path))
    except (ValueError, OSError) as e:
        raise ConfigError(f"{path}: not a ZeroMQ certificate ({e})") from None
    if not secret:
        raise ConfigError(f"{path}: holds only a public key; point at the .key_secret file")
    if path.stat().st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ConfigError(f"{path}: secret key readable by others; chmod 600 {path}")
    return Curve(public, secret)


def check(settings: Settings) -> Curve | None:
    """Validate the security settings before anything binds; the CURVE keys when configured."""
    sec, pub = settings.security, settings.publish
    endpoints = [e for e in (pub.pub, pub.replay) if e]
    if sec.server_secret_key is None:
        exposed = [e for e in endpoints if not is_loopback(e)]
        if exposed and not sec.insecure:
            raise ConfigError(f"refusing to publish on {', '.join(exposed)} without CURVE: set "
                              f"security.server_secret_key and security.allowed_clients_dir "
                              f"(`painedge keys generate`), or security.insecure = true on a trusted network")
        return None
    if not curve_available():
        raise ConfigError(f"security.server_secret_key is set but this libzmq ({zmq.zmq_version()}) has no CURVE support")
    if sec.allowed_clients_dir is None or not sec.allowed_clients_dir.is_dir():
        raise ConfigError(f"security.allowed_clients_dir {sec.allowed_clients_dir} is not a folder; CURVE needs the "
                          f"public keys of the subscribers allowed in")
    load_allowed_keys(sec.allowed_clients_dir)
    return load_keypair(sec.server_secret_key)


class RefusalAwareAuthenticator(ThreadAuthenticator):
    """pyzmq's authenticator thread, admitting exactly the keys painedge loaded and validated, and
    reporting every refusal (``on_refused(address, key, first_in_minute)``) so a station with the
    wrong key is visible on the device."""

    def __init__(self, context: zmq.Context, allowed: dict[bytes, Path],
                 on_refused: Callable[[str, str, bool], None]) -> None:
        super().__init__(context)
        self.allowed, self.on_refused = allowed, on_refused
        self._address = "?"
        self._last_logged: dict[str, float] = {}

    async def handle_zap_message(self, msg: list[bytes]) -> None:
        self._address = msg[3].decode("utf-8", "replace") if len(msg) > 3 else "?"
        await super().handle_zap_message(msg)

    def callback(self, domain: str, key: bytes) -> bool:  # the credentials provider's interface
        if key in self.allowed:
            return True
        now = time.monotonic()
        tag = f"{self._address} {key.decode('ascii', 'replace')}"
        first = now - self._last_logged.get(tag, -REFUSAL_LOG_INTERVAL_S) >= REFUSAL_LOG_INTERVAL_S
        if first:
            self._last_logged[tag] = now
            if len(self._last_logged) > 1024:
                self._last_logged = {t: at for t, at in self._last_logged.items() if now - at < REFUSAL_LOG_INTERVAL_S}
        try:
            self.on_refused(self._address, key.decode("ascii", "replace"), first)
        except Exception:  # noqa: BLE001 - reporting must never break authentication
            pass
        return False

    def is_alive(self) -> bool:
        return self.thread is not None and self.thread.is_alive()


def start_authenticator(context: zmq.Context, allowed_clients_dir: Path,
                        on_refused: Callable[[str, str, bool], None] = lambda address, key, first: None,
                        ) -> RefusalAwareAuthenticator:
    auth = RefusalAwareAuthenticator(context, load_allowed_keys(allowed_clients_dir), on_refused)
    auth.start()
    auth.configure_curve_callback(domain=ZAP_DOMAIN, credentials_provider=auth)
    return auth
