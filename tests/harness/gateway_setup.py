"""Helper-stack resources in moto, shaped like the ones plldb/infra/template.yaml creates.

The gateway emulator runs the real helper Lambdas; they need their tables, the payload
bucket and a published layer version to exist in moto first.
"""

from __future__ import annotations

import io
import json
import time
import uuid
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import boto3

from plldb import limits, naming
from tests.harness.identity_proof import caller_arn

PAYLOAD_BUCKET = "plldb-core-infrastructure-us-east-1-123456789012"

_WRAPPER = (
    '#!/bin/sh\n# placeholder plldb wrapper for tests: runs the runtime untouched\nexec "$@"\n'
)


@dataclass(frozen=True)
class HelperResources:
    sessions_table: str
    debugger_table: str
    payload_bucket: str
    layer_arn: str


def create_tables(
    dynamodb: Any,
    sessions_table: str = naming.SESSIONS_TABLE,
    debugger_table: str = naming.DEBUGGER_TABLE,
) -> None:
    """Both tables with the template's keys, GSIs and TTL attribute (on-demand billing)."""
    string = "S"
    dynamodb.create_table(
        TableName=sessions_table,
        BillingMode="PAY_PER_REQUEST",
        KeySchema=[{"AttributeName": naming.A_SESSION_ID, "KeyType": "HASH"}],
        AttributeDefinitions=[
            {"AttributeName": naming.A_SESSION_ID, "AttributeType": string},
            {"AttributeName": naming.A_STACK_NAME, "AttributeType": string},
            {"AttributeName": naming.A_CONNECTION_ID, "AttributeType": string},
        ],
        GlobalSecondaryIndexes=[
            _index(naming.STACK_NAME_INDEX, naming.A_STACK_NAME),
            _index(naming.CONNECTION_ID_INDEX, naming.A_CONNECTION_ID),
        ],
    )
    dynamodb.create_table(
        TableName=debugger_table,
        BillingMode="PAY_PER_REQUEST",
        KeySchema=[{"AttributeName": naming.A_REQUEST_ID, "KeyType": "HASH"}],
        AttributeDefinitions=[
            {"AttributeName": naming.A_REQUEST_ID, "AttributeType": string},
            {"AttributeName": naming.A_SESSION_ID, "AttributeType": string},
        ],
        GlobalSecondaryIndexes=[_index(naming.SESSION_ID_INDEX, naming.A_SESSION_ID)],
    )
    for table in (sessions_table, debugger_table):
        dynamodb.update_time_to_live(
            TableName=table,
            TimeToLiveSpecification={"Enabled": True, "AttributeName": naming.A_TTL},
        )


def _index(name: str, attribute: str) -> dict[str, Any]:
    return {
        "IndexName": name,
        "KeySchema": [{"AttributeName": attribute, "KeyType": "HASH"}],
        "Projection": {"ProjectionType": "ALL"},
    }


def layer_zip() -> bytes:
    """A minimal layer holding the wrapper at the path the manager points to."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        info = zipfile.ZipInfo(f"{naming.LAYER_DIR}/wrapper")
        info.external_attr = 0o755 << 16
        archive.writestr(info, _WRAPPER)
    return buffer.getvalue()


def publish_layer(lambda_client: Any, content: bytes | None = None) -> str:
    """Publish the plldb layer in moto; returns its LayerVersionArn."""
    result = lambda_client.publish_layer_version(
        LayerName=naming.LAYER_NAME,
        Content={"ZipFile": content or layer_zip()},
        CompatibleRuntimes=["python3.10", "python3.11", "python3.12", "python3.13"],
    )
    return result["LayerVersionArn"]


def create_shim_policy(iam: Any, region: str = "us-east-1") -> str:
    """The template's ShimAccessPolicy by name, for the manager to attach; returns its ARN.

    Its document is a stand-in: here moto enforces no IAM (the local cloud deploys the
    template's own policy and enforces it).
    """
    document = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "dynamodb:GetItem", "Resource": "*"}],
    }
    return iam.create_policy(
        PolicyName=f"PLLDBShimAccess-{region}", PolicyDocument=json.dumps(document)
    )["Policy"]["Arn"]


def provision(session: boto3.Session | None = None) -> HelperResources:
    """Tables, payload bucket, layer and the shim's policy in the moto AWS_ENDPOINT_URL names."""
    session = session or boto3.Session()
    create_tables(session.client("dynamodb"))
    create_shim_policy(session.client("iam"))
    session.client("s3").create_bucket(Bucket=PAYLOAD_BUCKET)
    return HelperResources(
        sessions_table=naming.SESSIONS_TABLE,
        debugger_table=naming.DEBUGGER_TABLE,
        payload_bucket=PAYLOAD_BUCKET,
        layer_arn=publish_layer(session.client("lambda")),
    )


def put_session(
    stack_name: str,
    *,
    status: str = naming.PENDING,
    ttl_in: int = limits.CONNECT_WINDOW_SECONDS,
    functions: list[str] | None = None,
    timeout: int | None = None,
    session_id: str | None = None,
    created_by: str | None = None,
    claim: bool = True,
) -> str:
    """Write a session item as the authorizer does; returns its id.

    Its creator is, unless told otherwise, the identity of this process's credentials, so
    that a connect signed with them (tests.harness.identity_proof) resumes it. ``claim``:
    the stack's functions are tagged with its claim first, as ``plldb attach`` does.
    """
    session_id = session_id or str(uuid.uuid4())
    created_by = created_by or caller_arn()
    if claim:
        claim_stack(stack_name, naming.claim_value(created_by, session_id))
    item: dict[str, Any] = {
        naming.A_SESSION_ID: {"S": session_id},
        naming.A_KIND: {"S": naming.KIND_SESSION},
        naming.A_STACK_NAME: {"S": stack_name},
        naming.A_STATUS: {"S": status},
        naming.A_TTL: {"N": str(int(time.time()) + ttl_in)},
        naming.A_CREATED_AT: {"S": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())},
        naming.A_CREATED_BY: {"S": created_by},
    }
    if functions is not None:
        item[naming.A_FUNCTIONS] = {"L": [{"S": f} for f in functions]}
    if timeout is not None:
        item[naming.A_TIMEOUT] = {"N": str(timeout)}
    boto3.client("dynamodb").put_item(TableName=naming.SESSIONS_TABLE, Item=item)
    return session_id


def instrument_nonce(session_id: str) -> str:
    """Arm ``session_id`` for one instrument run, as the authorizer does on ``$connect``: the
    session keeps the digest of a fresh nonce, which the manager request must carry."""
    nonce = uuid.uuid4().hex
    boto3.client("dynamodb").update_item(
        TableName=naming.SESSIONS_TABLE,
        Key={naming.A_SESSION_ID: {"S": session_id}},
        UpdateExpression="SET #nonce = :digest",
        ExpressionAttributeNames={"#nonce": naming.A_INSTRUMENT_NONCE},
        ExpressionAttributeValues={":digest": {"S": naming.nonce_digest(nonce)}},
    )
    return nonce


def put_named_session(names: list[str], claimed: list[str]) -> tuple[str, str]:
    """An ACTIVE by-name session over ``names`` (its key, its id), with ``claimed`` tagged
    with its claim as `plldb attach` tags them."""
    key = naming.by_name_key(names)
    session_id = put_session(key, status=naming.ACTIVE, claim=False)
    boto3.client("dynamodb").update_item(
        TableName=naming.SESSIONS_TABLE,
        Key={naming.A_SESSION_ID: {"S": session_id}},
        UpdateExpression="SET #names = :names",
        ExpressionAttributeNames={"#names": naming.A_NAMES},
        ExpressionAttributeValues={":names": {"L": [{"S": n} for n in names]}},
    )
    lambda_ = boto3.client("lambda")
    for name in claimed:
        arn = lambda_.get_function_configuration(FunctionName=name)["FunctionArn"]
        lambda_.tag_resource(
            Resource=arn, Tags={naming.CLAIM_TAG: naming.claim_value(caller_arn(), session_id)}
        )
    return key, session_id


def claim_stack(stack_name: str, value: str) -> None:
    """Tag every function of the stack (nested stacks too) with ``plldb:claim = value``."""
    cloudformation, lambda_ = boto3.client("cloudformation"), boto3.client("lambda")
    try:
        resources = cloudformation.list_stack_resources(StackName=stack_name)
    except cloudformation.exceptions.ClientError:
        return  # no such stack: nothing to claim (the manager reports it)
    for resource in resources["StackResourceSummaries"]:
        physical = resource.get("PhysicalResourceId", "")
        if resource["ResourceType"] == "AWS::CloudFormation::Stack":
            claim_stack(physical, value)
        elif resource["ResourceType"] == "AWS::Lambda::Function":
            arn = lambda_.get_function_configuration(FunctionName=physical)["FunctionArn"]
            lambda_.tag_resource(Resource=arn, Tags={naming.CLAIM_TAG: value})


def close_session(session_id: str) -> None:
    """CLOSED, as the manager marks a session on detach."""
    boto3.client("dynamodb").update_item(
        TableName=naming.SESSIONS_TABLE,
        Key={naming.A_SESSION_ID: {"S": session_id}},
        UpdateExpression="SET #s = :closed",
        ExpressionAttributeNames={"#s": naming.A_STATUS},
        ExpressionAttributeValues={":closed": {"S": naming.CLOSED}},
    )


def put_pending_request(session_id: str, dynamodb: Any = None) -> str:
    """A PENDING request item of ``session_id``, as the shim writes it; returns its id.

    ``dynamodb``: the client to write with (default: this process's environment)."""
    request_id = str(uuid.uuid4())
    (dynamodb or boto3.client("dynamodb")).put_item(
        TableName=naming.DEBUGGER_TABLE,
        Item={
            naming.A_REQUEST_ID: {"S": request_id},
            naming.A_SESSION_ID: {"S": session_id},
            naming.A_STATUS: {"S": naming.REQUEST_PENDING},
        },
    )
    return request_id


def get_session(session_id: str) -> dict[str, Any]:
    return (
        boto3.client("dynamodb")
        .get_item(
            TableName=naming.SESSIONS_TABLE,
            Key={naming.A_SESSION_ID: {"S": session_id}},
            ConsistentRead=True,
        )
        .get("Item", {})
    )


def scan(table: str) -> list[dict[str, Any]]:
    """Every item of a table, sorted: a snapshot to compare before and after.

    Used identity proofs are left out: the authorizer records each proof it verified, also
    for a connect it then denies (the proof is spent), and they belong to no session."""
    client = boto3.client("dynamodb")
    items: list[dict[str, Any]] = []
    for page in client.get_paginator("scan").paginate(TableName=table, ConsistentRead=True):
        items.extend(page["Items"])
    return sorted((i for i in items if not is_spent_proof(i)), key=repr)


def is_spent_proof(item: dict[str, Any]) -> bool:
    """A used identity proof's record in PLLDBSessions (plldb/lambdas/session_gate.py)."""
    return item.get(naming.A_KIND, {}).get("S") == naming.KIND_PROOF


def wait_until(predicate: Callable[[], Any], timeout: float = 30.0, interval: float = 0.05) -> Any:
    """Poll ``predicate`` until truthy; fail the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout} s")
