"""Drill: ≥ 10,000 generated messages into the authorizer, `$default` and the client.

Scaled-up companions of the property tests in tests/test_lambdas_authorizer.py and
tests/test_lambdas_default.py (a few dozen examples each, run on every change): here every
target gets thousands of examples (hypothesis), the tables are compared once at the end
(a per-example scan would dominate the time), and the client's side is included:
:class:`plldb.session.connection.Connection` receiving arbitrary frames.

* authorizer: random events and well-formed ones naming unusable sessions (expired,
  ACTIVE, CLOSED, DISCONNECTED, unknown, instrumentation records): always Deny, no raise;
* ``$default``: random events and well-formed answers aimed at another session's pending
  requests (detach excluded: it legitimately acts): always 200, no raise;
* client: arbitrary text/bytes and mutated server messages: never raises, and only
  messages that pass :func:`plldb.protocol.parse_server_message` reach the handler;
* after each: PLLDBSessions and PLLDBDebugger are exactly as before.

Scale with PLLDB_DRILL_FUZZ (total examples, default 10,000, split 3:3:4).
"""

from __future__ import annotations

import asyncio
import json
import os
import uuid
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from plldb import naming, protocol
from plldb.lambdas import authorizer, default
from plldb.session.connection import Connection
from tests.harness.gateway import Gateway
from tests.harness.gateway_setup import put_pending_request, put_session, scan

pytest_plugins = ["tests.harness.gateway_fixtures"]
pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]

TOTAL = int(os.environ.get("PLLDB_DRILL_FUZZ", "10000"))
AUTHORIZER_EXAMPLES = TOTAL * 3 // 10
DEFAULT_EXAMPLES = TOTAL * 3 // 10
CLIENT_EXAMPLES = TOTAL - AUTHORIZER_EXAMPLES - DEFAULT_EXAMPLES
METHOD_ARN = "arn:aws:execute-api:us-east-1:123456789012:abc123/prod/$connect"


def drill(examples: int) -> Any:
    return settings(
        max_examples=examples,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=12,
)


def tables() -> tuple[list, list]:
    return scan(naming.SESSIONS_TABLE), scan(naming.DEBUGGER_TABLE)


def test_authorizer_denies_every_generated_event_and_changes_nothing(gateway: Gateway) -> None:
    unusable = [
        put_session("s", ttl_in=-5),
        put_session("s", status=naming.ACTIVE),
        put_session("s", status=naming.CLOSED),
        put_session("s", status=naming.DISCONNECTED),
        naming.function_key("some-function"),
        str(uuid.uuid4()),
    ]
    session_ids = st.sampled_from(unusable) | st.uuids().map(str) | _json
    events = _json | st.builds(
        lambda sid, connection, query, arn: {
            "type": "REQUEST",
            "methodArn": arn,
            "queryStringParameters": query if query is not None else {"sessionId": sid},
            "requestContext": {"connectionId": connection, "routeKey": "$connect"},
        },
        session_ids,
        st.text(max_size=12) | _json,
        st.none() | _json,
        st.just(METHOD_ARN) | _json,
    )
    before = tables()
    seen = []

    @drill(AUTHORIZER_EXAMPLES)
    @given(event=events)
    def one(event: Any) -> None:
        result = authorizer.handler(event, None)
        assert [s["Effect"] for s in result["policyDocument"]["Statement"]] == ["Deny"]
        assert result["context"] == {}
        seen.append(1)

    one()
    assert len(seen) >= AUTHORIZER_EXAMPLES * 0.9  # hypothesis may stop early on duplicates
    assert tables() == before


def test_default_route_survives_every_generated_message_and_changes_nothing(
    gateway: Gateway,
) -> None:
    owner = str(uuid.uuid4())
    requests = [put_pending_request(owner) for _ in range(3)]
    senders = [str(uuid.uuid4()), put_session("s", status=naming.ACTIVE)]
    answers = st.builds(
        lambda action, request_id, payload: json.dumps(
            {"action": action, "request_id": request_id, **payload}
        ),
        st.sampled_from(
            [protocol.ACTION_RESPONSE, protocol.ACTION_ERROR, protocol.ACTION_PING, "x"]
        ),
        st.sampled_from(requests) | st.text(max_size=10),
        st.fixed_dictionaries(
            {},
            optional={
                "result": st.text(max_size=10) | _json,
                "result_ref": _json
                | st.fixed_dictionaries(
                    {
                        "bucket": st.text(max_size=8),
                        "key": st.text(max_size=30),
                        "size": st.integers(),
                    }
                ),
                "error": _json
                | st.fixed_dictionaries({"errorMessage": st.text(), "errorType": st.text()}),
            },
        ),
    )
    bodies = st.text(max_size=60) | _json.map(json.dumps) | answers | st.binary(max_size=30)
    contexts = st.fixed_dictionaries(
        {"sessionId": st.sampled_from(senders) | st.text(max_size=10)},
        optional={"stackName": st.text(max_size=5)},
    )
    events = _json | st.builds(
        lambda body, context, connection: {
            "requestContext": {"connectionId": connection, "authorizer": context},
            "body": body,
        },
        bodies,
        contexts | _json,
        st.text(min_size=1, max_size=12) | st.none(),
    )
    before = tables()
    seen = []

    @drill(DEFAULT_EXAMPLES)
    @given(event=events)
    def one(event: Any) -> None:
        assert default.handler(event, None) == {"statusCode": 200}
        seen.append(1)

    one()
    gateway.wait_for_invocations()
    assert len(seen) >= DEFAULT_EXAMPLES * 0.9
    assert tables() == before


@pytest.mark.parametrize("kind", [[], {}])
def test_a_type_that_is_not_a_string_is_a_protocol_error(kind: Any) -> None:
    with pytest.raises(protocol.ProtocolError, match="unknown message type"):
        protocol.parse_server_message(json.dumps({"type": kind}))
    with pytest.raises(protocol.ProtocolError, match="unknown action"):
        protocol.parse_client_message(json.dumps({"action": kind}))


def _valid_server_messages() -> list[dict[str, Any]]:
    return [
        {
            "type": protocol.TYPE_INVOCATION,
            "request_id": str(uuid.uuid4()),
            "session_id": str(uuid.uuid4()),
            "function_name": "f",
            "invoked_function_arn": "arn:aws:lambda:us-east-1:123456789012:function:f",
            "deadline_ms": 1,
            "event": "{}",
            "environment": {},
        },
        protocol.progress_message("instrument", "ok", function="f"),
        {"type": protocol.TYPE_LOG, "level": "info", "message": "m"},
        {"type": protocol.TYPE_PONG},
        protocol.rejected_message("r"),
        {"type": protocol.TYPE_DETACHED, "restored": ["f"], "failed": []},
    ]


def _mutated(message: dict[str, Any], drop: list[str], changes: dict[str, Any]) -> str:
    mutated = {k: v for k, v in message.items() if k not in drop}
    for name, value in changes.items():
        mutated[name if name in message or not message else name] = value
    return json.dumps(mutated)


def test_client_message_handler_survives_every_generated_frame(gateway: Gateway) -> None:
    valid = _valid_server_messages()
    fields = sorted({name for message in valid for name in message})
    frames = (
        st.text(max_size=80)
        | st.binary(max_size=80)
        | _json.map(json.dumps)
        | st.builds(
            _mutated,
            st.sampled_from(valid),
            st.lists(st.sampled_from(fields), max_size=3),
            st.dictionaries(st.sampled_from(fields) | st.text(max_size=6), _json, max_size=3),
        )
    )
    delivered: list[dict[str, Any]] = []

    async def on_message(message: dict[str, Any]) -> None:
        delivered.append(message)

    connection = Connection(
        "ws://127.0.0.1:9/unused",
        {"sessionId": str(uuid.uuid4())},
        on_message,
        headers=dict,
        check_live=lambda: None,
    )
    loop = asyncio.new_event_loop()
    before = tables()
    seen = []

    @drill(CLIENT_EXAMPLES)
    @given(frame=frames)
    def one(frame: str | bytes) -> None:
        count = len(delivered)
        loop.run_until_complete(connection._dispatch(frame))
        try:
            expected = protocol.parse_server_message(frame)
        except protocol.ProtocolError:
            assert len(delivered) == count, "an invalid frame reached the handler"
        else:
            passed = expected["type"] != protocol.TYPE_PONG
            assert len(delivered) == count + passed
            assert not passed or delivered[-1] == expected
        seen.append(1)

    try:
        one()
    finally:
        loop.close()
    assert len(seen) >= CLIENT_EXAMPLES * 0.9
    assert delivered, "some generated frames must be valid messages"
    assert all(m["type"] in protocol.SERVER_TYPES for m in delivered)
    assert tables() == before
