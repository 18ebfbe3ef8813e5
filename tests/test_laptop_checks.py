"""What attach checks in an invocation message before it runs anything (plldb/session/checks.py).

A real :class:`Attachment` (its boto3 clients point at a real moto server) with a real
executor runs a handler that leaves a mark when it runs; messages are fed as the connection
would hand them over, and what attach sends back is recorded where the connection would
send it. Payload URLs go to real HTTP servers: moto's S3, and one that records whatever
reaches it (nothing must, tests/harness/recording_host.py).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import botocore.config
import pytest

from plldb import naming
from plldb.capture import invoke, records, replay
from plldb.cloud.aws import AwsContext
from plldb.cloud.helper_stack import HelperStack
from plldb.project.model import LocalFunction
from plldb.session import payloads
from plldb.session.attach import Attachment
from plldb.session.plan import AttachOptions, AttachPlan
from tests.harness.moto_server import MotoServer
from tests.harness.recording_host import recording_host

SESSION = "0f8fad5b-d9cb-469f-a165-70867728950e"
OTHER_SESSION = "6ec0bd7f-11c0-43da-975e-2a8ad9ebae0b"
FUNCTION = "shop-HelloFunction-3C4D"
BUCKET = "plldb-core-infrastructure-us-east-1-123456789012"
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "ASIAFUNCTION", "AWS_SECRET_ACCESS_KEY": "s", "AWS_SESSION_TOKEN": "t"}
HANDLER = """import json, os
from pathlib import Path

def handler(event, context):
    Path(os.environ["MARKS"], context.aws_request_id).write_text(json.dumps(event))
    return {"endpoint": os.environ.get("AWS_ENDPOINT_URL"), "proxy": os.environ.get("HTTPS_PROXY"),
            "key": os.environ.get("AWS_ACCESS_KEY_ID")}
"""


class Sent:
    """Where the connection would send attach's answers (the other side of the socket)."""

    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []

    async def send(self, message: dict[str, Any]) -> None:
        self.messages.append(message)


@pytest.fixture
def elsewhere() -> Iterator[tuple[str, list[str]]]:
    with recording_host() as host:
        yield host


@pytest.fixture
def marks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "marks"
    folder.mkdir()
    monkeypatch.setenv("MARKS", str(folder))
    return folder


def attachment(tmp_path: Path, credentials: str = "function") -> Attachment:
    code = tmp_path / "code"
    code.mkdir(exist_ok=True)
    (code / "app.py").write_text(HANDLER)
    ctx = AwsContext(region="us-east-1")
    fields = {name: name for name in HelperStack.__dataclass_fields__}
    helper = HelperStack(**{**fields, "payload_bucket": BUCKET})
    hello = LocalFunction("HelloFunction", "app.handler", "python3.11", code, (code,))
    plan = AttachPlan(helper=helper, functions={FUNCTION: hello}, caller_arn="arn:me", debugger_ctx=ctx)
    options = AttachOptions(stack_name="shop", template=tmp_path, credentials=credentials)
    attached = Attachment(ctx, options, plan)
    attached.session_id = SESSION
    attached.connection = Sent()  # type: ignore[assignment]
    return attached


def invocation(request_id: str = "req-1", session_id: str = SESSION, **fields: Any) -> dict[str, Any]:
    message = {"type": "invocation", "request_id": request_id, "session_id": session_id,
               "function_name": FUNCTION, "invoked_function_arn": f"arn:aws:lambda:us-east-1:1:function:{FUNCTION}",
               "deadline_ms": int(time.time() * 1000) + 30_000, "event": '{"n": 1}',
               "environment": dict(CREDENTIALS)}
    return {**message, **fields}


def serve(attached: Attachment, *messages: dict[str, Any], answers: int = 1) -> list[dict[str, Any]]:
    """Feed ``messages`` and wait (bounded) until ``answers`` answers were sent."""
    sent: Sent = attached.connection  # type: ignore[assignment]

    async def scenario() -> None:
        for message in messages:
            await attached.on_message(message)
        deadline = time.monotonic() + 20
        while len(sent.messages) < answers and time.monotonic() < deadline:
            await asyncio.sleep(0.01)

    asyncio.run(scenario())
    return sent.messages


def url(origin: str, key: str) -> str:
    return f"{origin}/{BUCKET}/{key}?X-Amz-Signature=0"


def key(direction: str, session_id: str = SESSION, request_id: str = "req-1") -> str:
    return naming.payload_key("AROAEXAMPLE:fn", session_id, request_id, direction)


# --- the message's session is its own ------------------------------------------------------


def test_another_sessions_invocation_is_not_run_and_not_answered(
    aws: MotoServer, tmp_path: Path, marks: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    attached = attachment(tmp_path)
    assert serve(attached, invocation(session_id=OTHER_SESSION), answers=0) == []
    assert list(marks.iterdir()) == []
    err = " ".join(capsys.readouterr().err.split())
    assert (f"refused invocation req-1 of {FUNCTION}: it is for session {OTHER_SESSION}, not this "
            f"session {SESSION}; not run and not answered") in err
    assert "report it, with this request id, to whoever runs the helper stack" in err


def test_this_sessions_invocation_runs(aws: MotoServer, tmp_path: Path, marks: Path) -> None:
    (answer,) = serve(attachment(tmp_path), invocation())
    assert answer["action"] == "response", answer
    assert json.loads((marks / "req-1").read_text()) == {"n": 1}


# --- payload URLs point at the helper bucket on S3 only -----------------------------------


@pytest.mark.parametrize("field", ["event_ref", "result_upload"])
def test_a_payload_url_to_another_host_is_refused_and_nothing_is_fetched(
    aws: MotoServer, tmp_path: Path, marks: Path, elsewhere: tuple[str, list[str]],
    capsys: pytest.CaptureFixture[str], field: str,
) -> None:
    origin, seen = elsewhere
    direction = "event" if field == "event_ref" else "response"
    ref = {"bucket": BUCKET, "key": key(direction), "url": url(origin, key(direction))}
    message = invocation(**{field: {**ref, "size": 8}})
    if field == "event_ref":
        del message["event"]
    (answer,) = serve(attachment(tmp_path), message)
    assert answer["error"]["errorType"] == "PLLDB.PayloadError"
    text = answer["error"]["errorMessage"]
    assert text.startswith(f"{field} refused: {origin}/{BUCKET}/{key(direction)} is not object "
                           f"{key(direction)} of the helper stack's bucket {BUCKET} on S3 (accepted "
                           f"endpoints: https://s3.us-east-1.amazonaws.com, https://s3.amazonaws.com, {aws.url})")
    assert text.endswith("; nothing was transferred")
    assert "X-Amz-Signature" not in text  # a URL's signature is never printed
    assert seen == [] and list(marks.iterdir()) == []
    assert f"request req-1: {field} refused" in " ".join(capsys.readouterr().err.split())


@pytest.mark.parametrize("ref_key, bucket", [
    (key("event", OTHER_SESSION), BUCKET),  # another session's object
    (key("event", request_id="req-2"), BUCKET),  # another request's
    (key("event"), "someone-elses-bucket"),
])
def test_a_payload_of_another_request_or_bucket_is_refused(
    aws: MotoServer, tmp_path: Path, marks: Path, ref_key: str, bucket: str
) -> None:
    ref = {"bucket": bucket, "key": ref_key, "size": 8, "url": url(aws.url, ref_key)}
    message = invocation(event_ref=ref)
    del message["event"]
    (answer,) = serve(attachment(tmp_path), message)
    assert answer["error"]["errorMessage"] == (
        f"event_ref names object {ref_key} of bucket {bucket}, not this request's {key('event')} "
        f"of the helper stack's bucket {BUCKET}: nothing was transferred")
    assert list(marks.iterdir()) == []


def test_the_helper_buckets_url_on_the_configured_endpoint_is_used(
    aws: MotoServer, tmp_path: Path, marks: Path
) -> None:
    s3 = boto3.client("s3", config=botocore.config.Config(signature_version="s3v4"))  # as the shim signs
    s3.create_bucket(Bucket=BUCKET)
    s3.put_object(Bucket=BUCKET, Key=key("event"), Body=b'{"n": 2}')
    presigned = s3.generate_presigned_url("get_object", Params={"Bucket": BUCKET, "Key": key("event")})
    message = invocation(event_ref={"bucket": BUCKET, "key": key("event"), "size": 8, "url": presigned})
    del message["event"]
    (answer,) = serve(attachment(tmp_path), message)
    assert answer["action"] == "response", answer
    assert json.loads((marks / "req-1").read_text()) == {"n": 2}


KEY = key("event")
PLACE = payloads.PayloadPlace(BUCKET, "eu-west-1", "http://127.0.0.1:5000")


@pytest.mark.parametrize("accepted", [
    f"https://{BUCKET}.s3.eu-west-1.amazonaws.com/{KEY}?X-Amz-Signature=1",
    f"https://s3.eu-west-1.amazonaws.com/{BUCKET}/{KEY}",
    f"https://{BUCKET}.s3.eu-west-1.amazonaws.com:443/{KEY}",
    f"http://127.0.0.1:5000/{BUCKET}/{KEY}",
])
def test_accepted_payload_urls(accepted: str) -> None:
    assert PLACE.problem(accepted, KEY) is None


@pytest.mark.parametrize("refused", [
    f"http://{BUCKET}.s3.eu-west-1.amazonaws.com/{KEY}",  # not https
    f"https://{BUCKET}.s3.eu-west-1.amazonaws.com.evil.example/{KEY}",
    f"https://s3.eu-west-1.amazonaws.com@evil.example/{BUCKET}/{KEY}",
    f"https://evil{BUCKET}.s3.eu-west-1.amazonaws.com/{KEY}",
    f"https://{BUCKET}.s3.eu-west-1.amazonaws.com:8443/{KEY}",
    f"https://{BUCKET}.s3.amazonaws.com/{KEY}",  # the global endpoint: us-east-1 only
    f"https://s3.eu-west-1.amazonaws.com/other-bucket/{KEY}",
    f"https://s3.eu-west-1.amazonaws.com/{BUCKET}/x/../{KEY}",
    f"http://127.0.0.1:5001/{BUCKET}/{KEY}",  # the configured endpoint, another port
    f"https://127.0.0.1:5000/{BUCKET}/{KEY}",  # ... another scheme
    f"http://localhost:5000/{BUCKET}/{KEY}",  # ... another host name
    f"http://127.0.0.1:abc/{BUCKET}/{KEY}",
])
def test_refused_payload_urls(refused: str) -> None:
    assert "is not object" in (PLACE.problem(refused, KEY) or "")


# --- credentials: the function's, never the developer's by accident -----------------------


def test_an_invocation_without_credentials_is_refused(
    aws: MotoServer, tmp_path: Path, marks: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    message = invocation(environment={"AWS_ACCESS_KEY_ID": "ASIAFUNCTION", "TABLE": "t"})
    (answer,) = serve(attachment(tmp_path), message)
    assert answer["error"]["errorType"] == "PLLDB.NoCredentials"
    expected = (f"the invocation of {FUNCTION} carries no AWS_SECRET_ACCESS_KEY of the function: plldb "
                "does not run it with your own credentials instead. Update the helper stack (`plldb "
                "bootstrap`), or attach with --credentials local to run handlers with your profile's "
                "credentials on purpose")
    assert answer["error"]["errorMessage"] == expected
    assert expected in " ".join(capsys.readouterr().err.split())
    assert list(marks.iterdir()) == []


def test_with_local_credentials_the_message_needs_none(aws: MotoServer, tmp_path: Path, marks: Path) -> None:
    (answer,) = serve(attachment(tmp_path, credentials="local"), invocation(environment={}))
    assert answer["action"] == "response", answer


# --- variables that redirect the SDK ------------------------------------------------------


def test_redirecting_variables_are_dropped_and_named_once(
    aws: MotoServer, tmp_path: Path, marks: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    forged = {**CREDENTIALS, "AWS_ENDPOINT_URL": "https://evil.example", "HTTPS_PROXY": "http://evil.example:3128"}
    first, second = (invocation(f"req-{n}", environment=forged) for n in (1, 2))
    answers = serve(attachment(tmp_path), first, second, answers=2)
    results = [json.loads(a["result"]) for a in answers]
    assert results == [{"endpoint": aws.url, "proxy": None, "key": "ASIAFUNCTION"}] * 2
    err = " ".join(capsys.readouterr().err.split())
    warning = ("HelloFunction: its environment sets AWS_ENDPOINT_URL, HTTPS_PROXY; not used here (they "
               "would send the handler's AWS calls elsewhere or choose other credentials): your own "
               "values, if any, apply")
    assert err.count(warning) == 1, err


# --- captures and replays never carry a forged environment --------------------------------


def test_captures_are_written_for_this_sessions_invocations_only_without_redirects(
    aws: MotoServer, tmp_path: Path, marks: Path
) -> None:
    folder = tmp_path / ".plldb"
    records.start(records.CaptureOptions(folder))
    try:
        forged = {**CREDENTIALS, "AWS_ENDPOINT_URL": "https://evil.example", "TABLE": "t"}
        serve(attachment(tmp_path), invocation("req-0", session_id=OTHER_SESSION),
              invocation("req-1", environment=forged))
    finally:
        records.stop()
    (record,) = records.load_records(folder)
    assert record["context"]["request_id"] == "req-1"
    assert record["environment"] == {"TABLE": "t"}


def test_a_replay_never_takes_a_redirect_from_a_capture(aws: MotoServer, tmp_path: Path, marks: Path) -> None:
    """A capture written by an older plldb, or edited, may hold AWS_ENDPOINT_URL: not used."""
    attached = attachment(tmp_path)
    function = attached.plan.functions[FUNCTION]
    record = {"event": {"n": 3}, "context": {"request_id": "req-9"},
              "environment": {"AWS_ENDPOINT_URL": "https://evil.example", "HTTPS_PROXY": "http://evil.example"}}
    outcome, _ = invoke.run_invocation(function, replay.fields_of(record), invoke.CREDENTIALS_NONE)
    assert json.loads(outcome.body) == {"endpoint": aws.url, "proxy": None, "key": None}
