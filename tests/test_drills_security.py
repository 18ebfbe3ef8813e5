"""Drill: hostile inputs over real WebSockets: each rejected, logged, nothing changed.

Already covered elsewhere (not repeated here): the full matrix of refused session ids and
the 401/403 split (tests/test_gateway.py::test_every_other_session_id_is_refused_and_changes_nothing),
forged/late/unknown/foreign-payload answers (tests/test_lambdas_default.py::
test_answers_for_other_sessions_late_or_forged_are_rejected), who may open or resume a
session (tests/test_lambdas_authorizer.py), frame and
message limits (tests/test_gateway.py::test_frame_over_32_kb_closes_with_1009, ...).

What this adds: the four attacks of the drill in one scenario against a live session with a
pending request, asserting what those tests do not: that each is *logged* where an operator
would look (the helper Lambdas' log), and that the victim's request and session are intact.
"""

from __future__ import annotations

import json
import logging

import boto3
import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import ClientConnection

from plldb import limits, naming, protocol
from tests.harness.gateway import Gateway
from tests.harness.gateway_setup import (
    get_session,
    put_pending_request,
    put_session,
    scan,
    wait_until,
)
from tests.harness.identity_proof import NO_RIGHTS, connect_session
from tests.harness.principals import Principal, create_user

pytest_plugins = ["tests.harness.gateway_fixtures"]
pytestmark = pytest.mark.timeout(120)


def _connect(gateway: Gateway, session_id: str, as_: Principal | None = None) -> ClientConnection:
    ws = connect_session(gateway.websocket_url, session_id, as_.session() if as_ else None)
    assert json.loads(ws.recv(timeout=20))["status"] == "failed"  # no such stack: reported
    return ws


def _refused(gateway: Gateway, session_id: str, as_: Principal) -> int:
    with pytest.raises(InvalidStatus) as refused:
        connect_session(gateway.websocket_url, session_id, as_.session())
    return refused.value.response.status_code


def test_forged_replayed_expired_and_oversized_are_rejected_logged_and_change_nothing(
    gateway: Gateway, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="plldb.lambdas")
    intruder = create_user(boto3.client("iam"), "intruder", NO_RIGHTS)
    victim = put_session("no-such-stack")
    attacker = put_session("no-such-stack", created_by=intruder.arn)
    expired = put_session("no-such-stack", ttl_in=-5, created_by=intruder.arn)
    victim_ws = _connect(gateway, victim)
    attacker_ws = _connect(gateway, attacker, intruder)
    request_id = put_pending_request(victim)
    debugger_before = scan(naming.DEBUGGER_TABLE)
    victim_before = get_session(victim)

    # 1. a response forged for another session's request
    attacker_ws.send(protocol.encode(protocol.response_message(request_id, '"forged"')))
    reply = json.loads(attacker_ws.recv(timeout=20))
    assert reply["type"] == protocol.TYPE_REJECTED
    assert reply["reason"] == f"request {request_id} is not a pending request of this session"
    assert "rejected a message from" in caplog.text and request_id in caplog.text

    # 2. the victim's session id, used by another identity
    assert _refused(gateway, victim, intruder) == 403
    assert f"deny: session {victim} is over, was not created by {intruder.arn}" in caplog.text

    # 3. an expired session, by its own creator
    assert _refused(gateway, expired, intruder) == 403
    assert f"deny: session {expired} is over, was not created by" in caplog.text

    # 4. an oversized frame (the attacker's own connection is closed, nothing is processed)
    handled = len(gateway.invocations_of("plldb-default"))
    oversized = protocol.response_message(request_id, json.dumps("x" * limits.FRAME_LIMIT))
    attacker_ws.send(protocol.encode(oversized))
    with pytest.raises(ConnectionClosed) as closed:
        attacker_ws.recv(timeout=10)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009
    wait_until(  # the connection is over: $disconnect ran for it
        lambda: [
            run
            for run in gateway.invocations_of("plldb-disconnect")
            if run.finished.is_set()
            and run.event["requestContext"]["authorizer"]["sessionId"] == attacker
        ]
    )
    assert len(gateway.invocations_of("plldb-default")) == handled  # never routed

    # nothing of the victim changed, and its connection still works
    assert scan(naming.DEBUGGER_TABLE) == debugger_before
    assert get_session(victim) == victim_before
    victim_ws.send(protocol.encode({"action": protocol.ACTION_PING}))
    assert json.loads(victim_ws.recv(timeout=20)) == {"type": protocol.TYPE_PONG}
    victim_ws.close()
