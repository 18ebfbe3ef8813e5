"""A shared stage's route table: the sessions that take invocations, and which one gets each.

The table (session id -> the session's routes, when it attached, by whom, whether it
mirrors) lives in the stack's lock item (:data:`plldb.naming.A_ROUTES`). The authorizer
writes entries (:func:`entry_attribute`), the shim reads them (:func:`entries_from_item`)
and calls :func:`choose` on every invocation of a function on a shared stage. The route
expressions themselves are :mod:`plldb.routing`'s.

Standard library only, bundled into every helper Lambda zip and into the runtime layer.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from plldb import naming
from plldb.routing import InvocationView, Route, dig, parse_routes

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Entry:
    """One session's line in the route table."""

    session_id: str
    routes: tuple[Route, ...]  # none: every invocation
    at: int  # epoch milliseconds of the attach: the earliest matching session wins
    by: str  # the caller's ARN
    mirror: bool  # gets a copy; the deployed function answers

    def takes(self, view: InvocationView) -> bool:
        """Whether any of the session's routes matches (a session without routes takes all)."""
        if not self.routes:
            return True
        for route in self.routes:
            if route.matches(view):
                return True
        return False


@dataclass(frozen=True)
class Decision:
    """Where one invocation goes: to ``debug``'s developer, or (when no session takes it)
    run by the deployed function with a copy to each of ``mirrors``. A routed invocation is
    not mirrored: its developer's answer is the answer, and a mirror would see an
    invocation the deployed code never ran."""

    debug: Entry | None
    mirrors: tuple[Entry, ...] = ()


def _order(entry: Entry) -> tuple[int, str]:
    return entry.at, entry.session_id


def choose(entries: Iterable[Entry], view: InvocationView) -> Decision:
    """The session that gets the invocation: the earliest attached (then the lowest session
    id) of the non-mirror sessions that take it; else every mirror session that takes it, in
    the same order. Mirrors are looked at only when no session takes the invocation."""
    ordered = sorted(entries, key=_order)
    for entry in ordered:
        if not entry.mirror and entry.takes(view):
            return Decision(entry)
    return Decision(None, tuple(e for e in ordered if e.mirror and e.takes(view)))


def entries_from_item(item: dict[str, Any] | None) -> list[Entry]:
    """The route table of a lock item as GetItem returns it (DynamoDB JSON), ordered as
    :func:`choose` orders it. Never raises: the shim reads the table on every invocation,
    and one malformed entry must not stop the others; it is logged and skipped."""
    table = dig(item, naming.A_ROUTES, "M")
    entries = []
    for session_id, value in table.items() if isinstance(table, dict) else ():
        try:
            entries.append(_entry(session_id, value))
        except ValueError as error:  # RouteError included
            log.warning("route table: the entry of session %s is skipped: %s", session_id, error)
    return sorted(entries, key=_order)


def _entry(session_id: Any, value: Any) -> Entry:
    if not isinstance(session_id, str) or not session_id or not isinstance(dig(value, "M"), dict):
        raise ValueError("not a map under a session id")
    routes = _typed(value, naming.R_ROUTES, "L", list)
    at = _typed(value, naming.R_AT, "N", str)
    if not at.isascii() or not at.isdigit():
        raise ValueError(f"{naming.R_AT} is {at!r}, not epoch milliseconds")
    by = _typed(value, naming.R_BY, "S", str)
    mirror = _typed(value, naming.R_MIRROR, "BOOL", bool)
    texts = [dig(route, "S") for route in routes]
    return Entry(session_id, tuple(parse_routes(texts)), int(at), by, mirror)


def _typed(entry: Any, name: str, tag: str, kind: type) -> Any:
    found = dig(entry, "M", name, tag)
    if not isinstance(found, kind):
        raise ValueError(f"{name} is not a DynamoDB {tag}")
    return found


def entry_attribute(routes: Iterable[Route | str], at: int, by: str, mirror: bool) -> dict:
    """One entry of the route table as DynamoDB JSON (``{"M": ...}``), for the authorizer's
    UpdateItem. The routes are checked (:func:`parse_routes`) and stored canonical."""
    checked = parse_routes([str(route) for route in routes])
    return {
        "M": {
            naming.R_ROUTES: {"L": [{"S": str(route)} for route in checked]},
            naming.R_AT: {"N": str(int(at))},
            naming.R_BY: {"S": by},
            naming.R_MIRROR: {"BOOL": bool(mirror)},
        }
    }


def is_shared(item: dict[str, Any] | None) -> bool:
    """A stack's lock item that is a shared stage's (not a whole-stack session's)."""
    return bool(item) and item.get(naming.A_MODE, {}).get("S") == naming.MODE_SHARED


def stage_entries(item: dict[str, Any] | None) -> list[Entry]:
    """The entries of a lock item; none when it is gone or is not a shared stage's (a
    whole-stack session took the stack over)."""
    return entries_from_item(item) if is_shared(item) else []
