"""Opaque page cursors: the sort values of the last entry of a page, as URL-safe base64 JSON."""

from __future__ import annotations

import base64
import binascii
from typing import Any

import orjson


def encode_cursor(values: list[Any]) -> str:
    return base64.urlsafe_b64encode(orjson.dumps(values)).decode()


def decode_cursor(cursor: str) -> list[Any]:
    """Raises ValueError for anything this module did not make."""
    try:
        values = orjson.loads(base64.urlsafe_b64decode(cursor.encode()))
    except (binascii.Error, orjson.JSONDecodeError, UnicodeError) as error:
        raise ValueError("malformed cursor") from error
    if not isinstance(values, list) or not values:
        raise ValueError("malformed cursor")
    return values
