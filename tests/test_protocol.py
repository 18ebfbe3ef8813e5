"""The shared protocol: every invalid message is refused with a reason."""

from __future__ import annotations

import json

import pytest

from plldb import limits, naming
from plldb import protocol as p

SESSION = "0f8fad5b-d9cb-469f-a165-70867728950e"


def invocation(**overrides):
    message = {
        "type": "invocation",
        "request_id": "req-1",
        "session_id": SESSION,
        "function_name": "fn",
        "invoked_function_arn": "arn:aws:lambda:us-east-1:123456789012:function:fn",
        "deadline_ms": 1_700_000_000_000,
        "event": "{}",
        "environment": {},
    }
    message.update(overrides)
    return json.dumps(message)


def test_valid_client_messages_pass():
    assert p.parse_client_message(p.encode(p.response_message("r1", result='{"a":1}')))["result"]
    error = {"errorMessage": "boom", "errorType": "ValueError", "stackTrace": []}
    assert p.parse_client_message(p.encode(p.error_message("r1", error)))["error"] == error
    assert p.parse_client_message('{"action":"ping"}') == {"action": "ping"}
    assert p.parse_client_message('{"action":"detach"}') == {"action": "detach"}


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("not json", "not valid JSON"),
        ("[1,2]", "not a JSON object"),
        ('{"action":"launch"}', "unknown action 'launch'"),
        ('{"action":"response"}', "without 'request_id'"),
        ('{"action":"response","request_id":"r"}', "exactly one of"),
        ('{"action":"response","request_id":"a b","result":"1"}', "malformed request_id"),
        ('{"action":"response","request_id":7,"result":"1"}', "wrong type"),
        ('{"action":"error","request_id":"r","error":{"errorType":"X"}}', "errorMessage"),
        (
            '{"action":"response","request_id":"r","result_ref":{"bucket":"b","key":"x","size":1}}',
            "under payloads/",
        ),
        (b"\xff\xfe", "not UTF-8"),
        (12, "not text"),
    ],
)
def test_invalid_client_messages_are_refused_with_a_reason(raw, reason):
    with pytest.raises(p.ProtocolError, match=reason):
        p.parse_client_message(raw)


def test_oversized_message_is_refused():
    big = p.encode(p.response_message("r", result="x" * limits.MESSAGE_LIMIT))
    with pytest.raises(p.ProtocolError, match="over the 131072 byte limit"):
        p.parse_client_message(big)


def test_server_messages():
    assert p.parse_server_message(invocation())["request_id"] == "req-1"
    with pytest.raises(p.ProtocolError, match="exactly one of 'event' and 'event_ref'"):
        p.parse_server_message(invocation(event_ref={"bucket": "b", "key": "payloads/x", "size": 3}))
    with pytest.raises(p.ProtocolError, match="'deadline_ms' must be int"):
        p.parse_server_message(invocation(deadline_ms=True))
    with pytest.raises(p.ProtocolError, match="unknown message type"):
        p.parse_server_message('{"type":"surprise"}')
    ref = {"bucket": "b", "key": "payloads/s/r/event.json", "size": limits.MAX_PAYLOAD + 1}
    message = json.loads(invocation())
    del message["event"]
    message["event_ref"] = ref
    with pytest.raises(p.ProtocolError, match="over the 6291456 byte limit"):
        p.parse_server_message(json.dumps(message))


EVENT_KEY = f"payloads/{SESSION}/req-1/event.json"
RESPONSE_KEY = f"payloads/{SESSION}/req-1/response.json"
SIGNED = "?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Signature=ab"


def offloaded(get_url: str | None = None, **upload) -> str:
    """An invocation with its event offloaded (GET URL ``get_url``) and a result upload target."""
    message = json.loads(invocation())
    del message["event"]
    message["event_ref"] = {"bucket": "b", "key": EVENT_KEY, "size": 3}
    if get_url is not None:
        message["event_ref"]["url"] = get_url
    message["result_upload"] = {
        "bucket": "b", "key": RESPONSE_KEY, "url": f"https://b.s3.amazonaws.com/{RESPONSE_KEY}{SIGNED}",
        **upload,
    }
    return json.dumps(message)


def test_payload_urls_pass():
    path_style = f"http://127.0.0.1:5000/b/{EVENT_KEY.replace('req-1', 'req%2D1')}{SIGNED}"
    message = p.parse_server_message(offloaded(path_style))
    assert message["event_ref"]["url"] == path_style
    assert message["result_upload"]["key"] == RESPONSE_KEY


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (offloaded(None), "event_ref needs a 'url'"),
        (offloaded("file:///etc/passwd"), "event_ref url must be an http"),
        (offloaded(f"https:///{EVENT_KEY}"), "event_ref url must be an http"),
        (offloaded(f"https://b.s3.amazonaws.com/{RESPONSE_KEY}{SIGNED}"), "does not point at its key"),
        (offloaded(f"https://b.s3.amazonaws.com/{EVENT_KEY}?" + "x" * limits.PRESIGNED_URL_LIMIT),
         "at most 8192 characters"),
        (offloaded(f"https://h/{EVENT_KEY}", url=f"https://h/{EVENT_KEY}"), "result_upload url does not point"),
        (offloaded(f"https://h/{EVENT_KEY}", key="other/response.json"), "under payloads/"),
        (offloaded(f"https://h/{EVENT_KEY}", bucket=3), "result_upload needs 'bucket'"),
    ],
)
def test_invalid_payload_urls_are_refused_with_a_reason(raw, reason):
    with pytest.raises(p.ProtocolError, match=reason):
        p.parse_server_message(raw)


@pytest.mark.parametrize("text", ["", "a", "é" * 20000, "x" * (limits.FRAME_LIMIT * 3 + 5), "日本" * 9000])
def test_fragments_rejoin_and_respect_the_frame_limit(text):
    pieces = p.fragments(text)
    assert "".join(pieces) == text
    assert all(len(piece.encode()) <= limits.FRAME_SIZE for piece in pieces)


def test_what_plldb_sends_stays_below_the_aws_quotas_by_a_margin():
    """The quotas are 32 KB frames and 128 KB messages (docs/aws-limits.md), "KB" possibly
    meaning 1,000 bytes; a post to a connection is held to the frame quota."""
    for size, quota, margin in ((limits.FRAME_SIZE, 32_000, 1000), (limits.POST_SIZE, 32_000, 1000),
                                (limits.MESSAGE_SIZE, 128_000, 4000)):
        assert size <= quota - margin
    assert limits.INLINE_PAYLOAD_LIMIT <= limits.MESSAGE_SIZE - 16 * 1024  # the envelope's room


def test_ids_and_secrets():
    assert p.is_session_id(SESSION)
    assert not p.is_session_id("../../etc")
    assert not p.is_session_id(None)
    env = {"AWS_SECRET_ACCESS_KEY": "s", "AWS_SESSION_TOKEN": "t", "AWS_ACCESS_KEY_ID": "k", "A": "1"}
    assert naming.without_secrets(env) == {"A": "1"}
    owner = "AROAEXAMPLE:fn"
    key = naming.payload_key(owner, SESSION, "r1", "event")
    assert key == f"payloads/{owner}/{SESSION}/r1/event.json"
    assert naming.payload_owner(key, SESSION, "r1", "event") == owner
    assert naming.payload_owner(key, SESSION, "r2", "event") is None, "another request"
    assert naming.payload_owner(f"payloads/a/b/{SESSION}/r1/event.json", SESSION, "r1", "event") is None
    assert naming.payload_owner(f"other/{owner}/{SESSION}/r1/event.json", SESSION, "r1", "event") is None


def test_a_session_owner_is_stable_across_processes_of_one_role_profile() -> None:
    """botocore names a role_arn profile's sessions itself, anew in every process
    (botocore-session-<epoch>): the owner drops such a name, so a restarted plldb still owns
    its session; a name the user controls (SSO's, a profile's role_session_name) stays."""
    generated = "arn:aws:sts::123456789012:assumed-role/Developer/botocore-session-1733500000"
    assert naming.session_owner(generated) == "arn:aws:iam::123456789012:role/Developer"
    again = generated.replace("1733500000", "1733509999")
    assert naming.session_owner(again) == naming.session_owner(generated)
    chosen = "arn:aws:sts::123456789012:assumed-role/AWSReservedSSO_Dev_1a2b/alice@example.com"
    assert naming.session_owner(chosen) == chosen
    user = "arn:aws-cn:iam::123456789012:user/bob"
    assert naming.session_owner(user) == user
    assert naming.session_owner("arn:aws:sts::123456789012:assumed-role/R/botocore-session-x") == (
        "arn:aws:sts::123456789012:assumed-role/R/botocore-session-x"
    )
