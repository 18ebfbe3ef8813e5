"""The gateway emulator: API Gateway WebSocket semantics around the real helper handlers."""

from __future__ import annotations

import base64
import json
import os
import random
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
import urllib.parse
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import boto3
import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import ClientConnection, connect

from plldb import limits, naming, protocol
from plldb.local import binding
from tests.harness import gateway_environ
from tests.harness.gateway import Gateway
from tests.harness.gateway_setup import get_session, put_session, scan, wait_until
from tests.harness.identity_proof import proof_headers
from tests.harness.moto_server import MotoServer

pytest_plugins = ["tests.harness.gateway_fixtures"]

# A bound that only stops a hung test: an upgrade or a reply takes well under a second on an
# idle machine, but it runs helper handlers that call the local cloud, which a loaded machine
# slows many times over.
WAIT_S = 60


def _url(gateway: Gateway, session_id: str) -> str:
    return f"{gateway.websocket_url}?sessionId={session_id}"


def _connect(gateway: Gateway, session_id: str) -> ClientConnection:
    """Connect as ``plldb attach`` does: the session, and a proof of who is calling."""
    return connect(
        _url(gateway, session_id), open_timeout=WAIT_S, additional_headers=proof_headers(session_id)
    )


def _refusal(gateway: Gateway, query: str, session_id: str | None = None) -> int:
    """The status of a refused connect, with a proof for ``session_id`` (or none)."""
    headers = proof_headers(session_id) if session_id else {}
    with pytest.raises(InvalidStatus) as refused:
        connect(f"{gateway.websocket_url}{query}", open_timeout=WAIT_S, additional_headers=headers)
    return refused.value.response.status_code


def test_valid_session_connects_and_the_creator_only_resumes_it(gateway: Gateway) -> None:
    session_id = put_session("no-such-stack")
    with _connect(gateway, session_id) as ws:
        item = get_session(session_id)
        assert item[naming.A_STATUS]["S"] == naming.ACTIVE
        connection_id = item[naming.A_CONNECTION_ID]["S"]
        assert connection_id in gateway.connections
        # the manager reports the missing stack on the connection
        message = protocol.parse_server_message(ws.recv(timeout=WAIT_S))
        assert message["type"] == protocol.TYPE_PROGRESS
        assert message["status"] == "failed" and "no-such-stack" in message["message"]
        assert _refusal(gateway, f"?sessionId={session_id}") == 401  # no identity proof
    stranger = put_session("s", created_by="arn:aws:iam::123456789012:user/somebody")
    assert _refusal(gateway, f"?sessionId={stranger}", stranger) == 403


def test_every_other_session_id_is_refused_and_changes_nothing(gateway: Gateway) -> None:
    expired = put_session("s", ttl_in=-1)
    closed = put_session("s", status=naming.CLOSED)
    before = scan(naming.SESSIONS_TABLE)
    for session_id in (expired, closed, str(uuid.uuid4())):  # a new id needs a stackName
        assert _refusal(gateway, f"?sessionId={session_id}", session_id) == 403, session_id
    for query in ("?sessionId=garbage", "?sessionId=%27%20OR%201%3D1"):
        assert _refusal(gateway, query, str(uuid.uuid4())) == 403, query
    assert _refusal(gateway, "", expired) == 401  # identity source missing: no authorizer call
    assert _refusal(gateway, "?sessionId=", expired) == 401
    with pytest.raises(InvalidStatus) as wrong_stage:
        connect(
            gateway.websocket_url.replace("/prod", "/dev") + f"?sessionId={expired}",
            open_timeout=WAIT_S,
            additional_headers=proof_headers(expired),
        )
    assert wrong_stage.value.response.status_code == 403
    assert scan(naming.SESSIONS_TABLE) == before
    assert gateway.connections == {}


def _open(gateway: Gateway) -> tuple[str, ClientConnection]:
    """A connected client whose session's stack does not exist (the manager says so)."""
    session_id = put_session("no-such-stack")
    ws = _connect(gateway, session_id)
    assert protocol.parse_server_message(ws.recv(timeout=WAIT_S))["status"] == "failed"
    return session_id, ws


def test_events_have_the_shape_api_gateway_sends(gateway: Gateway) -> None:
    session_id, ws = _open(gateway)
    with ws:
        ws.send('{"action":"ping"}')
        assert json.loads(ws.recv(timeout=WAIT_S)) == {"type": "pong"}
    gateway.wait_for_invocations()
    authorizer = gateway.invocations_of("plldb-authorizer")[0].event
    assert authorizer["type"] == "REQUEST"
    assert authorizer["methodArn"] == (
        f"arn:aws:execute-api:us-east-1:123456789012:{gateway.settings.api_id}/prod/$connect"
    )
    assert authorizer["queryStringParameters"] == {"sessionId": session_id}
    assert authorizer["headers"][naming.IDENTITY_HEADER]
    context = authorizer["requestContext"]
    assert (context["routeKey"], context["eventType"], context["stage"]) == (
        "$connect",
        "CONNECT",
        "prod",
    )
    assert {"connectionId", "requestTimeEpoch", "domainName", "apiId", "identity"} <= set(context)
    message = gateway.invocations_of("plldb-default")[0].event
    assert message["requestContext"]["eventType"] == "MESSAGE"
    assert message["requestContext"]["authorizer"]["sessionId"] == session_id
    assert message["requestContext"]["authorizer"]["stackName"] == "no-such-stack"
    assert message["body"] == '{"action":"ping"}' and message["isBase64Encoded"] is False
    disconnects = wait_until(lambda: gateway.invocations_of("plldb-disconnect"))
    disconnect = disconnects[0].event["requestContext"]
    assert (disconnect["eventType"], disconnect["disconnectStatusCode"]) == ("DISCONNECT", 1000)
    assert disconnect["connectionId"] == context["connectionId"]


def test_management_api_through_boto3(gateway: Gateway) -> None:
    session_id, ws = _open(gateway)
    api = boto3.client("apigatewaymanagementapi", endpoint_url=gateway.management_url)
    connection_id = get_session(session_id)[naming.A_CONNECTION_ID]["S"]
    with ws:
        api.post_to_connection(ConnectionId=connection_id, Data=b'{"type":"pong"}')
        assert ws.recv(timeout=WAIT_S) == '{"type":"pong"}'
        big = protocol.encode({"type": "log", "level": "INFO", "message": "é" * 50_000})
        api.post_to_connection(ConnectionId=connection_id, Data=big.encode())
        assert ws.recv(timeout=WAIT_S) == big  # 100 KB, sent as 32 KB frames
        with pytest.raises(api.exceptions.PayloadTooLargeException):
            api.post_to_connection(
                ConnectionId=connection_id, Data=b"x" * (limits.MESSAGE_LIMIT + 1)
            )
        assert "ConnectedAt" in api.get_connection(ConnectionId=connection_id)
        api.delete_connection(ConnectionId=connection_id)
        with pytest.raises(ConnectionClosed):
            ws.recv(timeout=WAIT_S)
    with pytest.raises(api.exceptions.GoneException):
        api.post_to_connection(ConnectionId=connection_id, Data=b"{}")
    with pytest.raises(api.exceptions.GoneException):
        api.get_connection(ConnectionId="unknown=")
    wait_until(lambda: get_session(session_id)[naming.A_STATUS]["S"] != naming.ACTIVE)


def test_frame_over_32_kb_closes_with_1009(gateway: Gateway) -> None:
    _, ws = _open(gateway)
    with ws:
        ws.send(protocol.encode({"action": "ping", "pad": "x" * limits.FRAME_LIMIT}))
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=WAIT_S)
    assert closed.value.rcvd.code == 1009


def test_fragmented_message_up_to_128_kb_passes_and_beyond_closes(gateway: Gateway) -> None:
    _, ws = _open(gateway)
    with ws:
        fits = protocol.encode({"action": "ping", "pad": "x" * 100_000})
        ws.send(protocol.fragments(fits))
        assert json.loads(ws.recv(timeout=WAIT_S)) == {"type": "pong"}
        beyond = protocol.encode({"action": "ping", "pad": "x" * limits.MESSAGE_LIMIT})
        with pytest.raises(ConnectionClosed) as closed:
            # the gateway closes once the fragments pass 128 KB: while we still send, or after
            ws.send(protocol.fragments(beyond))
            ws.recv(timeout=WAIT_S)
    assert closed.value.rcvd.code == 1009
    assert len(gateway.invocations_of("plldb-default")) == 1  # only the message that fits


def test_idle_timeout_closes_and_runs_disconnect(make_gateway: Any) -> None:
    gateway = make_gateway(idle_timeout=0.5)
    session_id = put_session("no-such-stack")
    ws = _connect(gateway, session_id)
    with ws, pytest.raises(ConnectionClosed) as closed:
        for _ in range(5):
            ws.recv(timeout=WAIT_S)  # the manager's report may come first: it is not activity
    assert closed.value.rcvd.code == 1001
    wait_until(lambda: get_session(session_id)[naming.A_STATUS]["S"] == naming.CLOSED)


def test_connection_lifetime_is_enforced_even_when_busy(make_gateway: Any) -> None:
    gateway = make_gateway(max_lifetime=1.5)
    started = time.monotonic()  # before the upgrade: the lifetime starts after it
    ws = _connect(gateway, put_session("no-such-stack"))
    opened = time.monotonic()  # after the upgrade, which a loaded machine makes slow
    with ws, pytest.raises(ConnectionClosed) as closed:
        while time.monotonic() - opened < WAIT_S:
            ws.send('{"action":"ping"}')
            ws.recv(timeout=WAIT_S)  # a pong (or the manager's report)
    closed_at = time.monotonic()
    assert closed.value.rcvd.code == 1001
    assert closed_at - started >= 1.5
    assert closed_at - opened < 8


def _close_one(gateway: Gateway) -> bool:
    """Open and close one connection; whether its $disconnect was dropped."""
    ws = _connect(gateway, put_session("no-such-stack"))
    with ws:
        wait_until(lambda: len(gateway.connections) == 1)
        (connection_id,) = gateway.connections
    handled = lambda: [  # noqa: E731
        i
        for i in gateway.invocations_of("plldb-disconnect")
        if i.event["requestContext"]["connectionId"] == connection_id
    ]
    wait_until(lambda: connection_id in gateway.dropped_disconnects or handled())
    return connection_id in gateway.dropped_disconnects


def test_every_disconnect_can_be_dropped(make_gateway: Any) -> None:
    gateway = make_gateway(drop_disconnect=1.0)
    session_id = put_session("no-such-stack")
    ws = _connect(gateway, session_id)
    with ws:
        wait_until(lambda: len(gateway.connections) == 1)
    wait_until(lambda: len(gateway.dropped_disconnects) == 1)
    assert gateway.invocations_of("plldb-disconnect") == []
    assert get_session(session_id)[naming.A_STATUS]["S"] != naming.CLOSED  # lingers


def test_disconnects_are_dropped_at_random_as_the_seed_says(make_gateway: Any) -> None:
    gateway = make_gateway(drop_disconnect=0.5, drop_seed=7)
    draws = random.Random(7)
    expected = [draws.random() < 0.5 for _ in range(6)]
    assert True in expected and False in expected  # the seed exercises both
    assert [_close_one(gateway) for _ in expected] == expected


def test_lambda_endpoint_runs_helpers_and_forwards_the_rest(gateway: Gateway) -> None:
    lambda_client = boto3.client("lambda")  # AWS_ENDPOINT_URL_LAMBDA: the emulator
    assert lambda_client.meta.endpoint_url == gateway.lambda_url
    result = lambda_client.invoke(FunctionName="plldb-manager", Payload=b'{"action":"nope"}')
    assert json.loads(result["Payload"].read()) == {
        "error": "manager request without a known action"
    }
    arn = "arn:aws:lambda:us-east-1:123456789012:function:plldb-manager:$LATEST"
    queued = lambda_client.invoke(FunctionName=arn, InvocationType="Event", Payload=b"{}")
    assert queued["StatusCode"] == 202
    assert lambda_client.list_functions()["Functions"] == []  # forwarded to moto
    # moto (without Docker) echoes the payload of any function it is asked to invoke
    forwarded = lambda_client.invoke(FunctionName="someone-else", Payload=b'{"x":1}')
    assert json.loads(forwarded["Payload"].read()) == {"x": 1}
    assert {i.function for i in gateway.invocations} == {"plldb-manager"}
    layers = lambda_client.list_layer_versions(LayerName=naming.LAYER_NAME)["LayerVersions"]
    assert [layer["LayerVersionArn"] for layer in layers] == [gateway.settings.layer_arn]


def test_standalone_process(aws: MotoServer, tmp_path: Path) -> None:
    log_path = tmp_path / "gateway.log"
    with log_path.open("w") as log_file:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.harness.gateway",
                "--moto-url",
                aws.url,
                "--provision",
                "--grace-seconds",
                "0",
            ],
            cwd=Path(__file__).resolve().parent.parent,
            stdout=subprocess.PIPE,
            stderr=log_file,
            text=True,
        )
    try:
        announced = json.loads(process.stdout.readline())
        assert announced["environment"]["AWS_ENDPOINT_URL_LAMBDA"] == announced["lambda_url"]
        session_id = put_session("no-such-stack")
        with connect(
            f"{announced['websocket_url']}?sessionId={session_id}",
            open_timeout=WAIT_S,  # the proof is addressed to that gateway's management URL
            additional_headers=proof_headers(session_id, audience=announced["management_url"]),
        ) as ws:
            assert protocol.parse_server_message(ws.recv(timeout=WAIT_S))["status"] == "failed"
        assert get_session(session_id)[naming.A_STATUS]["S"] != naming.PENDING
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            # The gateway bounds its whole stop at 5 s; the rest is slack for a loaded machine.
            code = process.wait(60)
        except subprocess.TimeoutExpired:
            process.kill()
            raise AssertionError(
                "gateway ignored SIGTERM:\n" + log_path.read_text()[-3000:]
            ) from None
    assert code == 0, log_path.read_text()[-3000:]


def test_each_invocation_thread_sees_its_own_credentials() -> None:
    """The overlay gives a helper's thread (and threads it starts) its role's variables."""
    gateway_environ.install()
    seen: dict[str, str | None] = {}
    before = os.environ.get("AWS_ACCESS_KEY_ID")

    def child(name: str) -> None:
        seen[name] = os.environ.get("AWS_ACCESS_KEY_ID")

    def invocation(key: str) -> None:
        with gateway_environ.overlay({"AWS_ACCESS_KEY_ID": key}):
            seen[key] = os.environ["AWS_ACCESS_KEY_ID"]
            assert dict(os.environ)["AWS_ACCESS_KEY_ID"] == key  # botocore copies it too
            with ThreadPoolExecutor(max_workers=1) as pool:  # as the manager fans out
                pool.submit(child, f"{key}-worker").result()
        seen[f"{key}-after"] = os.environ.get("AWS_ACCESS_KEY_ID")

    threads = [threading.Thread(target=invocation, args=(key,)) for key in ("AKIA1", "AKIA2")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert seen == {
        "AKIA1": "AKIA1",
        "AKIA1-worker": "AKIA1",
        "AKIA1-after": before,
        "AKIA2": "AKIA2",
        "AKIA2-worker": "AKIA2",
        "AKIA2-after": before,
    }
    assert os.environ.get("AWS_ACCESS_KEY_ID") == before  # other threads never see them


def test_the_overlay_keeps_the_executors_per_thread_environment() -> None:
    """In one test process the executor's os.environ (plldb.local.binding) may come first: a thread
    bound to a function still sees and writes that function's environment through the
    overlay, and unbound threads the process environment."""
    binding.install()
    gateway_environ.install()
    seen: dict[str, str | None] = {}
    env = {"CURRENCY": "EUR"}

    def function_thread() -> None:
        with binding.bound(env, None):
            seen["read"] = os.environ.get("CURRENCY")
            os.environ["WRITTEN"] = "by the function"

    thread = threading.Thread(target=function_thread)
    thread.start()
    thread.join(10)
    assert seen == {"read": "EUR"}
    assert env["WRITTEN"] == "by the function"
    assert "WRITTEN" not in os.environ and os.environ.get("CURRENCY") != "EUR"


def test_a_client_gone_during_the_upgrade_still_gets_its_disconnect(gateway: Gateway) -> None:
    """``$connect`` succeeded, then the client died before reading the 101 (a kill -9 in the
    middle of ``plldb attach``): the session must not stay ACTIVE on a connection nobody
    serves, or nothing restores its functions until the sweep."""
    session_id = put_session("no-such-stack")
    url = urllib.parse.urlsplit(gateway.websocket_url)
    request = (
        f"GET {url.path}?sessionId={session_id} HTTP/1.1\r\n"
        f"Host: {url.netloc}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {base64.b64encode(os.urandom(16)).decode()}\r\n"
        "Sec-WebSocket-Version: 13\r\n"
        + "".join(f"{name}: {value}\r\n" for name, value in proof_headers(session_id).items())
        + "\r\n"
    )
    with socket.create_connection((url.hostname, url.port), timeout=WAIT_S) as raw:
        raw.sendall(request.encode())
        wait_until(lambda: gateway.invocations_of("plldb-connect"), timeout=WAIT_S)
        raw.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # RST
    wait_until(lambda: get_session(session_id)[naming.A_STATUS]["S"] == naming.DISCONNECTED,
               timeout=WAIT_S)
