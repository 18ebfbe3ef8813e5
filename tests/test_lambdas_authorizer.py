"""The ``$connect`` authorizer, called directly: one PENDING, unexpired session, used once."""

from __future__ import annotations

import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import boto3
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from plldb import protocol
from plldb.lambdas import authorizer
from tests.harness.gateway import Gateway
from tests.harness.gateway_setup import get_session, put_session, scan

pytest_plugins = ["tests.harness.gateway_fixtures"]

METHOD_ARN = "arn:aws:execute-api:us-east-1:123456789012:abc123/prod/$connect"


def _event(session_id: Any, connection_id: str = "conn1=") -> dict[str, Any]:
    return {
        "type": "REQUEST",
        "methodArn": METHOD_ARN,
        "queryStringParameters": {"sessionId": session_id},
        "requestContext": {"connectionId": connection_id, "routeKey": "$connect"},
    }


def _effect(result: dict[str, Any]) -> str:
    [statement] = result["policyDocument"]["Statement"]
    assert statement["Resource"] == METHOD_ARN and statement["Action"] == "execute-api:Invoke"
    return statement["Effect"]


def test_allow_returns_a_flat_context_and_consumes_the_session(gateway: Gateway) -> None:
    session_id = put_session("my-stack")
    result = authorizer.handler(_event(session_id), None)
    assert _effect(result) == "Allow"
    assert result["principalId"] == session_id
    assert result["context"] == {"sessionId": session_id, "stackName": "my-stack"}
    item = get_session(session_id)
    assert item[protocol.A_STATUS]["S"] == protocol.ACTIVE
    assert item[protocol.A_CONNECTION_ID]["S"] == "conn1="
    assert int(item[protocol.A_TTL]["N"]) >= time.time() + protocol.SESSION_TTL_SECONDS - 60
    replay = authorizer.handler(_event(session_id, "conn2="), None)
    assert _effect(replay) == "Deny" and replay["context"] == {}
    assert get_session(session_id)[protocol.A_CONNECTION_ID]["S"] == "conn1="


def test_concurrent_uses_allow_exactly_one(gateway: Gateway) -> None:
    session_id = put_session("my-stack")
    with ThreadPoolExecutor(4) as pool:
        effects = list(
            pool.map(
                lambda i: _effect(authorizer.handler(_event(session_id, f"c{i}="), None)), range(4)
            )
        )
    assert sorted(effects) == ["Allow", "Deny", "Deny", "Deny"]


def test_instrumentation_records_are_not_sessions(gateway: Gateway) -> None:
    """A FUNCTION# record never opens a connection, whatever its attributes."""
    record_key = str(uuid.uuid4())
    put_session("s", session_id=record_key)
    boto3.client("dynamodb").update_item(
        TableName=protocol.SESSIONS_TABLE,
        Key={protocol.A_SESSION_ID: {"S": record_key}},
        UpdateExpression="SET #k = :k",
        ExpressionAttributeNames={"#k": protocol.A_KIND},
        ExpressionAttributeValues={":k": {"S": protocol.KIND_INSTRUMENTATION}},
    )
    assert _effect(authorizer.handler(_event(record_key), None)) == "Deny"


_anything = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3)
    ),
    max_leaves=10,
)


@pytest.fixture
def unusable_sessions(gateway: Gateway) -> list[str]:
    return [
        put_session("s", ttl_in=-5),
        put_session("s", status=protocol.ACTIVE),
        put_session("s", status=protocol.CLOSED),
        put_session("s", status=protocol.DISCONNECTED),
        str(uuid.uuid4()),
    ]


@settings(
    max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_random_events_are_denied_and_change_nothing(
    unusable_sessions: list[str], data: st.DataObject
) -> None:
    before = scan(protocol.SESSIONS_TABLE)
    session_ids = st.sampled_from(unusable_sessions) | _anything
    event = data.draw(
        _anything
        | st.builds(
            lambda sid, conn, query, arn: {
                "methodArn": arn,
                "queryStringParameters": query if query is not None else {"sessionId": sid},
                "requestContext": {"connectionId": conn},
            },
            session_ids,
            st.text(max_size=12) | _anything,
            st.none() | _anything,
            st.just(METHOD_ARN) | _anything,
        )
    )
    result = authorizer.handler(event, None)
    assert result["policyDocument"]["Statement"][0]["Effect"] == "Deny"
    assert result["context"] == {}
    assert scan(protocol.SESSIONS_TABLE) == before
