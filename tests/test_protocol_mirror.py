"""The ``mirror`` message (attach --mirror): a whole copy, or ``too_large``; anything else is
refused with a reason, as every server message is."""

from __future__ import annotations

import json
from typing import Any

import pytest

from plldb import limits
from plldb import protocol as p

SESSION = "0f8fad5b-d9cb-469f-a165-70867728950e"
INVOCATION = {
    "request_id": "req-1",
    "session_id": SESSION,
    "function_name": "shop-Hello-1A2B",
    "invoked_function_arn": "arn:aws:lambda:us-east-1:123456789012:function:shop-Hello-1A2B",
    "deadline_ms": 1_700_000_000_000,
    "event": '{"items": ["tea"]}',
    "environment": {"TABLE": "orders"},
    "trace_id": "Root=1-5e1b4151-5ac6c58f5b5daa6532e4f2b7",
    "client_context": None,
    "cognito_identity": None,
    "tenant_id": "tenant-1",
}
DROP = object()  # an override that removes the field
ERROR = {"errorMessage": "boom", "errorType": "ValueError", "stackTrace": ["  File \"app.py\"\n"]}


def mirror(**overrides: Any) -> dict[str, Any]:
    message = p.mirror_message(INVOCATION, 3000, response='{"total": 3}')
    message.update(overrides)
    return {k: v for k, v in message.items() if v is not DROP}


def test_a_whole_mirror_passes_with_either_outcome() -> None:
    response = mirror()
    assert p.parse_server_message(p.encode(response)) == response
    assert response == {"type": "mirror", **INVOCATION, "remaining_ms": 3000,
                        "cloud": {"response": '{"total": 3}'}}
    failed = p.mirror_message(INVOCATION, 0, error=ERROR)
    assert p.parse_server_message(p.encode(failed))["cloud"] == {"error": ERROR}
    bare = {k: v for k, v in response.items() if k not in ("trace_id", "client_context",
                                                          "cognito_identity", "tenant_id")}
    assert p.parse_server_message(p.encode(bare)) == bare


def test_too_large_carries_only_the_names_and_the_size() -> None:
    message = p.mirror_too_large("req-1", SESSION, "shop-Hello-1A2B", 40_000)
    assert p.parse_server_message(p.encode(message)) == {
        "type": "mirror", "request_id": "req-1", "session_id": SESSION,
        "function_name": "shop-Hello-1A2B", "too_large": 40_000,
    }


def test_the_builder_posts_too_large_when_the_copy_would_not_fit_one_post() -> None:
    big = {**INVOCATION, "event": json.dumps({"blob": "x" * limits.POST_SIZE})}
    message = p.mirror_message(big, 3000, response="null")
    assert set(message) == {"type", "request_id", "session_id", "function_name", "too_large"}
    assert message["too_large"] > limits.POST_SIZE
    whole = {"type": "mirror", **big, "remaining_ms": 3000, "cloud": {"response": "null"}}
    assert message["too_large"] == len(p.encode(whole).encode())
    with pytest.raises(ValueError, match="exactly one of response and error"):
        p.mirror_message(INVOCATION, 3000)


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"request_id": "a b"}, "malformed request_id"),
        ({"session_id": DROP}, "without 'session_id'"),
        ({"function_name": 7}, "'function_name' has the wrong type"),
        ({"event": DROP}, "without 'event' \\(nor 'too_large'\\)"),
        ({"cloud": DROP}, "without 'cloud'"),
        ({"remaining_ms": DROP}, "without 'remaining_ms'"),
        ({"remaining_ms": -1}, "'remaining_ms' must be 0 to 900000"),
        ({"remaining_ms": 900_001}, "'remaining_ms' must be 0 to 900000"),
        ({"remaining_ms": True}, "'remaining_ms' must be int"),
        ({"deadline_ms": "soon"}, "'deadline_ms' has the wrong type"),
        ({"environment": {"TABLE": 1}}, "'environment' must map names to text"),
        ({"event": {"items": []}}, "'event' has the wrong type"),
        ({"cloud": {}}, "exactly one of 'response' and 'error'"),
        ({"cloud": {"response": "1", "error": ERROR}}, "exactly one of 'response' and 'error'"),
        ({"cloud": {"result": "1"}}, "exactly one of 'response' and 'error'"),
        ({"cloud": {"response": {"total": 3}}}, "'cloud.response' must be the response body as text"),
        ({"cloud": {"error": "boom"}}, "'cloud.error' must be an object"),
        ({"cloud": {"error": {"errorMessage": "boom"}}}, "cloud.error message without 'errorType'"),
        ({"too_large": 40_000}, "with 'too_large' carries no 'invoked_function_arn'"),
        ({"too_large": "big"}, "'too_large' has the wrong type"),
    ],
)
def test_a_malformed_mirror_is_refused_with_a_reason(overrides: dict[str, Any], reason: str) -> None:
    with pytest.raises(p.ProtocolError, match=reason):
        p.parse_server_message(p.encode(mirror(**overrides)))


def test_too_large_must_be_a_size() -> None:
    message = p.mirror_too_large("req-1", SESSION, "fn", 40_000)
    with pytest.raises(p.ProtocolError, match="'too_large' must be a size in bytes"):
        p.parse_server_message(p.encode({**message, "too_large": -5}))
    with pytest.raises(p.ProtocolError, match="with 'too_large' carries no 'event'"):
        p.parse_server_message(p.encode({**message, "event": "{}"}))


def test_mirror_is_a_server_type() -> None:
    assert p.TYPE_MIRROR in p.SERVER_TYPES
