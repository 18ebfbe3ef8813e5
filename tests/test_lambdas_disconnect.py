"""``$disconnect``: only the session's current connection can mark it DISCONNECTED."""

from __future__ import annotations

import boto3

from plldb import naming
from plldb.lambdas import disconnect
from tests.harness.gateway import MANAGER, Gateway
from tests.harness.gateway_setup import get_session, put_session, wait_until

pytest_plugins = ["tests.harness.gateway_fixtures"]


def _event(session_id: str, connection_id: str) -> dict:
    return {
        "requestContext": {
            "routeKey": "$disconnect",
            "eventType": "DISCONNECT",
            "connectionId": connection_id,
            "authorizer": {"sessionId": session_id, "stackName": "s"},
        }
    }


def _active(connection_id: str) -> str:
    session_id = put_session("s", status=naming.ACTIVE)
    boto3.client("dynamodb").update_item(
        TableName=naming.SESSIONS_TABLE,
        Key={naming.A_SESSION_ID: {"S": session_id}},
        UpdateExpression="SET #c = :c",
        ExpressionAttributeNames={"#c": naming.A_CONNECTION_ID},
        ExpressionAttributeValues={":c": {"S": connection_id}},
    )
    return session_id


def test_late_disconnect_of_an_old_connection_changes_nothing(gateway: Gateway) -> None:
    session_id = _active("new=")
    before = get_session(session_id)
    assert disconnect.handler(_event(session_id, "old="), None) == {"statusCode": 200}
    assert get_session(session_id) == before
    assert gateway.invocations_of(MANAGER) == []


def test_disconnect_of_the_current_connection_schedules_the_restore(gateway: Gateway) -> None:
    session_id = _active("current=")
    assert disconnect.handler(_event(session_id, "current="), None) == {"statusCode": 200}
    item = get_session(session_id)
    assert item[naming.A_STATUS]["S"] in (naming.DISCONNECTED, naming.CLOSED)
    assert naming.A_DISCONNECTED_AT in item
    [run] = wait_until(lambda: gateway.invocations_of(MANAGER))
    assert run.event == {
        "action": "deinstrument_after_grace",
        "session_id": session_id,
        "connection_id": "current=",
    }
    gateway.wait_for_invocations()
    assert get_session(session_id)[naming.A_STATUS]["S"] == naming.CLOSED


def test_disconnect_without_a_session_is_ignored(gateway: Gateway) -> None:
    assert disconnect.handler({"requestContext": {"connectionId": "x="}}, None) == {
        "statusCode": 200
    }
    assert disconnect.handler(None, None) == {"statusCode": 200}
    assert gateway.invocations_of(MANAGER) == []
