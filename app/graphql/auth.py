"""Bearer tokens: HS256 JWTs whose ``sub`` is the caller and ``roles`` a list of user, service and admin."""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import jwt

from app.application.authorization import Actor, Role

ALGORITHM = "HS256"
CACHED_TOKENS = 1024
"""Verified tokens kept (by their text) so that a client's next request skips the signature check."""

wall_clock = time.time
"""Seconds since the epoch, as a token's ``exp`` counts them (replaced in tests)."""


@dataclass(frozen=True)
class Caller:
    """Who sent a request: an actor, or why there is none (no token, or a token that does not check out)."""

    actor: Actor | None
    refusal: str | None = None


def mint_token(secret: str, subject: str, roles: Iterable[str], hours: float = 24.0) -> str:
    now = datetime.now(UTC)
    claims = {
        "sub": subject,
        "roles": [Role(r).value for r in roles],
        "iat": now,
        "exp": now + timedelta(hours=hours),
    }
    return jwt.encode(claims, secret, algorithm=ALGORITHM)


def caller_from_header(authorization: str | None, secret: str) -> Caller:
    """Reads ``Authorization: Bearer <JWT>``. Never raises: a bad token makes an anonymous caller with a reason,
    and every resolver refuses an anonymous caller with a ForbiddenError."""
    token, refusal = _bearer(authorization)
    return _verify(token, secret)[0] if token is not None else Caller(None, refusal)


class BearerTokens:
    """``caller_from_header`` with a small LRU of verified tokens: the signature and claims of a token are checked
    once, its expiry at every use. Tokens that do not check out are not kept."""

    def __init__(self, secret: str, size: int = CACHED_TOKENS) -> None:
        self._secret = secret
        self._size = size
        self._verified: OrderedDict[str, tuple[Caller, float]] = OrderedDict()

    def caller(self, authorization: str | None) -> Caller:
        token, refusal = _bearer(authorization)
        if token is None:
            return Caller(None, refusal)
        verified = self._verified.get(token)
        if verified is not None:
            caller, expires = verified
            if wall_clock() < expires:
                self._verified.move_to_end(token)
                return caller
            del self._verified[token]
            return Caller(None, _EXPIRED)
        caller, expiry = _verify(token, self._secret)
        if caller.actor is not None and expiry is not None:
            self._verified[token] = (caller, expiry)
            if len(self._verified) > self._size:
                self._verified.popitem(last=False)
        return caller


_EXPIRED = "the token has expired"


MAX_TOKEN_CHARS = 4_096
"""A token of the ledger is a few hundred characters; a longer one is refused unread (not decoded, not verified)."""
NUMERIC_CLAIMS = ("exp", "iat", "nbf")
"""Times in seconds since the epoch: JSON numbers (RFC 7519), which PyJWT does not insist on (it takes "123")."""


def _bearer(authorization: str | None) -> tuple[str | None, str]:
    """The token of ``Bearer <token>``, or None and why not."""
    if not authorization:
        return None, "authentication required: send Authorization: Bearer <token>"
    if len(authorization) > MAX_TOKEN_CHARS + 7:
        return None, f"the token is longer than {MAX_TOKEN_CHARS} characters"
    scheme, _, token = authorization.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        return None, "the Authorization header must be: Bearer <token>"
    return token, ""


def _verify(token: str, secret: str) -> tuple[Caller, float | None]:
    """The caller a token names and when it expires (seconds since the epoch), or an anonymous caller and why."""
    try:
        claims = jwt.decode(token, secret, algorithms=[ALGORITHM], options={"require": ["sub", "exp"]})
    except jwt.ExpiredSignatureError:
        return Caller(None, _EXPIRED), None
    except jwt.InvalidTokenError:
        return Caller(None, "the token is not valid"), None
    for name in NUMERIC_CLAIMS:
        value = claims.get(name)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)):
            return Caller(None, f"the token's {name} must be a number"), None
    subject, roles = claims.get("sub"), claims.get("roles", [])
    if not isinstance(subject, str) or not subject or not isinstance(roles, list):
        return Caller(None, "the token needs a string sub and a list of roles"), None
    known = {r.value for r in Role}
    actor = Actor(subject, frozenset(Role(r) for r in roles if isinstance(r, str) and r in known))
    return Caller(actor), float(int(claims["exp"]))  # as PyJWT reads it
