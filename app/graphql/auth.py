"""Bearer tokens: HS256 JWTs whose ``sub`` is the caller and ``roles`` a list of user, service and admin."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import jwt

from app.application.authorization import Actor, Role

ALGORITHM = "HS256"


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
    if not authorization:
        return Caller(None, "authentication required: send Authorization: Bearer <token>")
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return Caller(None, "the Authorization header must be: Bearer <token>")
    try:
        claims = jwt.decode(token.strip(), secret, algorithms=[ALGORITHM], options={"require": ["sub", "exp"]})
    except jwt.ExpiredSignatureError:
        return Caller(None, "the token has expired")
    except jwt.InvalidTokenError:
        return Caller(None, "the token is not valid")
    subject, roles = claims.get("sub"), claims.get("roles", [])
    if not isinstance(subject, str) or not subject or not isinstance(roles, list):
        return Caller(None, "the token needs a string sub and a list of roles")
    known = {r.value for r in Role}
    return Caller(Actor(subject, frozenset(Role(r) for r in roles if isinstance(r, str) and r in known)))
