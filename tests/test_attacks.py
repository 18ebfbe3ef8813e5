"""Attacks on debugging sessions, each as a real IAM principal of the enforcing local cloud.

docs/security.md promises that nobody gets a function's traffic or credentials through plldb
unless it may change that function, and that nobody can take over, read or answer another's
session. Each test attempts one attack and checks that nothing of the victim changed:
function configurations and tags, roles' policies, the sessions and request tables.

Principals:
- the developer: ``plldb-developer`` with docs/iam/plldb-developer-policy.json narrowed to
  the test stack as the README says (the local cloud's own user);
- the attacker: read-only Lambda and CloudFormation access, plus what any account principal
  may do: assume the debugger role;
- a developer of another stack: the documented policy narrowed to
  ``function:another-stack-*``.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import boto3
import botocore.exceptions
import pytest
from websockets.exceptions import InvalidStatus

from plldb import naming, protocol
from tests.harness import developer_policy
from tests.harness.gateway_setup import is_spent_proof, put_pending_request
from tests.harness.iam_audit import expect_refusal
from tests.harness.identity_proof import connect_session
from tests.harness.localcloud import (
    DEVELOPER_USER,
    TEST_STACK_DIR,
    TEST_STACK_NAME,
    LocalCloud,
    LocalCloudSettings,
)
from tests.harness.localcloud_attach import ATTACHED_MARKER, PlldbProcess
from tests.harness.principals import Principal, assume_role, create_user

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

DEBUGGER_ROLE = "*:role/PLLDBDebuggerRole-*"  # as the call audit names its principal

READ_ONLY = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Effect": "Allow",
            "Action": [
                "lambda:Get*",
                "lambda:List*",
                "cloudformation:Describe*",
                "cloudformation:List*",
            ],
            "Resource": "*",
        }
    ],
}


@pytest.fixture(scope="module")
def cloud() -> Iterator[LocalCloud]:
    with LocalCloud(LocalCloudSettings(max_containers=1)) as started:
        yield started


@pytest.fixture(scope="module")
def admin(cloud: LocalCloud) -> boto3.Session:
    return cloud.administrator()


def _client(cloud: LocalCloud, session: boto3.Session, service: str) -> Any:
    return session.client(service, endpoint_url=cloud.urls["moto"])


@pytest.fixture(scope="module")
def attacker(cloud: LocalCloud, admin: boto3.Session) -> Principal:
    debugger_role = cloud.helper_outputs[naming.OUTPUT_DEBUGGER_ROLE]
    return create_user(_client(cloud, admin, "iam"), "attacker", READ_ONLY, [debugger_role])


@pytest.fixture(scope="module")
def attacker_as_debugger(cloud: LocalCloud, attacker: Principal) -> Principal:
    """The attacker after assuming the debugger role, as any account principal may."""
    return assume_role(attacker, cloud.helper_outputs[naming.OUTPUT_DEBUGGER_ROLE], "attacker")


def _state(cloud: LocalCloud, admin: boto3.Session) -> dict[str, Any]:
    """Everything an attack could change: functions, their tags and roles, both tables."""
    lam, iam = _client(cloud, admin, "lambda"), _client(cloud, admin, "iam")
    dynamodb = _client(cloud, admin, "dynamodb")
    functions = {}
    for name in sorted(cloud.functions.values()):
        config = lam.get_function_configuration(FunctionName=name)
        role = config["Role"].rsplit("/", 1)[1]
        functions[name] = {
            "environment": config.get("Environment", {}).get("Variables", {}),
            "layers": [layer["Arn"] for layer in config.get("Layers", [])],
            "timeout": config["Timeout"],
            "tags": lam.list_tags(Resource=config["FunctionArn"]).get("Tags", {}),
            "role policies": iam.list_attached_role_policies(RoleName=role)["AttachedPolicies"],
            "inline policies": iam.list_role_policies(RoleName=role)["PolicyNames"],
        }
    tables = {
        table: sorted(
            json.dumps(item, sort_keys=True)
            for item in dynamodb.scan(TableName=table)["Items"] if not is_spent_proof(item)
        )
        for table in (naming.SESSIONS_TABLE, naming.DEBUGGER_TABLE)
    }
    return {"functions": functions, "tables": tables}


def _environment(cloud: LocalCloud, principal: Principal) -> dict[str, str]:
    """plldb's environment in the local cloud, with ``principal``'s credentials."""
    env = {k: v for k, v in cloud.environment.items() if k != "AWS_SESSION_TOKEN"}
    return {**env, **principal.credentials}


def _refused(call: Any) -> str:
    with pytest.raises(botocore.exceptions.ClientError) as caught:
        call()
    return caught.value.response["Error"]["Code"]


def _run_attach(cloud: LocalCloud, principal: Principal) -> tuple[int, str]:
    attach = PlldbProcess(["attach"], TEST_STACK_DIR, _environment(cloud, principal))
    try:
        return attach.wait(120), attach.text()
    finally:
        attach.kill()


def test_attacker_cannot_instrument_a_stack(
    cloud: LocalCloud, admin: boto3.Session, attacker: Principal
) -> None:
    """``plldb attach`` as the attacker stops at the claim, and nothing changes."""
    before = _state(cloud, admin)
    code, text = _run_attach(cloud, attacker)
    assert code == 1, text
    assert f"{attacker.arn} may not change" in text and "lambda:TagResource" in text, text
    assert _state(cloud, admin) == before


def test_a_copied_claim_does_not_let_the_attacker_in(
    cloud: LocalCloud, admin: boto3.Session, attacker: Principal
) -> None:
    """The attacker bypasses plldb: it copies a developer's claim tag value and opens a
    session with that session id itself. The manager instruments nothing."""
    session_id = str(uuid.uuid4())
    developer_arn = _client(cloud, admin, "iam").get_user(UserName=DEVELOPER_USER)["User"]["Arn"]
    claim = naming.claim_value(developer_arn, session_id)
    lam = _client(cloud, admin, "lambda")
    for name in cloud.functions.values():  # as if the developer had claimed them
        arn = lam.get_function_configuration(FunctionName=name)["FunctionArn"]
        lam.tag_resource(Resource=arn, Tags={naming.CLAIM_TAG: claim})
    before = _state(cloud, admin)["functions"]
    query = {naming.Q_STACK_NAME: TEST_STACK_NAME}
    with connect_session(cloud.urls["websocket"], session_id, attacker.session(), query) as ws:
        messages = _until_done(ws)
    summary = messages[-1]["summary"]
    assert summary["instrumented"] == [], messages
    assert all("not claimed" in entry["reason"] for entry in summary["skipped"]), summary
    assert _state(cloud, admin)["functions"] == before
    for name in cloud.functions.values():
        arn = lam.get_function_configuration(FunctionName=name)["FunctionArn"]
        lam.untag_resource(Resource=arn, TagKeys=[naming.CLAIM_TAG])
    # the attacker's session (now disconnected) would hold the stack for the next tests
    _client(cloud, admin, "dynamodb").update_item(
        TableName=naming.SESSIONS_TABLE,
        Key={naming.A_SESSION_ID: {"S": session_id}},
        UpdateExpression="SET #s = :closed",
        ExpressionAttributeNames={"#s": naming.A_STATUS},
        ExpressionAttributeValues={":closed": {"S": naming.CLOSED}},
    )


def _until_done(ws: Any) -> list[dict[str, Any]]:
    """Progress messages until the manager's final one."""
    messages = []
    for _ in range(200):
        message = protocol.parse_server_message(ws.recv(timeout=60))
        messages.append(message)
        if message.get("done"):
            return messages
    raise AssertionError(f"no final message: {messages}")


@pytest.fixture
def developer_attached(cloud: LocalCloud) -> Iterator[str]:
    """The developer's live session (its id), attached with plldb as a user would."""
    attach = PlldbProcess(["attach"], TEST_STACK_DIR, cloud.environment)
    try:
        session_id = attach.wait_for("opened for stack").split("session ", 1)[1].split()[0]
        attach.wait_for(ATTACHED_MARKER)
        yield session_id
        assert attach.interrupt() == 0, attach.text()
    finally:
        attach.kill()


def test_attacker_cannot_join_or_resume_another_session(
    cloud: LocalCloud,
    admin: boto3.Session,
    attacker: Principal,
    attacker_as_debugger: Principal,
    developer_attached: str,
) -> None:
    session_id = developer_attached
    before = _state(cloud, admin)
    with pytest.raises(InvalidStatus) as refused:
        connect_session(cloud.urls["websocket"], session_id, attacker.session())
    assert refused.value.response.status_code == 403
    expect_refusal("dynamodb:*Item", DEBUGGER_ROLE, why="the attacker writes a session")
    sessions = attacker_as_debugger.client("dynamodb")
    key = {naming.A_SESSION_ID: {"S": session_id}}
    assert _refused(
        lambda: sessions.update_item(
            TableName=naming.SESSIONS_TABLE,
            Key=key,
            UpdateExpression="SET #s = :p",
            ExpressionAttributeNames={"#s": naming.A_STATUS},
            ExpressionAttributeValues={":p": {"S": naming.PENDING}},
        )
    ) == "AccessDeniedException"
    assert _refused(
        lambda: sessions.put_item(
            TableName=naming.SESSIONS_TABLE,
            Item={**key, naming.A_CREATED_BY: {"S": attacker.arn}},
        )
    ) == "AccessDeniedException"
    assert _state(cloud, admin) == before


def test_attacker_cannot_answer_another_session(
    cloud: LocalCloud,
    admin: boto3.Session,
    attacker: Principal,
    attacker_as_debugger: Principal,
    developer_attached: str,
) -> None:
    session_id = developer_attached
    request_id = put_pending_request(session_id, _client(cloud, admin, "dynamodb"))
    before = _state(cloud, admin)
    # 1. through the helper stack, from a session of its own
    own = str(uuid.uuid4())
    query = {naming.Q_STACK_NAME: "attacker-stack"}
    with connect_session(cloud.urls["websocket"], own, attacker.session(), query) as ws:
        _until_done(ws)
        ws.send(protocol.encode(protocol.response_message(request_id, '"forged"')))
        reply = protocol.parse_server_message(ws.recv(timeout=30))
    assert reply["type"] == protocol.TYPE_REJECTED
    assert f"request {request_id} is not a pending request of this session" in reply["reason"]
    # 2. writing the request item directly, with the debugger role
    expect_refusal("dynamodb:UpdateItem", DEBUGGER_ROLE, why="the attacker answers directly")
    requests = attacker_as_debugger.client("dynamodb")
    assert _refused(
        lambda: requests.update_item(
            TableName=naming.DEBUGGER_TABLE,
            Key={naming.A_REQUEST_ID: {"S": request_id}},
            UpdateExpression="SET #s = :r",
            ExpressionAttributeNames={"#s": naming.A_STATUS},
            ExpressionAttributeValues={":r": {"S": naming.REQUEST_RESPONDED}},
        )
    ) == "AccessDeniedException"
    # 3. posting to the developer's connection (its id is readable in the sessions table)
    item = requests.get_item(
        TableName=naming.SESSIONS_TABLE, Key={naming.A_SESSION_ID: {"S": session_id}}
    )["Item"]
    connection_id = item[naming.A_CONNECTION_ID]["S"]
    for principal in (attacker, attacker_as_debugger):
        api = principal.session().client(
            "apigatewaymanagementapi", endpoint_url=cloud.urls["management"]
        )
        assert _refused(
            lambda api=api: api.post_to_connection(ConnectionId=connection_id, Data=b"{}")
        ) in ("AccessDeniedException", "ForbiddenException")
    after = _state(cloud, admin)
    own_items = [i for i in after["tables"][naming.SESSIONS_TABLE] if own in i]
    after["tables"][naming.SESSIONS_TABLE] = [
        i for i in after["tables"][naming.SESSIONS_TABLE] if own not in i
    ]
    own_sessions = [i for i in own_items if f'"Kind": {{"S": "{naming.KIND_SESSION}"}}' in i]
    assert len(own_sessions) == 1  # the attacker's own session, on a stack that does not exist
    # (and the lock of that stack, naming it)
    assert after == before


def test_developer_cannot_claim_another_stack(cloud: LocalCloud, admin: boto3.Session) -> None:
    """A developer allowed to change another stack's functions only (by name) is refused."""
    policy = developer_policy.narrowed(["another-stack-*"])  # as the README says
    other = create_user(_client(cloud, admin, "iam"), "another-stacks-developer", policy)
    expect_refusal("lambda:TagResource", "*:user/another-stacks-developer",
                   why="a developer of another stack tries to claim this one")
    before = _state(cloud, admin)
    code, text = _run_attach(cloud, other)
    assert code == 1, text
    assert f"{other.arn} may not change" in text, text
    assert _state(cloud, admin) == before
