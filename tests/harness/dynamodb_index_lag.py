"""Global secondary indexes that lag behind their table, as DynamoDB's may.

AWS: "Global secondary indexes support eventually consistent reads ... changes to the table
data are propagated to the global secondary indexes within a fraction of a second, under
normal conditions" (Amazon DynamoDB Developer Guide, "Using Global Secondary Indexes",
"Read consistency"). moto's indexes are always current, so code that decides on a GSI read
(one live session per stack, say) never meets the race it would meet in AWS.

With a lag set (``POST /plldb-localcloud/dynamodb {"index_lag_seconds": N}``), a Query of an
index does not return items written (put or updated) less than N seconds ago: the index has
not caught up with them yet. Base-table reads are unaffected. Runs in the moto launcher.
"""

from __future__ import annotations

import functools
import json
import threading
import time
from collections.abc import Callable
from typing import Any

_WRITES = {"DynamoDB_20120810.PutItem", "DynamoDB_20120810.UpdateItem"}
_QUERY = "DynamoDB_20120810.Query"
_lock = threading.Lock()
_written: dict[tuple[str, str], float] = {}  # (table, key as JSON) -> monotonic time
lag_seconds = 0.0


def configure(body: dict[str, Any]) -> dict[str, Any]:
    """The control endpoint: set the lag (0 turns it off, and forgets the writes)."""
    global lag_seconds
    if "index_lag_seconds" in body:
        lag_seconds = float(body["index_lag_seconds"] or 0)
        with _lock:
            _written.clear()
    return {"index_lag_seconds": lag_seconds}


def lagging(call_action: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap DynamoHandler.call_action: note each write, hide recent ones from index queries."""

    @functools.wraps(call_action)
    def call(self: Any) -> Any:
        target = self.headers.get("X-Amz-Target", "")
        body = _json(self.body)
        result = call_action(self)
        if not lag_seconds:
            return result
        if target in _WRITES:
            _note_write(self, body)
        elif target == _QUERY and body.get("IndexName"):
            return _without_recent(self, body, result)
        return result

    return call


def _json(raw: Any) -> dict[str, Any]:
    try:
        text = raw.decode() if isinstance(raw, bytes) else raw
        value = json.loads(text or "{}")
    except (ValueError, UnicodeDecodeError):
        return {}
    return value if isinstance(value, dict) else {}


def _key(handler: Any, table: str, item: dict[str, Any]) -> str | None:
    """The item's primary key as JSON (the table's key attributes only)."""
    try:
        schema = handler.dynamodb_backend.get_table(table).schema
    except Exception:  # noqa: BLE001 - an unknown table: moto answers that itself
        return None
    names = sorted(element["AttributeName"] for element in schema)
    return json.dumps({name: item.get(name) for name in names}, sort_keys=True)


def _note_write(handler: Any, body: dict[str, Any]) -> None:
    table = body.get("TableName", "")
    key = _key(handler, table, body.get("Item") or body.get("Key") or {})
    if key is not None:
        with _lock:
            _written[(table, key)] = time.monotonic()


def _without_recent(handler: Any, body: dict[str, Any], result: Any) -> Any:
    status, headers, text = result
    answer = _json(text)
    if "Items" not in answer:
        return result
    table, now = body.get("TableName", ""), time.monotonic()
    with _lock:
        recent = {key for (name, key), when in _written.items()
                  if name == table and now - when < lag_seconds}
    kept = [item for item in answer["Items"] if _key(handler, table, item) not in recent]
    answer.update(Items=kept, Count=len(kept))
    return status, headers, json.dumps(answer)
