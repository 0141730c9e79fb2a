"""CURVE encryption and authentication for the PUB and replay sockets.

With ``security.server_secret_key`` set, both sockets are CURVE servers and
pyzmq's authenticator (a thread, alive for the daemon's lifetime) admits only
clients whose public key files are in ``security.allowed_clients_dir``. Without
CURVE, painedge refuses to bind beyond loopback unless ``security.insecure``
says so: pain levels are patient data.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import zmq
import zmq.auth
from zmq.auth.thread import ThreadAuthenticator

from .config import ConfigError, Settings, is_loopback
from .publish import ZAP_DOMAIN, Curve


def curve_available() -> bool:
    return bool(zmq.has("curve"))


def generate_keys(folder: Path, name: str) -> tuple[Path, Path]:
    """Write NAME.key (public, share it) and NAME.key_secret (mode 0600, keep it) in ``folder``."""
    if not curve_available():
        raise ConfigError(f"this libzmq ({zmq.zmq_version()}) was built without CURVE; install a pyzmq wheel that has it")
    folder.mkdir(parents=True, exist_ok=True)
    public, secret = (Path(p) for p in zmq.auth.create_certificates(str(folder), name))
    os.chmod(secret, stat.S_IRUSR | stat.S_IWUSR)
    return public, secret


def load_keypair(path: Path) -> Curve:
    """A key pair from a ``.key_secret`` file; one clear error when it is not one."""
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
    return load_keypair(sec.server_secret_key)


def start_authenticator(context: zmq.Context, allowed_clients_dir: Path) -> ThreadAuthenticator:
    auth = ThreadAuthenticator(context)
    auth.start()
    auth.configure_curve(domain=ZAP_DOMAIN, location=str(allowed_clients_dir))
    return auth
