"""Who gets through the WebSocket handshake: Origin, connection limits, token.

Every check answers with a plain HTTP status before the upgrade, so a refused
client costs no WebSocket state:

* Origin not allowed -> 403 (cross-site WebSocket hijacking, RFC 6455 §10.2)
* too many connections -> 503 (in total) or 429 (from one IP address)
* ``Authorization: Bearer`` (or an enabled ``?token=``) that fails -> 401
"""

from __future__ import annotations

import logging
from collections import Counter
from urllib.parse import urlsplit

from aiohttp import web

from ..auth import Authenticator, AuthError, Identity
from ..config import ServerConfig

__all__ = ["Admission", "Refused"]

log = logging.getLogger("wirehub.admission")


class Refused(Exception):
    """The handshake is refused with ``response``."""

    def __init__(self, response: web.Response) -> None:
        super().__init__(response.status)
        self.response = response


def _refuse(status: int, text: str, **headers: str) -> Refused:
    return Refused(web.Response(status=status, text=text + "\n", headers=headers))


def _origin_key(url: str) -> str:
    """``host:port`` with default ports made explicit, lower case; ValueError if malformed."""
    parts = urlsplit(url.strip().lower())
    port = parts.port or {"http": 80, "https": 443, "ws": 80, "wss": 443}.get(parts.scheme, 0)
    if not parts.hostname:
        raise ValueError(f"no host in {url!r}")
    return f"{parts.hostname}:{port}"


def _hostname(url: str) -> str:
    return _origin_key(url).rsplit(":", 1)[0]


class Admission:
    """Checks a handshake and counts admitted connections per IP address."""

    def __init__(self, config: ServerConfig, auth: Authenticator) -> None:
        self.config = config
        self.auth = auth
        self.per_ip: Counter[str] = Counter()
        self.total = 0
        origins = config.allowed_origins
        self.any_origin = origins is not None and "*" in origins
        self.origins = frozenset(_origin_key(o) for o in origins or () if o != "*")

    # -- checks ---------------------------------------------------------------------
    def check(self, request: web.Request, *, token: bool = True) -> Identity | None:
        """Raise :class:`Refused`, or return the token's identity (None: no token)."""
        self._check_origin(request)
        self._check_limits(request)
        return self._check_token(request) if token else None

    def _check_origin(self, request: web.Request) -> None:
        origin = request.headers.get("Origin")
        if origin is None or self.any_origin:
            return  # non-browser clients send no Origin
        try:
            key = _origin_key(origin)
            if self.origins:
                if key in self.origins:
                    return
            else:  # default: same host as the one the client addressed
                scheme = "https" if request.secure else "http"
                host = request.host
                if ":" not in host.rsplit("]", 1)[-1]:
                    # no port in Host: behind a TLS-terminating proxy the scheme we see
                    # is not the browser's, so compare host names only
                    if _hostname(origin) == _hostname(f"{scheme}://{host}"):
                        return
                elif key == _origin_key(f"{scheme}://{host}"):
                    return
        except ValueError:
            pass  # a malformed Origin or Host is refused like a foreign one
        log.info("refused handshake from %s: origin %s not allowed", request.remote, origin)
        raise _refuse(403, f"origin {origin} is not allowed")

    def _check_limits(self, request: web.Request) -> None:
        if self.total >= self.config.max_connections:
            raise _refuse(503, "too many connections, try again later", **{"Retry-After": "5"})
        if self.per_ip[request.remote or ""] >= self.config.max_connections_per_ip:
            raise _refuse(429, "too many connections from your address", **{"Retry-After": "5"})

    def _check_token(self, request: web.Request) -> Identity | None:
        if not self.auth.enabled:
            return None
        token = None
        header = request.headers.get("Authorization", "")
        if header:
            scheme, _, value = header.partition(" ")
            if scheme.lower() != "bearer" or not value.strip():
                raise _refuse(401, "Authorization must be 'Bearer <token>'",
                              **{"WWW-Authenticate": "Bearer"})
            token = value.strip()
        elif self.config.allow_query_token:
            token = request.query.get("token")
        if token is None:
            return None  # the client authenticates with a connect frame
        try:
            return self.auth.verify(token)
        except AuthError as exc:
            log.info("refused handshake from %s: %s", request.remote, exc)
            raise _refuse(401, str(exc), **{"WWW-Authenticate": 'Bearer error="invalid_token"'}
                          ) from None

    # -- counting ---------------------------------------------------------------------
    def admitted(self, request: web.Request) -> None:
        self.total += 1
        self.per_ip[request.remote or ""] += 1

    def released(self, request: web.Request) -> None:
        self.total -= 1
        ip = request.remote or ""
        self.per_ip[ip] -= 1
        if self.per_ip[ip] <= 0:
            del self.per_ip[ip]
