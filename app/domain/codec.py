"""Turns events (and any plain frozen dataclass) into JSON and back, driven by their type hints. The message that
carries an event between processes is the adapters' business (:mod:`app.adapters.wire`)."""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Callable
from datetime import datetime
from enum import Enum
from functools import cache
from typing import Any, TypeVar

import orjson

from app.domain.events import EVENT_TYPES, DomainEvent

T = TypeVar("T")


def from_plain(tp: Any, value: Any) -> Any:
    """A ``tp`` from the plain JSON values that :func:`dumps` wrote for it."""
    return _decoder(tp)(value)


def _identity(value: Any) -> Any:
    return value


@cache
def _decoder(tp: Any) -> Callable[[Any], Any]:
    """A function that turns plain JSON values into ``tp``, worked out once per type from its hints."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        inner = _decoder(next(a for a in typing.get_args(tp) if a is not type(None)))
        return lambda value: None if value is None else inner(value)
    if origin is tuple:
        item = _decoder(typing.get_args(tp)[0])
        return lambda value: tuple(item(v) for v in value)
    if origin is list:
        item = _decoder(typing.get_args(tp)[0])
        return lambda value: [item(v) for v in value]
    if origin is dict:
        item = _decoder(typing.get_args(tp)[1])
        return lambda value: {k: item(v) for k, v in value.items()}
    if tp is datetime:
        return datetime.fromisoformat
    if isinstance(tp, type) and issubclass(tp, Enum):
        return tp
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        fields = {name: _decoder(hint) for name, hint in typing.get_type_hints(tp).items()}
        return lambda value: tp(**{name: fields[name](v) for name, v in value.items() if name in fields})
    return _identity


def load(cls: type[T], value: Any) -> T:
    result: T = from_plain(cls, value)
    return result


def dumps(value: Any) -> bytes:
    """JSON of a dataclass tree: orjson writes dataclasses, datetimes (ISO 8601) and enums (their values)
    natively."""
    return orjson.dumps(value)


def loads(raw: bytes | str) -> Any:
    return orjson.loads(raw)


def event_from_data(type_name: str, data: dict[str, Any]) -> DomainEvent:
    try:
        cls = EVENT_TYPES[type_name]
    except KeyError:
        raise ValueError(f"unknown event type {type_name!r}") from None
    event: DomainEvent = from_plain(cls, data)
    return event
