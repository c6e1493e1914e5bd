"""Who may do what (the role matrix). Checked before a use case runs; a refusal changes nothing."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from app.application.errors import ForbiddenError
from app.domain.events import Source


class Role(StrEnum):
    USER = "user"
    SERVICE = "service"
    ADMIN = "admin"


class Action(StrEnum):
    GRANT = "grant"
    ACTIVATE = "activate"
    USE = "use"
    CANCEL_USE = "cancel use"
    CANCEL_GRANT = "cancel grant"
    CLAWBACK = "claw back"
    EXPIRE = "run expiry"
    SET_CLOCK = "set the test clock"
    READ_BALANCE = "read balance"
    READ_EXPIRING = "read expiring points"
    READ_HISTORY = "read history"
    SEARCH = "search entries"
    STATS = "read statistics"
    READ_ACCOUNT = "read account detail"


SERVICE_ACTIONS = frozenset(
    {
        Action.GRANT,
        Action.ACTIVATE,
        Action.USE,
        Action.CANCEL_USE,
        Action.CANCEL_GRANT,
        Action.CLAWBACK,
        Action.READ_BALANCE,
    }
)
OWN_ACTIONS = frozenset({Action.READ_BALANCE, Action.READ_EXPIRING, Action.READ_HISTORY})
SERVICE_SOURCES = frozenset({Source.ORDER, Source.PROMOTION})


@dataclass(frozen=True)
class Actor:
    subject: str
    roles: frozenset[Role]


def authorize(actor: Actor | None, action: Action, user_id: str | None = None, source: Source | None = None) -> None:
    """``admin`` may do everything; ``service`` (an order system) grants ORDER and PROMOTION points, uses, cancels,
    claws back and activates for any user and reads balances; ``user`` reads only its own balance, expiring points
    and history."""
    if actor is None:
        raise ForbiddenError("authentication required: send Authorization: Bearer <token>")
    if Role.ADMIN in actor.roles:
        return
    if Role.SERVICE in actor.roles and action in SERVICE_ACTIONS:
        if action is Action.GRANT and source not in SERVICE_SOURCES:
            raise ForbiddenError(f"the service role may not grant {source.value if source else 'these'} points")
        return
    if Role.USER in actor.roles and action in OWN_ACTIONS and user_id == actor.subject:
        return
    raise ForbiddenError(f"{actor.subject} may not {action.value}" + (f" for {user_id}" if user_id else ""))
