"""JWT authentication (PyJWT) and channel permissions.

Tokens are verified with a shared secret (HS256) or a public key (RS256,
ES256). Claims: ``sub`` is the user id (required), ``exp`` is enforced
(required), and an optional ``channels`` list grants channels by pattern
(``fnmatch`` style: ``"chat:*"``, ``"user:alice"``).

Permissions are per namespace and per action (subscribe, publish, history,
presence); see :class:`Permission`. A refusal never says whether the channel
exists or has messages.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jwt

from .core.namespaces import Permission
from .exceptions import ConfigError, WirehubError

__all__ = ["AuthError", "Authenticator", "Identity", "Permission", "allowed"]


class AuthError(WirehubError):
    """A token was refused: ``reason`` says why (never the token itself)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason

    def __str__(self) -> str:
        return self.reason


@dataclass(frozen=True, slots=True)
class Identity:
    """Who a verified token says the client is."""

    user: str
    expires_at: float
    channels: tuple[str, ...] = ()
    claims: dict[str, Any] = field(default_factory=dict)

    def grants(self, channel: str) -> bool:
        return any(fnmatch.fnmatchcase(channel, pattern) for pattern in self.channels)


class Authenticator:
    """Verifies tokens; ``enabled`` is False when no key was configured (anonymous)."""

    def __init__(
        self,
        *,
        secret: str | None = None,
        public_key: str | None = None,
        algorithms: list[str] | None = None,
        audience: str | None = None,
        issuer: str | None = None,
        leeway: float = 0.0,
    ) -> None:
        if secret and public_key:
            raise ConfigError("jwt_public_key", "<set>", "either a secret or a public key")
        self._key: str | None = secret or public_key
        if algorithms is None:
            algorithms = ["HS256"] if secret else ["RS256", "ES256"]
        self.algorithms = algorithms
        self.audience = audience
        self.issuer = issuer
        self.leeway = leeway

    @classmethod
    def from_settings(cls, secret: str | None, public_key_file: str | None,
                      **kwargs: Any) -> Authenticator:
        key = None
        if public_key_file:
            try:
                key = Path(public_key_file).read_text()
            except OSError as exc:
                raise ConfigError("jwt_public_key", public_key_file,
                                  f"a readable PEM file ({exc.strerror})") from exc
        return cls(secret=secret or None, public_key=key, **kwargs)

    @property
    def enabled(self) -> bool:
        return self._key is not None

    def verify(self, token: str, *, now: float | None = None) -> Identity:
        """Check signature, ``exp`` and ``sub``; raise :class:`AuthError` if any fails."""
        if self._key is None:
            raise AuthError("authentication is not configured")
        if not isinstance(token, str) or not token or len(token) > 8192:
            raise AuthError("missing or oversized token")
        try:
            claims = jwt.decode(
                token,
                self._key,
                algorithms=self.algorithms,
                audience=self.audience,
                issuer=self.issuer,
                leeway=self.leeway,
                options={"require": ["exp", "sub"], "verify_aud": self.audience is not None},
            )
        except jwt.ExpiredSignatureError as exc:
            raise AuthError("token expired") from exc
        except jwt.PyJWTError as exc:  # InvalidKeyError (e.g. ES256 token, RSA key) too
            raise AuthError(f"invalid token: {exc}") from exc
        sub = claims.get("sub")
        if not isinstance(sub, str) or not sub:
            raise AuthError("invalid token: sub must be a non-empty string")
        channels = claims.get("channels", [])
        if not isinstance(channels, list) or not all(isinstance(c, str) for c in channels):
            raise AuthError("invalid token: channels must be a list of strings")
        exp = float(claims["exp"])
        if now is not None and exp <= now:
            raise AuthError("token expired")
        return Identity(sub, exp, tuple(channels), claims)



def allowed(rule: Permission, channel: str, identity: Identity | None) -> bool:
    """Whether a client with ``identity`` (None: anonymous) may act on ``channel``."""
    if rule is Permission.SERVER:
        return False
    if identity is not None and identity.grants(channel):
        return True
    if rule is Permission.ANYONE:
        return True
    if identity is None:
        return False
    if rule is Permission.AUTHENTICATED:
        return True
    if rule is Permission.OWNER:
        parts = channel.split(":")
        return len(parts) >= 2 and parts[1] == identity.user
    return False  # GRANTED without a matching claim
