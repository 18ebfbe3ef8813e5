"""The shim's copy of a shared stage's route table (plldb/layer/stage.py): how fresh it is,
when an invocation waits for a read, and what a lock item that is not a stage's means."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from plldb import naming, route_table, routing
from plldb.layer.stage import FRESH_SECONDS, STALE_SECONDS, RouteTable
from plldb.route_table import stage_entries


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Table:
    """What GetItem answers, changed by the test; counts and signals reads."""

    def __init__(self, item: dict[str, Any] | None) -> None:
        self.item = item
        self.reads = 0
        self.read_done = threading.Event()

    def __call__(self, table: str, key: dict[str, Any]) -> dict[str, Any] | None:
        assert table == "PLLDBSessions"
        assert key == {naming.A_SESSION_ID: {"S": "STACK#orders"}}
        self.reads += 1
        self.read_done.set()
        return self.item


def stage_item(*sessions: str) -> dict[str, Any]:
    entries = {
        sid: route_table.entry_attribute([routing.Route.parse(f"header:x-user={sid}")], 1000 + i, "arn:u", False)
        for i, sid in enumerate(sessions)
    }
    return {naming.A_SESSION_ID: {"S": "STACK#orders"}, naming.A_MODE: {"S": naming.MODE_SHARED},
            naming.A_ROUTES: {"M": entries}}


@pytest.fixture
def background() -> Any:
    with ThreadPoolExecutor(max_workers=1) as pool:
        yield pool


def test_the_first_invocation_reads_then_fresh_copies_are_used_without_a_read(background: Any) -> None:
    clock, table = Clock(), Table(stage_item("a"))
    routes = RouteTable("PLLDBSessions", "STACK#orders", background, table, clock)
    assert [e.session_id for e in routes.entries()] == ["a"]
    clock.now += FRESH_SECONDS * 0.9
    table.item = stage_item("a", "b")
    assert [e.session_id for e in routes.entries()] == ["a"]
    assert table.reads == 1


def test_a_copy_between_fresh_and_stale_is_used_while_a_background_read_replaces_it(background: Any) -> None:
    clock, table = Clock(), Table(stage_item("a"))
    routes = RouteTable("PLLDBSessions", "STACK#orders", background, table, clock)
    routes.entries()
    table.read_done.clear()
    table.item = stage_item("a", "b")
    clock.now += (FRESH_SECONDS + STALE_SECONDS) / 2
    assert [e.session_id for e in routes.entries()] == ["a"]  # this invocation does not wait
    assert table.read_done.wait(5)
    background.submit(lambda: None).result(5)  # the refresh has finished
    assert [e.session_id for e in routes.entries()] == ["a", "b"]
    assert table.reads == 2


def test_a_stale_copy_is_read_again_before_deciding(background: Any) -> None:
    clock, table = Clock(), Table(stage_item("a"))
    routes = RouteTable("PLLDBSessions", "STACK#orders", background, table, clock)
    routes.entries()
    table.item = None  # the last session left: the lock item is deleted
    clock.now += STALE_SECONDS
    assert routes.entries() == []
    assert table.reads == 2


def test_a_failed_background_read_makes_the_next_invocation_read_itself(background: Any) -> None:
    clock, table = Clock(), Table(stage_item("a"))
    routes = RouteTable("PLLDBSessions", "STACK#orders", background, table, clock)
    routes.entries()

    def failing(table_name: str, key: dict[str, Any]) -> None:
        raise OSError("network unreachable")

    routes.read = failing
    clock.now += (FRESH_SECONDS + STALE_SECONDS) / 2
    routes.entries()
    background.submit(lambda: None).result(5)
    with pytest.raises(OSError, match="network unreachable"):
        routes.entries()  # no copy young enough: read now, and the error reaches the shim


def test_a_lock_item_that_is_not_a_shared_stage_has_no_entries() -> None:
    whole_stack = {naming.A_SESSION_ID: {"S": "STACK#orders"}, naming.A_HOLDER: {"S": "s-1"}}
    assert stage_entries(whole_stack) == []
    assert stage_entries(None) == []
    assert [e.session_id for e in stage_entries(stage_item("a", "b"))] == ["a", "b"]
