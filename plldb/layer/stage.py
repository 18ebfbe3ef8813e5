"""A shared stage's route table, as one execution environment knows it.

On a shared stage (``plldb attach --route``/``--mirror``) the function's
``DEBUGGER_SESSION_ID`` names the stack's lock item (``STACK#<stack>``), whose ``Routes``
map says which live session takes which invocations (plldb/routing.py). Every invocation
of the function is decided against it, most of them for nobody: so the table is kept in
memory and read without boto3 (plldb/layer/table_reader.py), which an unrouted invocation
then never imports.

Freshness: an invocation uses the copy read less than :data:`FRESH_SECONDS` ago as is; an
older one up to :data:`STALE_SECONDS` is used while a background read replaces it; an
older one still (the first invocation of an environment, or after a pause) is read again
before deciding. A route added or removed therefore reaches every environment within
:data:`STALE_SECONDS`, and under steady traffic no invocation waits for a read (the values
live in plldb/limits.py: ``plldb attach`` tells the developer the bound).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Executor
from typing import Any

from plldb import limits, naming, route_table
from plldb.layer import table_reader

log = logging.getLogger("plldb.shim")

FRESH_SECONDS = limits.ROUTE_TABLE_FRESH_SECONDS
STALE_SECONDS = limits.ROUTE_TABLE_STALE_SECONDS

Reader = Callable[[str, dict[str, Any]], "dict[str, Any] | None"]


def read_table(table: str, key: dict[str, Any]) -> dict[str, Any] | None:
    """One GetItem with short timeouts: the caller of an invocation that nobody debugs must
    not wait long for the table (on a failure the shim runs the invocation here)."""
    return table_reader.read_item(table, key, connect_timeout=1.0, read_timeout=2.0)


class RouteTable:
    """The route table of one shared stage, re-read as :data:`FRESH_SECONDS` says."""

    def __init__(
        self,
        sessions_table: str,
        stage_key: str,
        background: Executor,
        read: Reader = read_table,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.sessions_table = sessions_table
        self.key = {naming.A_SESSION_ID: {"S": stage_key}}
        self.background = background
        self.read = read
        self.clock = clock
        self._lock = threading.Lock()
        self._entries: list[route_table.Entry] = []
        self._read_at: float | None = None
        self._refreshing = False
        self.reads = 0  # table reads made (the benchmark and the log count them)

    def entries(self) -> list[route_table.Entry]:
        """The live stage's entries (empty: the stage is over), fresh as the module says."""
        with self._lock:
            age = None if self._read_at is None else self.clock() - self._read_at
            if age is not None and age < FRESH_SECONDS:
                return self._entries
            if age is not None and age < STALE_SECONDS:
                if not self._refreshing:
                    self._refreshing = True
                    self.background.submit(self._refresh_quietly)
                return self._entries
        return self.refresh()

    def refresh(self) -> list[route_table.Entry]:
        """Read the table now (errors propagate: the caller decides what an unknown table
        means for the invocation in hand)."""
        item = self.read(self.sessions_table, self.key)
        entries = route_table.stage_entries(item)
        with self._lock:
            self.reads += 1
            self._entries = entries
            self._read_at = self.clock()
            self._refreshing = False
        return entries

    def _refresh_quietly(self) -> None:
        try:
            self.refresh()
        except Exception as exc:  # noqa: BLE001 - the next invocation reads it again itself
            log.warning("could not re-read the route table: %s", exc)
            with self._lock:
                self._refreshing = False
                self._read_at = None  # too old now: the next invocation reads before deciding

