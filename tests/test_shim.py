"""The debug path end to end, with real parts only.

A function runs in the container harness with the real layer zip (wrapper + shim) and the
real awslambdaric behind it; the shim talks to moto (tables, bucket) and to the gateway
emulator's management API; a stand-in for the local tool connects over a real WebSocket
with a session, receives the ``invocation`` messages and answers through the real
``$default`` handler.
"""

from __future__ import annotations

import hashlib
import json
import statistics
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import psutil
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection

from plldb import limits, naming, protocol, runner
from plldb.session import payloads
from tests.harness.container import Container
from tests.harness.gateway import Gateway
from tests.harness.gateway_setup import (
    PAYLOAD_BUCKET,
    HelperResources,
    get_session,
    put_session,
    wait_until,
)
from tests.harness.identity_proof import connect_session
from tests.harness.moto_server import FAKE_CREDENTIALS, MotoServer
from tests.harness.runtime_api import ERROR, SUCCESS, RuntimeApiEmulator
from tests.test_wrapper import start_function, write_function

pytest_plugins = ["tests.harness.gateway_fixtures"]
pytestmark = pytest.mark.timeout(120)

FUNCTION = "debugged-function"
KB = 1024
MB = 1024 * 1024


class StandIn:
    """The local tool, reduced to its protocol: answers each invocation with ``policy``.

    ``policy(stand_in, message, event_text)`` returns the message to send back (or None).
    """

    def __init__(self, gateway: Gateway, session_id: str, policy: Callable[..., dict | None]):
        self.gateway = gateway
        self.session_id = session_id
        self.policy = policy
        self.invocations: list[dict[str, Any]] = []
        self.items: list[dict[str, Any]] = []  # each request's item, as it was when sent
        self.events: list[str] = []
        self.connections: list[str] = []
        self.rejections: list[str] = []
        self.ws = self._connect()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _connect(self) -> ClientConnection:
        ws = connect_session(self.gateway.websocket_url, self.session_id, max_size=None)
        self.connections.append(get_session(self.session_id)[naming.A_CONNECTION_ID]["S"])
        return ws

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                text = self.ws.recv(timeout=0.2)
            except TimeoutError:
                continue
            except ConnectionClosed:
                if self._stop.wait(0.05):
                    return
                continue  # replaced by reconnect()
            message = protocol.parse_server_message(text)
            if message["type"] == protocol.TYPE_REJECTED:
                self.rejections.append(message["reason"])
            if message["type"] != protocol.TYPE_INVOCATION:
                continue
            self.invocations.append(message)
            self.items.append(request_item(message["request_id"]))
            if "event_ref" in message:  # through its presigned URL, as the tool does
                event = payloads.fetch(message["event_ref"])
            else:
                event = message["event"].encode()
            self.events.append(event.decode())
            reply = self.policy(self, message, event.decode())
            if reply is not None:
                self.send(reply)

    def send(self, message: dict[str, Any]) -> None:
        self.ws.send(protocol.fragments(protocol.encode(message)))

    def result(self, message: dict[str, Any], body: str) -> dict[str, Any]:
        """A ``response`` message, uploading a body too large for a message as the tool does
        (to the invocation's presigned PUT URL)."""
        request_id = message["request_id"]
        if len(body.encode()) <= limits.INLINE_PAYLOAD_LIMIT:
            return protocol.response_message(request_id, result=body)
        ref = payloads.upload(message["result_upload"], body.encode())
        return protocol.response_message(request_id, result_ref=ref)

    def reconnect(self) -> None:
        """Drop the connection and come back with a new one, as the tool's reconnect does."""
        boto3.client("dynamodb").update_item(
            TableName=naming.SESSIONS_TABLE,
            Key={naming.A_SESSION_ID: {"S": self.session_id}},
            UpdateExpression="SET #s = :pending",
            ExpressionAttributeNames={"#s": naming.A_STATUS},
            ExpressionAttributeValues={":pending": {"S": naming.PENDING}},
        )
        old = self.ws
        self.ws = self._connect()
        old.close()

    def close(self) -> None:
        self._stop.set()
        self.ws.close()
        self._thread.join(5)


def answer(stand_in: StandIn, message: dict[str, Any], event_text: str) -> dict | None:
    """The stand-in's behaviour, chosen by the event's ``stand_in`` field."""
    event = json.loads(event_text)
    request_id = message["request_id"]
    how = event.get("stand_in", "echo")
    if how == "echo":
        return stand_in.result(message, json.dumps({"echo": event, "local": True}))
    if how == "fail":
        try:
            raise KeyError("missing-key")
        except KeyError as exc:
            return protocol.error_message(request_id, runner.error_from_exception(exc, request_id))
    if how == "sized":
        return stand_in.result(message, json.dumps("y" * (event["result_size"] - 2)))
    if how == "late":
        time.sleep(message["deadline_ms"] / 1000 - time.time() + 0.5)
        return stand_in.result(message, '"too late"')
    if how == "detach":
        stand_in.send({"action": protocol.ACTION_DETACH})
        return None
    if how == "reconnect" and len(stand_in.connections) == 1:
        stand_in.reconnect()
        return None
    if how == "reconnect":
        return stand_in.result(message, '"after reconnect"')
    return None  # "silent"


@pytest.fixture
def emulator() -> Iterator[RuntimeApiEmulator]:
    with RuntimeApiEmulator(FUNCTION) as api:
        yield api


@pytest.fixture
def code(tmp_path: Path) -> Path:
    return write_function(tmp_path / "code")


@pytest.fixture
def session_id(gateway: Gateway) -> str:
    return put_session("no-such-stack")


@pytest.fixture
def stand_in(gateway: Gateway, session_id: str) -> Iterator[StandIn]:
    client = StandIn(gateway, session_id, answer)
    yield client
    client.close()


def debug_environment(aws: MotoServer, gateway: Gateway, helper: HelperResources,
                      session_id: str) -> dict[str, str]:
    """What the manager sets on an instrumented function (pointed at the emulators)."""
    return {
        **FAKE_CREDENTIALS,
        "AWS_ENDPOINT_URL": aws.url,
        naming.ENV_EXEC_WRAPPER: naming.WRAPPER_PATH,
        naming.ENV_SESSION_ID: session_id,
        naming.ENV_CONNECTION_ID: "first-connection",
        naming.ENV_SESSIONS_TABLE: helper.sessions_table,
        naming.ENV_DEBUGGER_TABLE: helper.debugger_table,
        naming.ENV_MANAGEMENT_URL: gateway.management_url,
        naming.ENV_PAYLOAD_BUCKET: helper.payload_bucket,
    }


@pytest.fixture
def debugged(aws: MotoServer, gateway: Gateway, helper: HelperResources, session_id: str,
             emulator: RuntimeApiEmulator, code: Path, tmp_path: Path,
             stand_in: StandIn) -> Iterator[Container]:
    environment = debug_environment(aws, gateway, helper, session_id)
    with start_function(emulator, code, tmp_path / "container", environment) as container:
        yield container


def request_item(request_id: str) -> dict[str, Any]:
    """The request's item in PLLDBDebugger ({} once deleted)."""
    return boto3.client("dynamodb").get_item(
        TableName=naming.DEBUGGER_TABLE, Key={naming.A_REQUEST_ID: {"S": request_id}},
        ConsistentRead=True,
    ).get("Item", {})


# What a request item may hold: whose request it is, never the event, environment or result
# for longer than the answer's way back (docs/security.md, "Nothing sensitive at rest").
ITEM_ATTRIBUTES = {
    naming.A_REQUEST_ID, naming.A_SESSION_ID, naming.A_FUNCTION_NAME, naming.A_OWNER,
    naming.A_STATUS, naming.A_TTL, naming.A_CREATED_AT,
}


def assert_forgotten(request_id: str, *keys: str) -> None:
    """The answered request's item and payload objects are deleted (off the caller's path,
    so within a bound)."""
    wait_until(lambda: request_item(request_id) == {}, timeout=20)
    s3 = boto3.client("s3")
    for key in keys:
        listed = s3.list_objects_v2(Bucket=PAYLOAD_BUCKET, Prefix=key).get("Contents", [])
        assert listed == [], key


def test_invocation_is_answered_by_the_local_tool(
    debugged: Container, emulator: RuntimeApiEmulator, stand_in: StandIn
) -> None:
    process = psutil.Process(debugged.pid)
    assert process.cmdline()[1].endswith("plldb-shim/plldb/layer/shim.py")
    assert process.children() == []  # the shim is the runtime process, nothing else runs

    result = emulator.invoke('{"stand_in": "echo", "n": 1}', request_id="req-ok", tenant_id="tenant-7")

    assert result.status == SUCCESS
    assert result.json == {"echo": {"stand_in": "echo", "n": 1}, "local": True}
    assert result.invocation_id_echoed is True
    message = stand_in.invocations[0]
    assert message["request_id"] == "req-ok"
    assert message["session_id"] == stand_in.session_id
    assert message["function_name"] == FUNCTION
    assert message["invoked_function_arn"] == emulator.function_arn
    assert message["deadline_ms"] == result.deadline_ms
    assert message["trace_id"] == result.next_headers[runner.H_TRACE_ID]
    assert message["tenant_id"] == "tenant-7"
    assert message["environment"]["AWS_SECRET_ACCESS_KEY"] == "testing"  # connection only
    assert message["environment"]["_HANDLER"] == "app.handler"
    [item] = stand_in.items
    assert set(item) == ITEM_ATTRIBUTES, "no event, environment or result at rest"
    assert item[naming.A_STATUS]["S"] == naming.REQUEST_PENDING
    assert item[naming.A_OWNER]["S"] == boto3.client("sts").get_caller_identity()["UserId"]
    assert 0 < int(item[naming.A_TTL]["N"]) - time.time() <= limits.REQUEST_TTL_SECONDS
    assert_forgotten("req-ok")


def test_round_trip_latency(debugged: Container, emulator: RuntimeApiEmulator) -> None:
    """A trivial answer comes back fast: polling starts at a few milliseconds."""
    durations = [
        emulator.invoke('{"stand_in": "echo"}').duration_s or 0.0 for _ in range(10)
    ]
    median = statistics.median(durations)
    print(f"round trip through the emulators: median {median * 1000:.0f} ms, "
          f"max {max(durations) * 1000:.0f} ms")
    assert median < 1.0


def test_local_handler_error_arrives_in_the_runtime_format(
    debugged: Container, emulator: RuntimeApiEmulator
) -> None:
    result = emulator.invoke('{"stand_in": "fail"}', request_id="req-fail")

    assert result.status == ERROR
    assert result.error_type == "KeyError"
    error = result.error
    assert list(error) == ["errorMessage", "errorType", "requestId", "stackTrace"]
    assert error["errorMessage"] == "'missing-key'"
    assert error["errorType"] == "KeyError"
    assert error["requestId"] == "req-fail"
    assert error["stackTrace"] and error["stackTrace"][0].startswith('  File "')
    assert_forgotten("req-fail")


def test_no_answer_before_the_deadline_gives_a_clear_error_in_time(
    debugged: Container, emulator: RuntimeApiEmulator, stand_in: StandIn
) -> None:
    result = emulator.invoke('{"stand_in": "late"}', timeout_s=4, request_id="req-late")

    assert result.status == ERROR  # answered by the shim, not timed out by the platform
    assert result.error_type == naming.ERROR_NO_RESPONSE
    assert result.error["errorMessage"].startswith(
        "no response from the local debugger before the deadline (waited "
    )
    assert result.answered_epoch_ms is not None and result.deadline_ms is not None
    assert 0 < result.deadline_ms - result.answered_epoch_ms < 1000
    assert_forgotten("req-late")
    # the late answer is refused by $default (no pending request is left to accept it),
    # and the function serves the next one
    wait_until(lambda: stand_in.rejections, timeout=10)
    assert "req-late is not a pending request of this session" in stand_in.rejections[0]
    assert emulator.invoke('{"stand_in": "echo"}').status == SUCCESS


def test_reconnected_tool_gets_the_invocation_again(
    debugged: Container, emulator: RuntimeApiEmulator, stand_in: StandIn
) -> None:
    result = emulator.invoke('{"stand_in": "reconnect"}', timeout_s=20, request_id="req-re")

    assert (result.status, result.json) == (SUCCESS, "after reconnect")
    assert [m["request_id"] for m in stand_in.invocations] == ["req-re", "req-re"]
    assert len(set(stand_in.connections)) == 2


@pytest.mark.parametrize("first", ["echo", "fail"])
def test_session_gone_mid_run_passes_through_then_hands_over(
    aws: MotoServer, gateway: Gateway, helper: HelperResources, session_id: str,
    code: Path, tmp_path: Path, stand_in: StandIn, first: str,
) -> None:
    """The tool detaches while an invocation waits: it runs in the cloud, like the original."""
    workdir = tmp_path / "container"  # same task root for both runs: same stack traces
    events = {
        "echo": '{"action": "echo", "stand_in": "detach"}',
        "fail": '{"action": "fail", "n": 7, "stand_in": "detach"}',
    }
    second = "fail" if first == "echo" else "echo"

    def comparable(result: Any) -> tuple[str, Any]:
        body = result.json
        if isinstance(body, dict):
            body.pop("pid", None)
        return result.status, body

    with RuntimeApiEmulator(FUNCTION) as plain_api:
        with start_function(plain_api, code, workdir, {}):
            expected = {
                name: comparable(plain_api.invoke(events[name], request_id=f"req-{name}"))
                for name in (first, second)
            }
    environment = debug_environment(aws, gateway, helper, session_id)
    with RuntimeApiEmulator(FUNCTION) as api:
        with start_function(api, code, workdir, environment) as container:
            pid = container.pid
            passed = api.invoke(events[first], timeout_s=20, request_id=f"req-{first}")
            assert comparable(passed) == expected[first]
            assert get_session(session_id)[naming.A_STATUS]["S"] == naming.CLOSED
            # the same process now is the original runtime: no shim on later invocations
            # (the exec follows the answer: /proc shows an empty cmdline for a moment)
            wait_until(lambda: psutil.Process(pid).cmdline()[1:] == container.command[-1:])
            direct = api.invoke(events[second], request_id=f"req-{second}")
            assert comparable(direct) == expected[second]
            assert len(stand_in.invocations) == 1  # the second one never reached the tool
            logs = container.logs()
    assert "running app.handler in the cloud (pass-through)" in logs
    assert "handing over to the function's own runtime" in logs


@pytest.mark.parametrize(
    "size", [KB, 40 * KB, 200 * KB, 6 * MB - 200], ids=["1KB", "40KB", "200KB", "6MB"]
)
def test_payload_sizes(
    debugged: Container, emulator: RuntimeApiEmulator, stand_in: StandIn, size: int
) -> None:
    head = json.dumps({"stand_in": "sized", "result_size": size, "pad": ""})
    event = head[:-2] + "z" * (size - len(head)) + '"}'
    assert len(event) == size

    result = emulator.invoke(event, timeout_s=60, request_id=f"req-{size}", wait_s=90)

    assert result.status == SUCCESS, result.body[:300]
    assert len(result.body) == size
    assert result.body == json.dumps("y" * (size - 2)).encode()
    message = stand_in.invocations[0]
    assert hashlib.sha256(stand_in.events[0].encode()).digest() == \
        hashlib.sha256(event.encode()).digest()
    # a post to the connection is held to API Gateway's 32 KB frame quota (less a margin)
    assert len(protocol.encode(message).encode()) <= limits.POST_SIZE
    offloaded = size > 20 * KB
    assert ("event_ref" in message) == offloaded
    [item] = stand_in.items
    assert set(item) == ITEM_ATTRIBUTES  # the event is never stored, nor its URLs
    # every invocation carries a presigned PUT URL for its own result object
    owner = item[naming.A_OWNER]["S"]
    upload = message["result_upload"]
    assert upload["key"] == naming.payload_key(owner, stand_in.session_id, f"req-{size}", "response")
    assert upload["key"] in urllib.parse.unquote(upload["url"])
    if offloaded:
        key = naming.payload_key(owner, stand_in.session_id, f"req-{size}", "event")
        assert message["event_ref"]["key"] == key
        assert message["event_ref"]["size"] == size
        assert "X-Amz-Signature=" in message["event_ref"]["url"]
    assert_forgotten(f"req-{size}", f"{naming.PAYLOAD_PREFIX}{owner}/{stand_in.session_id}/req-{size}/")


def test_session_closed_before_the_invocation_passes_through(
    aws: MotoServer, gateway: Gateway, helper: HelperResources, session_id: str,
    emulator: RuntimeApiEmulator, code: Path, tmp_path: Path,
) -> None:
    """A function still instrumented after its session closed keeps working at once."""
    boto3.client("dynamodb").delete_item(
        TableName=naming.SESSIONS_TABLE, Key={naming.A_SESSION_ID: {"S": session_id}}
    )
    environment = debug_environment(aws, gateway, helper, session_id)
    with start_function(emulator, code, tmp_path / "container", environment) as container:
        result = emulator.invoke('{"action": "echo"}', request_id="req-closed")
        assert result.status == SUCCESS
        assert result.json["request_id"] == "req-closed"
        assert result.json["pid"] == container.pid  # ran in the function's own process
        logs = container.logs()
    assert "session is deleted: running app.handler in the cloud (pass-through)" in logs


@pytest.mark.parametrize(
    ("change", "event_size", "expected"),
    [
        (
            {naming.ENV_MANAGEMENT_URL: "http://127.0.0.1:9"},
            10,
            "plldb could not send the invocation to the local debugger: Could not connect "
            'to the endpoint URL: "http://127.0.0.1:9/@connections/',
        ),
        (
            {naming.ENV_PAYLOAD_BUCKET: ""},
            200 * KB,
            "plldb could not send the invocation to the local debugger: event of 204800 "
            f"bytes needs the payload bucket, but {naming.ENV_PAYLOAD_BUCKET} is not set",
        ),
    ],
    ids=["unreachable-management-api", "no-payload-bucket"],
)
def test_debug_path_failures_answer_with_a_clear_error(
    aws: MotoServer, gateway: Gateway, helper: HelperResources, session_id: str,
    emulator: RuntimeApiEmulator, code: Path, tmp_path: Path, stand_in: StandIn,
    change: dict[str, str], event_size: int, expected: str,
) -> None:
    environment = {**debug_environment(aws, gateway, helper, session_id), **change}
    head = '{"pad": ""}'
    event = head[:-2] + "z" * (event_size - len(head)) + '"}'
    with start_function(emulator, code, tmp_path / "container", environment):
        result = emulator.invoke(event, timeout_s=30)
    assert result.status == ERROR
    assert result.error_type == naming.ERROR_SHIM
    assert result.error["errorMessage"].startswith(expected), result.error["errorMessage"]


def test_a_connection_gone_without_disconnect_holds_an_invocation_for_the_grace_period_only(
    aws: MotoServer, gateway: Gateway, helper: HelperResources,
    emulator: RuntimeApiEmulator, code: Path, tmp_path: Path,
) -> None:
    """plldb killed and its $disconnect lost: the session stays ACTIVE on a connection API
    Gateway answers 410 for. The invocation runs in the cloud after the grace period."""
    session_id = put_session("no-such-stack", status=naming.ACTIVE, ttl_in=3600)
    boto3.client("dynamodb").update_item(
        TableName=naming.SESSIONS_TABLE,
        Key={naming.A_SESSION_ID: {"S": session_id}},
        UpdateExpression="SET #c = :lost",
        ExpressionAttributeNames={"#c": naming.A_CONNECTION_ID},
        ExpressionAttributeValues={":lost": {"S": "a-connection-that-is-gone"}},
    )
    environment = {
        **debug_environment(aws, gateway, helper, session_id),
        naming.ENV_GRACE_SECONDS: "2",
    }
    with start_function(emulator, code, tmp_path / "container", environment) as container:
        started = time.monotonic()
        result = emulator.invoke('{"action": "echo"}', timeout_s=60, request_id="req-lost")
        waited = time.monotonic() - started
        logs = container.logs()
    assert result.status == SUCCESS and result.json["request_id"] == "req-lost"
    assert 2 <= waited < 30, waited
    assert "no debugger connected for 2 s (session ACTIVE, grace period 2 s) while waiting: " \
        "running app.handler in the cloud (pass-through)" in logs
