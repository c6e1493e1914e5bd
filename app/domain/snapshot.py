"""A compact snapshot form of :class:`AccountState`: positional rows instead of keyed objects.

A snapshot holds every lot and use an account ever had. Rows decode several times faster than the generic,
type-hint-driven codec, and the uses (most of a long account) are not decoded at all until a command needs one.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

import orjson

from app.domain.account import AccountState, Lot, LotStatus, Use, UseBook
from app.domain.events import Allocation, Source

FORMAT = 1


def _time(at: datetime | None) -> str | None:
    return None if at is None else at.isoformat()


def _parse(at: str | None) -> datetime | None:
    return None if at is None else datetime.fromisoformat(at)


def _use_rows(uses: Iterable[Use]) -> bytes:
    return orjson.dumps(
        [
            [
                use.use_id,
                use.amount,
                use.used_at.isoformat(),
                [[a.grant_id, a.amount] for a in use.allocations],
                use.given_back,
                use.order_id,
            ]
            for use in uses
        ]
    )


def _decode_uses(rows: bytes) -> dict[str, Use]:
    return {
        use_id: Use(
            use_id=use_id,
            amount=amount,
            used_at=datetime.fromisoformat(used_at),
            allocations=tuple(Allocation(g, a) for g, a in allocations),
            given_back=given_back,
            order_id=order_id,
        )
        for use_id, amount, used_at, allocations, given_back, order_id in orjson.loads(rows)
    }


def _join_arrays(left: bytes, right: bytes) -> bytes:
    """Two JSON arrays as one, without decoding either."""
    if left == b"[]":
        return right
    if right == b"[]":
        return left
    return left[:-1] + b"," + right[1:]


def encode_state(state: AccountState) -> bytes:
    """The state as one JSON line, then a newline, then the uses as a JSON array (kept apart so that loading
    can leave them encoded: see :class:`UseBook`). orjson never writes a raw newline, so the split is safe."""
    lots = [
        [
            lot.grant_id,
            lot.source.value,
            lot.amount,
            lot.remaining,
            lot.granted_at.isoformat(),
            lot.expires_at.isoformat(),
            lot.validity_seconds,
            lot.manual,
            lot.seq,
            lot.status.value,
            _time(lot.pending_until),
            lot.order_id,
            lot.reissued_from,
            lot.reason,
            lot.clawed_back,
            lot.expired_amount,
        ]
        for lot in state.lots.values()
    ]
    encoded, fresh = state.uses.split()
    uses = _use_rows(fresh.values())
    head = orjson.dumps(
        {
            "format": FORMAT,
            "user_id": state.user_id,
            "version": state.version,
            "next_seq": state.next_seq,
            "lots": lots,
            "order_grants": state.order_grants,
        }
    )
    return head + b"\n" + (uses if encoded is None else _join_arrays(encoded, uses))


def decode_state(raw: bytes | str) -> AccountState:
    head, uses = (raw.encode() if isinstance(raw, str) else raw).split(b"\n", 1)
    data: dict[str, Any] = orjson.loads(head)
    if data.get("format") != FORMAT:
        raise ValueError(f"unknown snapshot format {data.get('format')!r}")
    lots = {}
    for row in data["lots"]:
        (gid, source, amount, remaining, granted, expires, validity, manual, seq, status, pending, order, reissued,
         reason, clawed, expired) = row  # fmt: skip
        lots[gid] = Lot(
            grant_id=gid,
            source=Source(source),
            amount=amount,
            remaining=remaining,
            granted_at=datetime.fromisoformat(granted),
            expires_at=datetime.fromisoformat(expires),
            validity_seconds=validity,
            manual=manual,
            seq=seq,
            status=LotStatus(status),
            pending_until=_parse(pending),
            order_id=order,
            reissued_from=reissued,
            reason=reason,
            clawed_back=clawed,
            expired_amount=expired,
        )
    return AccountState(
        user_id=data["user_id"],
        version=data["version"],
        next_seq=data["next_seq"],
        lots=lots,
        uses=UseBook(encoded=uses, decode=_decode_uses),
        order_grants=data["order_grants"],
    )
