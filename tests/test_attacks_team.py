"""A colleague attacks a developer's live session with what their own session handed out.

docs/security.md, "Team-safe": developer A is attached to a stack; colleague B, in the same
account, has attached a stack of their own and so holds everything it received, above all
their function's execution-role credentials (every invocation message carries them, and
while attached that role holds PLLDBShimAccess). B uses them from the laptop, where AWS adds
no ``lambda:SourceFunctionArn`` (tests/harness/execution_egress.py models it), against A's
session: a forged request for A's session, a post to A's connection, an answer to A's
pending request, A's payload objects. Each is refused and nothing of A's changed. The same
credentials inside B's function's execution environment still work (the control: the
refusals come from where the call is made, not from the credentials).
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from typing import Any

import boto3
import botocore.config
import botocore.exceptions
import pytest

from plldb import naming, protocol
from tests.harness.gateway_setup import is_spent_proof, wait_until
from tests.harness.localcloud import TEST_STACK_DIR, LocalCloud, LocalCloudSettings
from tests.harness.localcloud_attach import ATTACHED_MARKER, PlldbProcess
from tests.harness.moto_server import LAMBDA, REGION, MotoServer
from tests.harness.principals import Principal, create_user

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

COLLEAGUE_FUNCTION = "colleague-stack-Worker"
COLLEAGUE_ROLE = "colleague-stack-WorkerRole"
LAMBDA_TRUST = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Principal": {"Service": LAMBDA}, "Action": "sts:AssumeRole"}],
}


@pytest.fixture(scope="module")
def cloud() -> Iterator[LocalCloud]:
    with LocalCloud(LocalCloudSettings(max_containers=1)) as started:
        yield started


@pytest.fixture(scope="module")
def admin(cloud: LocalCloud) -> boto3.Session:
    return cloud.administrator()


@pytest.fixture(scope="module")
def colleague(cloud: LocalCloud, admin: boto3.Session) -> Principal:
    """B's function's credentials as B's invocation messages carry them: its execution
    role, holding the shim policy the manager attached when B attached their stack."""
    iam = admin.client("iam", endpoint_url=cloud.urls["moto"])
    role_arn = iam.create_role(
        RoleName=COLLEAGUE_ROLE, AssumeRolePolicyDocument=json.dumps(LAMBDA_TRUST)
    )["Role"]["Arn"]
    shim_policy = next(
        p["Arn"] for p in iam.list_policies(Scope="Local")["Policies"]
        if p["PolicyName"].startswith(naming.SHIM_POLICY_NAME)
    )
    iam.attach_role_policy(RoleName=COLLEAGUE_ROLE, PolicyArn=shim_policy)
    issued = _moto(cloud).service_credentials(role_arn, COLLEAGUE_FUNCTION, 3600)
    issued.pop("Expiration")
    return Principal(role_arn, {**issued, "AWS_REGION": REGION}, cloud.urls["moto"])


@pytest.fixture
def victim(cloud: LocalCloud) -> Iterator[tuple[str, PlldbProcess]]:
    """Developer A's live session (its id) and A's plldb, attached as a user would."""
    attach = PlldbProcess(["attach"], TEST_STACK_DIR, cloud.environment)
    try:
        session_id = attach.wait_for("opened for stack").split("session ", 1)[1].split()[0]
        attach.wait_for(ATTACHED_MARKER)
        yield session_id, attach
        assert attach.interrupt() == 0, attach.text()
    finally:
        attach.kill()


def _moto(cloud: LocalCloud) -> MotoServer:
    return MotoServer(port=int(cloud.urls["moto"].rsplit(":", 1)[1]))


def _inside(cloud: LocalCloud, principal: Principal, service: str, **kwargs: Any) -> Any:
    """A client that reaches AWS from inside B's function's execution environment."""
    proxy = _moto(cloud).egress(f"arn:aws:lambda:{REGION}:123456789012:function:{COLLEAGUE_FUNCTION}")
    config = botocore.config.Config(proxies={"http": proxy})
    return principal.session().client(service, config=config, **kwargs)


def _refused(call: Any) -> str:
    with pytest.raises(botocore.exceptions.ClientError) as caught:
        call()
    return caught.value.response["Error"]["Code"]


def _tables(admin: boto3.Session, cloud: LocalCloud) -> dict[str, list[str]]:
    dynamodb = admin.client("dynamodb", endpoint_url=cloud.urls["moto"])
    return {
        table: sorted(json.dumps(i, sort_keys=True)
                      for i in dynamodb.scan(TableName=table)["Items"] if not is_spent_proof(i))
        for table in (naming.SESSIONS_TABLE, naming.DEBUGGER_TABLE)
    }


def test_a_colleague_cannot_reach_another_session_with_their_function_credentials(
    cloud: LocalCloud, admin: boto3.Session, colleague: Principal,
    victim: tuple[str, PlldbProcess],
) -> None:
    session_id, attach = victim
    harness = admin.client("dynamodb", endpoint_url=cloud.urls["moto"])
    session = harness.get_item(
        TableName=naming.SESSIONS_TABLE, Key={naming.A_SESSION_ID: {"S": session_id}}
    )["Item"]  # ids any account principal reads through the debugger role
    connection_id = session[naming.A_CONNECTION_ID]["S"]
    # the control: inside B's execution environment, the shim's rights work
    inside = _inside(cloud, colleague, "dynamodb")
    assert inside.get_item(
        TableName=naming.SESSIONS_TABLE, Key={naming.A_SESSION_ID: {"S": session_id}}
    )["Item"][naming.A_CONNECTION_ID]["S"] == connection_id
    before = _tables(admin, cloud)
    forged_id = f"forged-{uuid.uuid4()}"
    dynamodb = colleague.client("dynamodb")
    # 1. a PENDING request for A's session, 2. an answer to it, 3. reading A's session
    assert _refused(lambda: dynamodb.put_item(TableName=naming.DEBUGGER_TABLE, Item={
        naming.A_REQUEST_ID: {"S": forged_id},
        naming.A_SESSION_ID: {"S": session_id},
        naming.A_STATUS: {"S": naming.REQUEST_PENDING},
    })) == "AccessDeniedException"
    assert _refused(lambda: dynamodb.update_item(
        TableName=naming.DEBUGGER_TABLE, Key={naming.A_REQUEST_ID: {"S": forged_id}},
        UpdateExpression="SET #s = :r", ExpressionAttributeNames={"#s": naming.A_STATUS},
        ExpressionAttributeValues={":r": {"S": naming.REQUEST_RESPONDED}},
    )) == "AccessDeniedException"
    assert _refused(lambda: dynamodb.get_item(
        TableName=naming.SESSIONS_TABLE, Key={naming.A_SESSION_ID: {"S": session_id}}
    )) == "AccessDeniedException"
    # 4. a forged invocation posted to A's connection
    api = colleague.session().client("apigatewaymanagementapi", endpoint_url=cloud.urls["management"])
    forged = {"type": protocol.TYPE_INVOCATION, "request_id": forged_id, "session_id": session_id,
              "function_name": "x", "invoked_function_arn": "x", "deadline_ms": 0,
              "environment": {}, "event": "{}"}
    assert _refused(lambda: api.post_to_connection(
        ConnectionId=connection_id, Data=protocol.encode(forged).encode()
    )) in ("AccessDeniedException", "ForbiddenException")
    # 5. A's payload objects, through a URL B presigns with the same credentials
    bucket = cloud.helper_outputs[naming.OUTPUT_PAYLOAD_BUCKET]
    victim_key = naming.payload_key("AROAVICTIMROLE:victim-fn", session_id, "req-1", "event")
    admin.client("s3", endpoint_url=cloud.urls["moto"]).put_object(
        Bucket=bucket, Key=victim_key, Body=b'{"secret": 1}')
    s3 = colleague.session().client("s3", config=botocore.config.Config(signature_version="s3v4"))
    url = s3.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": victim_key})
    with pytest.raises(urllib.error.HTTPError) as denied:
        urllib.request.urlopen(url, timeout=30)
    assert denied.value.code == 403
    assert _tables(admin, cloud) == before
    # the forged invocation never reached A: its plldb ran nothing
    assert forged_id not in attach.text()


READ_ANYTHING = {  # what a generic read-only principal (ReadOnlyAccess) may do here
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Resource": "*", "Action": [
        "dynamodb:Scan", "dynamodb:Query", "dynamodb:GetItem", "dynamodb:DescribeTable",
        "s3:Get*", "s3:List*"]}],
}


def test_a_generic_reader_finds_no_event_result_or_environment(
    cloud: LocalCloud, admin: boto3.Session, victim: tuple[str, PlldbProcess]
) -> None:
    """docs/security.md, promise 7: after invocations (one small, one whose event and result
    travel through the bucket), a principal allowed to read every table and bucket finds no
    event, result or environment of them: request items never held the event or environment,
    and items and payload objects are deleted once answered."""
    marker = f"card-{uuid.uuid4().hex}"
    lam = admin.client("lambda", endpoint_url=cloud.urls["lambda"],
                       config=botocore.config.Config(read_timeout=120))
    invocations = [("EchoFunction", {"card": marker}),
                   ("EchoFunction", {"card": marker, "pad": "x" * 40_000}),
                   ("HelloFunction", {"name": marker})]  # its environment: GREETING
    for logical, event in invocations:
        response = lam.invoke(FunctionName=cloud.functions[logical], Payload=json.dumps(event))
        assert marker in response["Payload"].read().decode()  # the result holds it too
    reader = create_user(admin.client("iam", endpoint_url=cloud.urls["moto"]), "reader", READ_ANYTHING)
    bucket = cloud.helper_outputs[naming.OUTPUT_PAYLOAD_BUCKET]

    def readable() -> list[str]:
        """Every table item and payload object the reader can see, as text."""
        dynamodb, s3 = reader.client("dynamodb"), reader.client("s3")
        texts = [json.dumps(item) for table in (naming.SESSIONS_TABLE, naming.DEBUGGER_TABLE)
                 for item in dynamodb.scan(TableName=table)["Items"]]
        for listed in s3.list_objects_v2(Bucket=bucket, Prefix=naming.PAYLOAD_PREFIX).get("Contents", []):
            texts.append(s3.get_object(Bucket=bucket, Key=listed["Key"])["Body"].read().decode())
        return texts

    wait_until(lambda: not [t for t in readable() if marker in t or "hello-from-env" in t],
               timeout=30)  # deletion runs off the caller's path: bounded, not instant
