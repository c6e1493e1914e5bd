"""The event's wire form: the outbox row's payload, the Kafka message's value (Debezium's outbox EventRouter
passes the payload on as it is, keyed by the user id) and the embedded relay's input::

    {"eventId": "...", "type": "PointsUsed", "userId": "...", "version": 7, "occurredAt": "...", "data": {...}}

``data`` is the event's own fields (:func:`app.domain.codec.dumps`). This is the contract between the write side and
every consumer of the events topic.
"""

from __future__ import annotations

from typing import Any

import orjson

from app.domain.codec import event_from_data
from app.domain.events import RecordedEvent


def encode_message(recorded: RecordedEvent, data: bytes | None = None) -> bytes:
    """The event exactly as it travels: outbox payload, Kafka value, relay input. ``data``, when given, is the
    event's :func:`dumps` already made, which the message then holds as it is instead of encoding it again."""
    return orjson.dumps(
        {
            "eventId": recorded.event_id,
            "type": recorded.type,
            "userId": recorded.user_id,
            "version": recorded.version,
            "occurredAt": recorded.event.occurred_at,
            "data": recorded.event if data is None else orjson.Fragment(data),
        }
    )


def decode_message(raw: bytes | str | dict[str, Any]) -> RecordedEvent:
    message = raw if isinstance(raw, dict) else orjson.loads(raw)
    return RecordedEvent(
        event_id=message["eventId"],
        user_id=message["userId"],
        version=int(message["version"]),
        event=event_from_data(message["type"], message["data"]),
    )
