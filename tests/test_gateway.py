"""The gateway emulator: API Gateway WebSocket semantics around the real helper handlers."""

from __future__ import annotations

import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from plldb import protocol
from tests.harness.gateway import Gateway
from tests.harness.gateway_setup import get_session, put_session

pytest_plugins = ["tests.harness.gateway_fixtures"]


def _url(gateway: Gateway, session_id: str) -> str:
    return f"{gateway.websocket_url}?sessionId={session_id}"


def _refusal(gateway: Gateway, query: str) -> int:
    with pytest.raises(InvalidStatus) as refused:
        connect(f"{gateway.websocket_url}{query}", open_timeout=10)
    return refused.value.response.status_code


def test_valid_session_connects_once(gateway: Gateway) -> None:
    session_id = put_session("no-such-stack")
    with connect(_url(gateway, session_id), open_timeout=10) as ws:
        item = get_session(session_id)
        assert item[protocol.A_STATUS]["S"] == protocol.ACTIVE
        connection_id = item[protocol.A_CONNECTION_ID]["S"]
        assert connection_id in gateway.connections
        # the manager reports the missing stack on the connection
        message = protocol.parse_server_message(ws.recv(timeout=20))
        assert message["type"] == protocol.TYPE_PROGRESS
        assert message["status"] == "failed" and "no-such-stack" in message["message"]
        assert _refusal(gateway, f"?sessionId={session_id}") == 403
