"""The moto launcher: DynamoDB atomic per item, IAM enforced, credentials that expire.

moto alone applies an UpdateItem attribute by attribute while a concurrent GetItem reads
the item; the harness's launcher (tests/harness/moto_launcher.py) serialises DynamoDB
requests. This test writes two attributes in one UpdateItem over and over while another
thread reads the item, and fails on the first read that sees one without the other.

The IAM tests run a second launcher with enforcement switched on after set-up: refusals in
the service's protocol, trust policies naming the account root or a service, credentials
past their Expiration refused with ExpiredToken (only that test caps role sessions short).
"""

from __future__ import annotations

import json
import threading
import urllib.error
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

import boto3
import botocore.exceptions
import pytest

from tests.harness.moto_launcher import principal_matches
from tests.harness.moto_server import FAKE_CREDENTIALS, REGION, MotoServer

WRITES = 150
FILLER = 60  # attributes set between Status and Response: widens moto's window to a sure hit


@pytest.fixture(scope="module")
def table() -> Iterator[Any]:
    server = MotoServer().start()
    try:
        env = server.environment()
        client = boto3.client(
            "dynamodb",
            endpoint_url=server.url,
            region_name=REGION,
            aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
        )
        client.create_table(
            TableName="Atomic",
            KeySchema=[{"AttributeName": "Id", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "Id", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        client.put_item(TableName="Atomic", Item={"Id": {"S": "x"}, "N": {"N": "0"}})
        yield client
    finally:
        server.stop()


def test_no_reader_sees_half_an_update_item(table: Any) -> None:
    torn: list[dict] = []
    done = threading.Event()

    def read() -> None:
        while not done.is_set() and not torn:
            item = table.get_item(TableName="Atomic", Key={"Id": {"S": "x"}})["Item"]
            if item.get("Status", {}).get("S") == "RESPONDED" and "Response" not in item:
                torn.append(item)
            if "Response" in item and item["Response"]["S"] != item["N"]["N"]:
                torn.append(item)

    filler_sets = ", ".join(f"#f{i} = :f{i}" for i in range(FILLER))
    filler_names = {f"#f{i}": f"F{i}" for i in range(FILLER)}
    filler_values = {f":f{i}": {"S": "x" * 100} for i in range(FILLER)}
    readers = [threading.Thread(target=read) for _ in range(3)]
    for reader in readers:
        reader.start()
    try:
        for n in range(1, WRITES + 1):
            table.put_item(TableName="Atomic", Item={"Id": {"S": "x"}, "N": {"N": str(n)}})
            table.update_item(
                TableName="Atomic",
                Key={"Id": {"S": "x"}},
                UpdateExpression=f"SET #s = :s, {filler_sets}, #r = :r",
                ExpressionAttributeNames={"#s": "Status", "#r": "Response", **filler_names},
                ExpressionAttributeValues={
                    ":s": {"S": "RESPONDED"},
                    ":r": {"S": str(n)},
                    **filler_values,
                },
            )
            if torn:
                break
    finally:
        done.set()
        for reader in readers:
            reader.join(timeout=30)
    assert not torn, f"a reader saw half an UpdateItem: {torn[0]}"


# --------------------------------------------------------------------------- IAM enforcement

ACCOUNT = "123456789012"
TABLE_ARN = f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/Enforced"
# Role sessions of the expiry test: short, longer only when a loaded machine could not use
# the shorter one before it expired.
SESSION_CAPS = (2, 8, 30)


def _policy(*statements: dict) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)})


def _allow(actions: list[str], resource: str | list[str]) -> dict:
    return {"Effect": "Allow", "Action": actions, "Resource": resource}


def _trust(principal: dict) -> str:
    return _policy({"Effect": "Allow", "Principal": principal, "Action": "sts:AssumeRole"})


class Enforced:
    """A launcher with a user, a role trusting the account root and a Lambda role; enforced."""

    def __init__(self, server: MotoServer) -> None:
        self.server = server
        iam = self.client("iam", ADMIN)
        iam.create_user(UserName="developer")
        iam.put_user_policy(
            UserName="developer",
            PolicyName="developer",
            PolicyDocument=_policy(
                _allow(["sts:AssumeRole"], f"arn:aws:iam::{ACCOUNT}:role/Debugger"),
                _allow(["dynamodb:GetItem", "lambda:GetFunctionConfiguration"], "*"),
            ),
        )
        key = iam.create_access_key(UserName="developer")["AccessKey"]
        self.user = {
            "aws_access_key_id": key["AccessKeyId"],
            "aws_secret_access_key": key["SecretAccessKey"],
        }
        root = {"AWS": f"arn:aws:iam::{ACCOUNT}:root"}
        self.debugger_arn = iam.create_role(
            RoleName="Debugger", AssumeRolePolicyDocument=_trust(root)
        )["Role"]["Arn"]
        iam.put_role_policy(
            RoleName="Debugger",
            PolicyName="data",
            PolicyDocument=_policy(
                _allow(
                    ["dynamodb:Query", "s3:PutObject"],
                    [TABLE_ARN, "arn:aws:s3:::enforced/payloads/*"],
                )
            ),
        )
        service = {"Service": "lambda.amazonaws.com"}
        self.lambda_role_arn = iam.create_role(
            RoleName="Function", AssumeRolePolicyDocument=_trust(service)
        )["Role"]["Arn"]
        self.client("dynamodb", ADMIN).create_table(
            TableName="Enforced",
            KeySchema=[{"AttributeName": "Id", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "Id", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        self.client("s3", ADMIN).create_bucket(Bucket="enforced")
        server.enforce_iam()  # role sessions as long as asked: only the expiry test caps them

    def client(self, service: str, credentials: dict[str, str]) -> Any:
        return boto3.client(
            service, endpoint_url=self.server.url, region_name=REGION, **credentials
        )

    def assume_debugger(self, cap_seconds: float | None = None) -> tuple[dict[str, str], Any]:
        """A role session of Debugger for the developer; ``cap_seconds``: it lasts that long."""
        if cap_seconds is not None:
            self.server.cap_sessions(cap_seconds)
        try:
            return self._assume_debugger()
        finally:
            if cap_seconds is not None:
                self.server.cap_sessions(None)

    def _assume_debugger(self) -> tuple[dict[str, str], Any]:
        sts = self.client("sts", self.user)
        response = sts.assume_role(
            RoleArn=self.debugger_arn, RoleSessionName="tests", DurationSeconds=3600
        )
        creds = response["Credentials"]
        return {
            "aws_access_key_id": creds["AccessKeyId"],
            "aws_secret_access_key": creds["SecretAccessKey"],
            "aws_session_token": creds["SessionToken"],
        }, creds["Expiration"]


ADMIN = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}


@pytest.fixture(scope="module")
def enforced() -> Iterator[Enforced]:
    server = MotoServer().start()
    try:
        yield Enforced(server)
    finally:
        server.stop()


def _error(call: Any) -> dict[str, Any]:
    with pytest.raises(botocore.exceptions.ClientError) as caught:
        call()
    return caught.value.response["Error"]


def test_an_action_outside_the_policy_is_refused_in_dynamodbs_json(enforced: Enforced) -> None:
    dynamodb = enforced.client("dynamodb", enforced.user)
    dynamodb.get_item(TableName="Enforced", Key={"Id": {"S": "x"}})
    error = _error(lambda: dynamodb.scan(TableName="Enforced"))
    assert error["Code"] == "AccessDeniedException"
    assert "user/developer is not authorized to perform: dynamodb:Scan" in error["Message"]


def test_unknown_credentials_are_refused(enforced: Enforced) -> None:
    sts = enforced.client("sts", ADMIN)
    assert _error(sts.get_caller_identity)["Code"] == "InvalidClientTokenId"


def test_the_harness_credentials_are_the_accounts_administrator(enforced: Enforced) -> None:
    harness = {
        k.lower(): v for k, v in FAKE_CREDENTIALS.items() if k.endswith(("_ID", "_KEY", "_TOKEN"))
    }
    assert enforced.client("dynamodb", harness).scan(TableName="Enforced")["Count"] == 0
    roles = enforced.client("iam", harness).list_roles()["Roles"]
    assert "plldb-localcloud-harness" in {role["RoleName"] for role in roles}


def test_a_signed_lambda_get_is_checked_like_any_call(enforced: Enforced) -> None:
    lambda_ = enforced.client("lambda", enforced.user)
    error = _error(lambda: lambda_.get_function_configuration(FunctionName="absent"))
    assert error["Code"] == "ResourceNotFoundException"  # signature and policy passed


def test_a_trust_policy_naming_the_account_root_admits_its_users(enforced: Enforced) -> None:
    credentials, _ = enforced.assume_debugger()
    identity = enforced.client("sts", credentials).get_caller_identity()
    assert identity["Arn"] == f"arn:aws:sts::{ACCOUNT}:assumed-role/Debugger/tests"


def _query(dynamodb: Any) -> Any:
    return dynamodb.query(
        TableName="Enforced",
        KeyConditionExpression="Id = :i",
        ExpressionAttributeValues={":i": {"S": "x"}},
    )


def _use_while_valid(dynamodb: Any, s3: Any) -> str:
    """What the role's policy allows (a query, a payload put); the code refusing the rest."""
    _query(dynamodb)
    s3.put_object(Bucket="enforced", Key="payloads/a", Body=b"1")
    return _error(lambda: s3.put_object(Bucket="enforced", Key="code/a", Body=b"1"))["Code"]


def test_assumed_role_credentials_stop_working_at_their_expiration(enforced: Enforced) -> None:
    for cap in SESSION_CAPS:
        credentials, expiration = enforced.assume_debugger(cap_seconds=cap)
        assert expiration <= datetime.now(timezone.utc) + timedelta(seconds=cap + 1)
        dynamodb = enforced.client("dynamodb", credentials)
        s3 = enforced.client("s3", credentials)
        try:
            denied = _use_while_valid(dynamodb, s3)
        except botocore.exceptions.ClientError:
            if datetime.now(timezone.utc) < expiration:
                raise
            continue  # the session expired before this slow machine could use it
        if datetime.now(timezone.utc) < expiration:
            break
    else:
        pytest.fail(f"no role session lasted long enough to be used (caps {SESSION_CAPS} s)")
    assert denied == "AccessDenied"
    while datetime.now(timezone.utc) < expiration:
        threading.Event().wait(0.1)
    assert _error(lambda: _query(dynamodb))["Code"] == "ExpiredTokenException"
    sts = enforced.client("sts", credentials)
    assert _error(sts.get_caller_identity)["Code"] == "ExpiredToken"
    put = _error(lambda: s3.put_object(Bucket="enforced", Key="payloads/a", Body=b"1"))
    assert put["Code"] == "ExpiredToken"


def test_service_credentials_follow_the_roles_trust_policy(enforced: Enforced) -> None:
    credentials = enforced.server.service_credentials(enforced.lambda_role_arn, "function", 60)
    sts = enforced.client(
        "sts",
        {
            "aws_access_key_id": credentials["AWS_ACCESS_KEY_ID"],
            "aws_secret_access_key": credentials["AWS_SECRET_ACCESS_KEY"],
            "aws_session_token": credentials["AWS_SESSION_TOKEN"],
        },
    )
    assert sts.get_caller_identity()["Arn"].endswith(":assumed-role/Function/function")
    with pytest.raises(urllib.error.HTTPError) as refused:
        enforced.server.service_credentials(enforced.debugger_arn, "function", 60)
    assert refused.value.code == 403
    assert b"Debugger does not allow lambda.amazonaws.com" in refused.value.read()


@pytest.mark.parametrize(
    ("principal", "caller", "expected"),
    [
        ({"AWS": f"arn:aws:iam::{ACCOUNT}:root"}, f"arn:aws:iam::{ACCOUNT}:user/u", True),
        ({"AWS": f"arn:aws:iam::{ACCOUNT}:root"}, "arn:aws:iam::999999999999:user/u", False),
        (
            {"AWS": [f"arn:aws:iam::{ACCOUNT}:role/R"]},
            f"arn:aws:sts::{ACCOUNT}:assumed-role/R/s",
            True,
        ),
        ({"AWS": f"arn:aws:iam::{ACCOUNT}:user/other"}, f"arn:aws:iam::{ACCOUNT}:user/u", False),
        ({"Service": "lambda.amazonaws.com"}, "lambda.amazonaws.com", True),
        ({"Service": "lambda.amazonaws.com"}, f"arn:aws:iam::{ACCOUNT}:user/u", False),
        ({"AWS": "*"}, f"arn:aws:iam::{ACCOUNT}:user/u", True),
    ],
)
def test_trust_principals_as_aws_reads_them(principal: dict, caller: str, expected: bool) -> None:
    assert principal_matches(principal, caller) is expected
