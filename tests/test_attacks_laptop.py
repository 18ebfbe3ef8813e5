"""Attacks on the developer's machine through its session's connection (docs/security.md,
"The laptop checks what it runs"), in the IAM-enforcing local cloud.

Developer A attaches the test stack with plldb. Developer B holds the shipped developer
policy narrowed to B's own stack (``another-stack-*``), as the README tells an
administrator. B reads A's connection id through the debugger role (any developer may), and
posts forged invocation messages to it with the rights the shim holds, from inside an
instrumented function's execution environment: code B deploys into a function B may change
runs with them there (from a laptop, the same credentials are refused:
tests/test_attacks_team.py). Each forged message is refused by A's plldb, which says why; nothing
reaches the host the message names, and nothing in the cloud changes.
"""

from __future__ import annotations

import json
import shutil
import time
import urllib.parse
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import botocore.config
import pytest

from plldb import naming
from tests import test_attacks
from tests.harness import developer_policy
from tests.harness.localcloud import TEST_STACK_DIR, LocalCloud, LocalCloudSettings
from tests.harness.localcloud_attach import ATTACHED_MARKER, PlldbProcess
from tests.harness.moto_server import MotoServer
from tests.harness.principals import Principal, assume_role, create_user
from tests.harness.recording_host import recording_host
from tests.test_attacks import _client, _state

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

# The local code of EchoFunction calls AWS: where its calls go shows whether a message redirected them.
ECHO_CALLING_AWS = '''import boto3

def handler(event, context):
    sts = boto3.client("sts")
    return {"endpoint": sts.meta.endpoint_url, "caller": sts.get_caller_identity()["Arn"]}
'''


admin = test_attacks.admin  # the harness's session, as a fixture here too


@pytest.fixture(scope="module")
def cloud() -> Iterator[LocalCloud]:
    with LocalCloud(LocalCloudSettings(max_containers=1)) as started:
        yield started


@pytest.fixture(scope="module")
def attacker_host() -> Iterator[tuple[str, list[str]]]:
    with recording_host() as host:
        yield host


@pytest.fixture(scope="module")
def developer_a(cloud: LocalCloud, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[PlldbProcess, str]]:
    """A's attach of the test stack (its local EchoFunction calls AWS), and its session id."""
    app = Path(shutil.copytree(TEST_STACK_DIR, tmp_path_factory.mktemp("a") / "app"))
    (app / "functions" / "echo" / "app.py").write_text(ECHO_CALLING_AWS)
    attach = PlldbProcess(["attach"], app, cloud.environment)
    try:
        session_id = attach.wait_for("opened for stack").split("session ", 1)[1].split()[0]
        attach.wait_for(ATTACHED_MARKER)
        yield attach, session_id
        assert attach.interrupt() == 0, attach.text()
    finally:
        attach.kill()


@pytest.fixture(scope="module")
def developer_b(cloud: LocalCloud, admin: boto3.Session) -> Principal:
    """B: the shipped policy narrowed to B's own stack, as the README says."""
    policy = developer_policy.narrowed(["another-stack-*"])
    return create_user(_client(cloud, admin, "iam"), "developer-b", policy)


def post_as_the_shim(cloud: LocalCloud, b: Principal, a_session: str, message: dict[str, Any]) -> None:
    """B finds A's connection (debugger role: any developer may) and posts ``message`` to it
    with the shim's rights (a function role holding PLLDBShimAccess while attached)."""
    debugger = assume_role(b, cloud.helper_outputs[naming.OUTPUT_DEBUGGER_ROLE], "developer-b")
    item = debugger.client("dynamodb").get_item(
        TableName=naming.SESSIONS_TABLE, Key={naming.A_SESSION_ID: {"S": a_session}})["Item"]
    connection_id = item[naming.A_CONNECTION_ID]["S"]
    function = boto3.client("lambda", endpoint_url=cloud.urls["moto"], **_keys(cloud.harness_environment))
    role = function.get_function_configuration(FunctionName=cloud.functions["EchoFunction"])["Role"]
    moto = MotoServer(port=urllib.parse.urlsplit(cloud.urls["moto"]).port)
    shim = moto.service_credentials(role, "b-function", 900)
    inside = moto.egress("arn:aws:lambda:us-east-1:123456789012:function:b-function")
    api = boto3.client("apigatewaymanagementapi", endpoint_url=cloud.urls["management"],
                       config=botocore.config.Config(proxies={"http": inside}), **_keys(shim))
    api.post_to_connection(ConnectionId=connection_id, Data=json.dumps(message).encode())


def _keys(env: dict[str, str]) -> dict[str, Any]:
    return {"aws_access_key_id": env["AWS_ACCESS_KEY_ID"], "aws_secret_access_key": env["AWS_SECRET_ACCESS_KEY"],
            "aws_session_token": env.get("AWS_SESSION_TOKEN"), "region_name": "us-east-1"}


def forged(cloud: LocalCloud, session_id: str, request_id: str, **fields: Any) -> dict[str, Any]:
    name = cloud.functions["EchoFunction"]
    message = {"type": "invocation", "request_id": request_id, "session_id": session_id, "function_name": name,
               "invoked_function_arn": f"arn:aws:lambda:us-east-1:123456789012:function:{name}",
               "deadline_ms": int(time.time() * 1000) + 60_000, "event": "{}", "environment": {}}
    return {**message, **fields}


def said(attach: PlldbProcess, text: str) -> str:
    """A's output, lines joined, once it holds ``text`` (bounded wait)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        joined = " ".join(attach.text().split())
        if text in joined:
            return joined
        time.sleep(0.1)
    raise AssertionError(f"plldb did not say {text!r}:\n{attach.text()}")


def attack(cloud: LocalCloud, admin: boto3.Session, a: tuple[PlldbProcess, str], b: Principal,
           message: dict[str, Any], marker: str) -> str:
    """B posts ``message`` to A's connection; A's output once it shows ``marker``. Nothing
    in the cloud (functions, roles, tables) changed."""
    before = _state(cloud, admin)
    post_as_the_shim(cloud, b, a[1], message)
    text = said(a[0], marker)
    assert _state(cloud, admin) == before
    return text


def test_an_invocation_for_another_session_is_not_run(
    cloud: LocalCloud, admin: boto3.Session, developer_a: tuple[PlldbProcess, str], developer_b: Principal
) -> None:
    other = str(uuid.uuid4())
    message = forged(cloud, other, "forged-session")
    text = attack(cloud, admin, developer_a, developer_b, message, "refused invocation forged-session")
    assert f"it is for session {other}, not this session {developer_a[1]}; not run and not answered" in text
    assert "EchoFunction forged-session" not in text  # no invocation line: it never ran


def test_a_payload_url_to_another_host_is_not_fetched(
    cloud: LocalCloud, admin: boto3.Session, developer_a: tuple[PlldbProcess, str], developer_b: Principal,
    attacker_host: tuple[str, list[str]],
) -> None:
    origin, seen = attacker_host
    key = naming.payload_key("AROAEXAMPLE:fn", developer_a[1], "forged-url", "event")
    bucket = cloud.helper_outputs[naming.OUTPUT_PAYLOAD_BUCKET]
    ref = {"bucket": bucket, "key": key, "size": 2, "url": f"{origin}/{bucket}/{key}"}
    message = forged(cloud, developer_a[1], "forged-url", event_ref=ref)
    del message["event"]
    text = attack(cloud, admin, developer_a, developer_b, message, "request forged-url: event_ref refused")
    assert f"{origin}/{bucket}/{key} is not object {key} of the helper stack's bucket {bucket}" in text
    assert seen == []


def test_an_endpoint_in_the_message_does_not_redirect_the_handlers_calls(
    cloud: LocalCloud, admin: boto3.Session, developer_a: tuple[PlldbProcess, str], developer_b: Principal,
    attacker_host: tuple[str, list[str]],
) -> None:
    origin, seen = attacker_host
    environment = {**developer_b.credentials, "AWS_ENDPOINT_URL": origin, "AWS_ENDPOINT_URL_STS": origin,
                   "HTTPS_PROXY": origin, "HTTP_PROXY": origin}
    message = forged(cloud, developer_a[1], "forged-env", environment=environment)
    # it runs (the session is A's): the question is where its AWS calls go
    text = attack(cloud, admin, developer_a, developer_b, message, "EchoFunction forged-env")
    assert ("its environment sets AWS_ENDPOINT_URL, AWS_ENDPOINT_URL_STS, HTTPS_PROXY, HTTP_PROXY; "
            "not used here") in text
    assert seen == []
