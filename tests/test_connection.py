"""The local tool's connection against the gateway emulator: keepalive, reconnect, refusal.

Real websockets server running the real authorizer/$connect/$default/$disconnect handlers
over a real moto; the Connection under test is the one `plldb attach` uses.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import botocore.exceptions
import pytest

from plldb import naming
from plldb import protocol as p
from plldb.cloud.aws import AwsContext
from plldb.session.connection import Connection, ConnectionRefused
from plldb.session.sessions import SessionLost, SessionStore
from tests.harness.gateway_setup import close_session, get_session, put_session
from tests.harness.identity_proof import proof_headers

pytest_plugins = ["tests.harness.gateway_fixtures"]


def connection_id(session_id: str) -> str:
    return get_session(session_id)[naming.A_CONNECTION_ID]["S"]


def status(session_id: str) -> str:
    return get_session(session_id)[naming.A_STATUS]["S"]


def make_connection(gateway, session_id: str, received: list[dict[str, Any]], **kw) -> Connection:
    store = SessionStore(AwsContext(region="us-east-1"))

    async def on_message(message: dict[str, Any]) -> None:
        received.append(message)

    return Connection(gateway.websocket_url, {"sessionId": session_id}, on_message,
                      headers=lambda: proof_headers(session_id),
                      check_live=lambda: store.ensure_live(session_id), **kw)


async def run_for(connection: Connection, seconds: float) -> None:
    task = asyncio.create_task(connection.run())
    await asyncio.sleep(seconds)
    await connection.close()
    await asyncio.wait_for(task, 10)


def test_pings_keep_an_idle_connection_open(make_gateway) -> None:
    gateway = make_gateway(idle_timeout=1.0)
    session_id = put_session("some-stack")
    received: list[dict[str, Any]] = []

    async def scenario() -> Connection:
        connection = make_connection(gateway, session_id, received, ping_interval=0.3)
        await connection.open()
        first = connection_id(session_id)
        await run_for(connection, 3.0)  # three idle timeouts
        assert connection_id(session_id) == first
        return connection

    connection = asyncio.run(scenario())
    assert connection.reconnects == 0


def test_without_pings_the_idle_timeout_closes_and_the_client_reconnects(make_gateway) -> None:
    gateway = make_gateway(idle_timeout=0.5, grace_seconds=2)
    session_id = put_session("some-stack")

    async def scenario() -> Connection:
        connection = make_connection(gateway, session_id, [], ping_interval=60)
        await connection.open()
        await run_for(connection, 2.0)
        return connection

    connection = asyncio.run(scenario())
    assert connection.reconnects >= 1
    assert status(session_id) in (naming.ACTIVE, naming.DISCONNECTED)


def test_reconnects_after_a_drop_and_after_the_lifetime_limit(make_gateway) -> None:
    gateway = make_gateway(max_lifetime=1.0, grace_seconds=2)
    session_id = put_session("some-stack")
    received: list[dict[str, Any]] = []

    def active_elsewhere(old: str) -> bool:
        item = get_session(session_id)
        return item[naming.A_STATUS]["S"] == naming.ACTIVE and item[naming.A_CONNECTION_ID]["S"] != old

    async def scenario() -> Connection:
        connection = make_connection(gateway, session_id, received, ping_interval=0.2)
        await connection.open()
        first = connection_id(session_id)
        task = asyncio.create_task(connection.run())
        await asyncio.sleep(0.3)
        await asyncio.to_thread(gateway.close_connection, first, 1001, "network drop")
        # back, and through the 1 s lifetime limit at least once more: the session is seen
        # ACTIVE on a new connection (lifetime closes keep interrupting it meanwhile)
        for _ in range(400):
            if connection.reconnects >= 2 and await asyncio.to_thread(active_elsewhere, first):
                break
            await asyncio.sleep(0.05)
        else:
            raise AssertionError(f"not ACTIVE on a new connection: {get_session(session_id)}")
        await connection.close()
        await asyncio.wait_for(task, 10)
        return connection

    connection = asyncio.run(scenario())
    assert connection.reconnects >= 2


def test_messages_sent_while_down_are_delivered_after_the_reconnect(make_gateway) -> None:
    gateway = make_gateway(grace_seconds=2)
    session_id = put_session("some-stack")
    received: list[dict[str, Any]] = []

    async def scenario() -> None:
        connection = make_connection(gateway, session_id, received, ping_interval=60)
        await connection.open()
        task = asyncio.create_task(connection.run())
        await asyncio.to_thread(gateway.close_connection, connection_id(session_id))
        # A response for an unknown request: the $default route rejects it with a reason,
        # which proves the queued message went through the new connection.
        await connection.send(p.response_message("req-sent-while-down", result="1"))
        for _ in range(100):
            if any(m["type"] == p.TYPE_REJECTED for m in received):
                break
            await asyncio.sleep(0.05)
        await connection.close()
        await asyncio.wait_for(task, 10)

    asyncio.run(scenario())
    rejected = [m for m in received if m["type"] == p.TYPE_REJECTED]
    assert rejected and "req-sent-while-down" in rejected[0]["reason"]


def test_an_unknown_session_is_refused_with_a_clear_error(make_gateway) -> None:
    gateway = make_gateway()
    connection = make_connection(gateway, "0f8fad5b-d9cb-469f-a165-70867728950e", [])
    with pytest.raises(ConnectionRefused, match="could not verify your identity, the session is over"):
        asyncio.run(connection.open())


def test_a_closed_session_is_not_resumed(make_gateway) -> None:
    gateway = make_gateway()
    session_id = put_session("some-stack")

    async def scenario() -> None:
        connection = make_connection(gateway, session_id, [], ping_interval=60)
        await connection.open()
        task = asyncio.create_task(connection.run())
        await asyncio.to_thread(close_session, session_id)  # as a detach does
        await asyncio.to_thread(gateway.close_connection, connection_id(session_id))
        await asyncio.wait_for(task, 10)

    with pytest.raises(SessionLost, match="was closed"):
        asyncio.run(scenario())


def test_the_reconnect_survives_aws_and_network_errors_and_says_what_happened(
    make_gateway, caplog: pytest.LogCaptureFixture
) -> None:
    """Expired credentials, throttling and a network failure while re-opening the session
    are retried with back-off (each cause logged), and the same session comes back."""
    gateway = make_gateway(grace_seconds=5)
    session_id = put_session("some-stack")
    store = SessionStore(AwsContext(region="us-east-1"))
    faults = [
        botocore.exceptions.ClientError(
            {"Error": {"Code": "ExpiredToken", "Message": "The security token is expired"}},
            "UpdateItem",
        ),
        botocore.exceptions.ClientError(
            {"Error": {"Code": "ThrottlingException", "Message": "Rate exceeded"}}, "UpdateItem"
        ),
        botocore.exceptions.EndpointConnectionError(endpoint_url="https://dynamodb"),
    ]

    def check_live() -> None:
        if faults:
            raise faults.pop(0)
        store.ensure_live(session_id)

    async def scenario() -> Connection:
        connection = Connection(gateway.websocket_url, {"sessionId": session_id}, _ignore,
                                headers=lambda: proof_headers(session_id), check_live=check_live,
                                ping_interval=60, max_reconnect_delay=0.4)
        await connection.open()
        first = connection_id(session_id)
        task = asyncio.create_task(connection.run())
        await asyncio.to_thread(gateway.close_connection, first)
        for _ in range(200):
            if connection.reconnects:
                break
            await asyncio.sleep(0.05)
        assert status(session_id) == naming.ACTIVE
        assert connection_id(session_id) != first
        await connection.close()
        await asyncio.wait_for(task, 10)
        return connection

    with caplog.at_level(logging.INFO, logger="plldb.session.connection"):
        connection = asyncio.run(scenario())
    assert connection.reconnects == 1
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("ExpiredToken" in w for w in warnings)
    assert any("ThrottlingException" in w for w in warnings)
    assert any("Could not connect to the endpoint URL" in w for w in warnings)


async def _ignore(message: dict[str, Any]) -> None:
    """A message handler for tests that do not look at messages."""
