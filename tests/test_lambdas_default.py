"""The ``$default`` route: results are accepted only for pending requests of the sender's session."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import boto3
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from websockets.sync.client import ClientConnection

from plldb import naming, protocol
from plldb.lambdas import default
from tests.harness.gateway import Gateway
from tests.harness.gateway_setup import put_session, scan, wait_until
from tests.harness.identity_proof import connect_session

pytest_plugins = ["tests.harness.gateway_fixtures"]


OWNER = "AROAEXAMPLEFUNCTIONROLE:shop-fn"  # the function's aws:userid


def _request(session_id: str, status: str = naming.REQUEST_PENDING) -> str:
    """A request item as the shim writes it."""
    request_id = str(uuid.uuid4())
    boto3.client("dynamodb").put_item(
        TableName=naming.DEBUGGER_TABLE,
        Item={
            naming.A_REQUEST_ID: {"S": request_id},
            naming.A_SESSION_ID: {"S": session_id},
            naming.A_OWNER: {"S": OWNER},
            naming.A_STATUS: {"S": status},
            naming.A_TTL: {"N": str(int(time.time()) + 3600)},
        },
    )
    return request_id


def _item(request_id: str) -> dict[str, Any]:
    return boto3.client("dynamodb").get_item(
        TableName=naming.DEBUGGER_TABLE,
        Key={naming.A_REQUEST_ID: {"S": request_id}},
        ConsistentRead=True,
    )["Item"]


def _client(gateway: Gateway) -> tuple[str, ClientConnection]:
    session_id = put_session("no-such-stack")
    ws = connect_session(gateway.websocket_url, session_id)
    assert protocol.parse_server_message(ws.recv(timeout=20))["status"] == "failed"
    return session_id, ws


def _ask(gateway: Gateway, ws: ClientConnection, message: Any) -> dict[str, Any] | None:
    """Send a message and wait for its handler; its reply, or None when it sent none.

    API Gateway runs messages concurrently, so the handler's end is the only fence.
    """
    handled = len(gateway.invocations_of("plldb-default"))
    ws.send(message if isinstance(message, str) else json.dumps(message))
    wait_until(
        lambda: (
            len(runs := gateway.invocations_of("plldb-default")) > handled
            and runs[handled].finished.is_set()
        )
    )
    try:
        return json.loads(ws.recv(timeout=0.3))
    except TimeoutError:
        return None


def test_results_of_own_pending_requests_are_recorded(gateway: Gateway) -> None:
    session_id, ws = _client(gateway)
    answered, failed, offloaded = (_request(session_id) for _ in range(3))
    ref = {
        "bucket": gateway.settings.payload_bucket,
        "key": naming.payload_key(OWNER, session_id, offloaded, "response"),
        "size": 200_000,
    }
    with ws:
        assert _ask(gateway, ws, protocol.response_message(answered, '{"ok": true}')) is None
        error = {"errorMessage": "boom", "errorType": "ValueError", "stackTrace": []}
        assert _ask(gateway, ws, protocol.error_message(failed, error)) is None
        assert _ask(gateway, ws, protocol.response_message(offloaded, result_ref=ref)) is None
        duplicate = _ask(gateway, ws, protocol.response_message(answered, '"again"'))
    assert duplicate == {
        "type": "rejected",
        "reason": f"request {answered} is not a pending request of this session",
    }
    assert _item(answered)[naming.A_STATUS]["S"] == naming.REQUEST_RESPONDED
    assert _item(answered)[naming.A_RESPONSE]["S"] == '{"ok": true}'
    assert _item(failed)[naming.A_STATUS]["S"] == naming.REQUEST_FAILED
    assert json.loads(_item(failed)[naming.A_ERROR]["S"]) == error
    assert json.loads(_item(offloaded)[naming.A_PAYLOAD_REF]["S"]) == ref


def test_answers_for_other_sessions_late_or_forged_are_rejected(gateway: Gateway) -> None:
    session_id, ws = _client(gateway)
    other = _request(str(uuid.uuid4()))
    expired = _request(session_id, status=naming.REQUEST_EXPIRED)
    mine = _request(session_id)
    before = scan(naming.DEBUGGER_TABLE)
    foreign_ref = {
        "bucket": gateway.settings.payload_bucket,
        "key": naming.payload_key(OWNER, str(uuid.uuid4()), mine, "response"),
        "size": 10,
    }
    other_owner = {  # this request's key, under another function's prefix
        "bucket": gateway.settings.payload_bucket,
        "key": naming.payload_key("AROAOTHERROLE:other-fn", session_id, mine, "response"),
        "size": 10,
    }
    with ws:
        cases = {
            "another session's request": protocol.response_message(other, "1"),
            "an expired request": protocol.error_message(
                expired, {"errorMessage": "late", "errorType": "E"}
            ),
            "an unknown request": protocol.response_message("no-such-request", "1"),
            "another session's payload": protocol.response_message(mine, result_ref=foreign_ref),
            "another function's payload": protocol.response_message(mine, result_ref=other_owner),
        }
        replies = {case: _ask(gateway, ws, message) for case, message in cases.items()}
        invalid = {
            "not json": _ask(gateway, ws, "{nope"),
            "unknown action": _ask(gateway, ws, {"action": "dance"}),
            "no request id": _ask(gateway, ws, {"action": "response", "result": "1"}),
        }
    for case, reply in replies.items():
        assert reply is not None and reply["type"] == "rejected", case
    assert replies["another session's payload"]["reason"].startswith("result_ref must name this request's")
    assert replies["another function's payload"]["reason"] == (
        f"request {mine} is not a pending request of this session"
    )
    assert invalid == {
        "not json": {"type": "rejected", "reason": "message is not valid JSON"},
        "unknown action": {"type": "rejected", "reason": "unknown action 'dance'"},
        "no request id": {"type": "rejected", "reason": "'response' message without 'request_id'"},
    }
    assert scan(naming.DEBUGGER_TABLE) == before


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3)
    ),
    max_leaves=8,
)


def _events(session_ids: list[str], request_ids: list[str]) -> st.SearchStrategy:
    """Random events, and well-formed ones aimed at other sessions' requests."""
    bodies = st.one_of(
        st.text(max_size=50),
        _json.map(json.dumps),
        st.builds(
            lambda action, rid, result: json.dumps(
                {"action": action, "request_id": rid, "result": result}
            ),
            # a detach from an authorized connection legitimately closes its session: it is
            # covered by the manager's tests
            st.sampled_from([a for a in protocol.CLIENT_ACTIONS if a != "detach"] + ["x"]),
            st.sampled_from(request_ids) | st.text(max_size=10),
            st.text(max_size=10),
        ),
    )
    contexts = st.fixed_dictionaries(
        {"sessionId": st.sampled_from(session_ids) | st.text(max_size=10)},
        optional={"stackName": st.text(max_size=5)},
    )
    structured = st.builds(
        lambda body, context, connection: {
            "requestContext": {"connectionId": connection, "authorizer": context},
            "body": body,
        },
        bodies,
        contexts | _json,
        st.text(min_size=1, max_size=12) | st.none(),
    )
    return structured | _json


@pytest.fixture
def other_sessions(gateway: Gateway) -> tuple[list[str], list[str]]:
    """Requests of one session, and connections' sessions that are not theirs."""
    owner = str(uuid.uuid4())
    requests = [_request(owner) for _ in range(3)]
    return [str(uuid.uuid4()), put_session("s", status=naming.ACTIVE)], requests


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_random_messages_never_raise_and_change_nothing(
    gateway: Gateway, other_sessions: tuple[list[str], list[str]], data: st.DataObject
) -> None:
    sessions, requests = other_sessions
    before = (scan(naming.DEBUGGER_TABLE), scan(naming.SESSIONS_TABLE))
    event = data.draw(_events(sessions, requests))
    assert default.handler(event, None) == {"statusCode": 200}
    gateway.wait_for_invocations()  # a 'detach' runs the manager
    assert (scan(naming.DEBUGGER_TABLE), scan(naming.SESSIONS_TABLE)) == before
