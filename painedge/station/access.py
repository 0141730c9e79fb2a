"""Who may use the station's web board, and what a request may carry.

An open board (loopback, no users) answers only requests addressed to a loopback name; otherwise a
token (cookie or Bearer) names a user whose role decides what they may do. A POST from another
site is refused, and a form is read only when small, known and all text. A refusal is ``Refused``:
a status and one message.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.responses import JSONResponse

from ..config import host_header_is_loopback
from .settings import ROLE_CAN, StationSettings, User, is_loopback_host

COOKIE = "painedge_station"
MAX_FORM_BYTES = 4096
OPEN_ACCOUNT = "open board (loopback)"


class Refused(Exception):
    """A request the station will not serve: its HTTP status and one message for the user."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


def json_error(status: int, message: str) -> JSONResponse:
    """A refusal as the API answers it: ``{"ok": false, "error": message}`` with ``status``."""
    return JSONResponse({"ok": False, "error": message}, status_code=status)


class Access:
    """Who is asking, and may they: open on loopback with no users, else a token (cookie or Bearer) and a role."""

    def __init__(self, settings: StationSettings) -> None:
        self.users = settings.users
        self.open = not settings.users and is_loopback_host(settings.host_port[0])
        self.secure_cookie = settings.tls

    def user(self, request: Request) -> User | None:
        token = request.cookies.get(COOKIE, "")
        auth = request.headers.get("authorization", "")
        if auth.lower().startswith("bearer "):
            token = auth[7:].strip()
        if not token:
            return None
        return next((u for u in self.users if u.matches(token)), None)

    def may(self, request: Request, action: str) -> bool:
        try:
            self.account(request, action)
        except Refused:
            return False
        return True

    def account(self, request: Request, action: str) -> str:
        """The account name allowed to do ``action``; raises Refused."""
        if self.open:
            return OPEN_ACCOUNT
        user = self.user(request)
        if user is None:
            raise Refused(401, "log in first")
        if action not in ROLE_CAN[user.role]:
            raise Refused(403, f"a {user.role} account may not {action}")
        return user.name


class LoopbackHostOnly:
    """An open board (loopback, no users) answers only requests addressed to a loopback name: a web page
    elsewhere whose DNS name is made to point at 127.0.0.1 (DNS rebinding) sends its own name, gets 403."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] in ("http", "websocket"):
            host = dict(scope.get("headers") or []).get(b"host", b"").decode("latin-1")
            if not host_header_is_loopback(host):
                await json_error(403, "this board is open on loopback only: address it as 127.0.0.1 or localhost")(
                    scope, receive, send)
                return
        await self.app(scope, receive, send)


def same_origin(request: Request) -> bool:
    """Browsers send Origin on POST: a form posted from another site is refused (with SameSite=Strict cookies)."""
    origin = request.headers.get("origin")
    if origin is None or origin == "null":
        return origin is None
    return urlsplit(origin).netloc == request.headers.get("host", "")


async def read_form(request: Request, allowed: set[str]) -> dict[str, str]:
    if int(request.headers.get("content-length") or 0) > MAX_FORM_BYTES:
        raise Refused(413, f"the form is larger than {MAX_FORM_BYTES} bytes")
    ctype = request.headers.get("content-type", "")
    try:
        if ctype.startswith("application/json"):
            body = await request.body()
            if len(body) > MAX_FORM_BYTES:
                raise Refused(413, f"the form is larger than {MAX_FORM_BYTES} bytes")
            data = json.loads(body)
            if not isinstance(data, dict):
                raise ValueError("not an object")
        elif ctype.startswith(("application/x-www-form-urlencoded", "multipart/form-data")):
            form = await request.form(max_files=0, max_fields=10)
            data = {k: v for k, v in form.items()}
        else:
            raise Refused(415, "send the form as application/x-www-form-urlencoded or JSON")
    except Refused:
        raise
    except Exception:  # noqa: BLE001 - any parse failure is the client's
        raise Refused(400, "the form could not be read") from None
    unknown = set(data) - allowed
    if unknown:
        raise Refused(400, f"unknown field {sorted(unknown)[0]!r}; expected {', '.join(sorted(allowed))}")
    if not all(isinstance(v, str) for v in data.values()):
        raise Refused(400, "every field must be text")
    return data
