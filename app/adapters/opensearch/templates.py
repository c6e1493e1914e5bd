"""The history index's template: one document per history entry, its id the entry's (the event's) id.

The integ-test distribution that the stack runs has no analysis module, so nothing is analysed: ids, kinds and
sources are ``keyword``, numbers ``long``, the time both a ``date`` (milliseconds, for calendar histograms) and
``occurred_us``, its exact microseconds since the epoch (for ordering, cursors and range filters, which must agree
with the in-memory adapter to the microsecond). ``reason`` and ``lots`` are kept in ``_source`` only: nobody
searches them. ``dynamic: strict`` refuses a document with a field that is not here.
"""

from __future__ import annotations

from typing import Any

REFRESH_INTERVAL = "1s"

# Each field is indexed (points, terms) only when something filters on it, and has doc values only when something
# sorts or aggregates on it: less work per document. Ids are 1..128 characters (the API validates them), so no
# ignore_above: a longer one is refused rather than silently left out of the index.
_FILTERED_ID: dict[str, Any] = {"type": "keyword", "doc_values": False}

MAPPINGS: dict[str, Any] = {
    "dynamic": "strict",
    "properties": {
        "entry_id": _FILTERED_ID,  # also the document's _id
        "user_id": {"type": "keyword"},  # filtered and sorted on
        "version": {"type": "long", "index": False},  # sorted on (history, version)
        "kind": {"type": "keyword"},  # filtered and aggregated on
        "amount": {"type": "long"},  # filtered and summed
        "delta": {"type": "long", "index": False},  # summed
        "occurred_at": {"type": "date", "format": "strict_date_optional_time", "index": False},  # histograms
        "occurred_us": {"type": "long"},  # filtered and sorted on
        "source": {"type": "keyword", "doc_values": False},
        "order_id": _FILTERED_ID,
        "grant_id": _FILTERED_ID,
        "use_id": _FILTERED_ID,
        "reason": {"type": "keyword", "index": False, "doc_values": False},
        "lots": {"type": "object", "enabled": False},
    },
}


def template_name(alias: str) -> str:
    return f"{alias}-template"


def index_pattern(alias: str) -> str:
    return f"{alias}-*"


def index_template(alias: str) -> dict[str, Any]:
    """The composable index template that every versioned index behind ``alias`` is created from."""
    return {
        "index_patterns": [index_pattern(alias)],
        "priority": 100,
        "template": {
            "settings": {
                "index": {
                    "number_of_shards": 1,
                    "number_of_replicas": 0,  # a single node: a replica could never be assigned
                    "refresh_interval": REFRESH_INTERVAL,  # explicit, so that an idle shard keeps refreshing too
                }
            },
            "mappings": MAPPINGS,
        },
        "_meta": {"owner": "point-ledger", "what": "history entries, one document per entry"},
    }
