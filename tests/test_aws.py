"""plldb/cloud/aws.py against a real moto server: the debugger role's credentials refresh themselves."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import boto3
import pytest

from plldb.cloud.aws import AwsContext

TRUST = {
    "Version": "2012-10-17",
    "Statement": [
        {"Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "sts:AssumeRole"}
    ],
}


@pytest.fixture
def role_arn(aws) -> str:
    iam = boto3.client("iam")
    return iam.create_role(RoleName="DebuggerRole", AssumeRolePolicyDocument=json.dumps(TRUST))[
        "Role"
    ]["Arn"]


def access_key(ctx: AwsContext) -> str:
    return ctx.session.get_credentials().get_frozen_credentials().access_key


def test_assumed_role_credentials_are_refreshed_before_they_expire(role_arn: str) -> None:
    """900 s (the shortest STS allows) is inside botocore's 15-minute refresh window, so
    every use fetches new credentials; a one-hour role session is refreshed the same way in
    its last 15 minutes."""
    debugger = AwsContext(region="us-east-1").assumed(role_arn, "plldb-test", duration_seconds=900)
    first = access_key(debugger)
    assert access_key(debugger) != first
    assert debugger.client("sts").get_caller_identity()["Arn"].endswith("/plldb-test")


ACCOUNT_TRUST = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole",
                   "Principal": {"AWS": "arn:aws:iam::123456789012:root"}}],
}


@pytest.fixture
def expiring_role(aws) -> Iterator[str]:
    """A role allowed S3, whose credentials expire after 2 s (IAM enforced)."""
    iam = boto3.client("iam")
    arn = iam.create_role(RoleName="ExpiringRole",
                          AssumeRolePolicyDocument=json.dumps(ACCOUNT_TRUST))["Role"]["Arn"]
    iam.put_role_policy(RoleName="ExpiringRole", PolicyName="payloads", PolicyDocument=json.dumps(
        {"Version": "2012-10-17",
         "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}))
    boto3.client("s3").create_bucket(Bucket="payloads")
    aws.enforce_iam(True, max_session_seconds=2)
    try:
        yield arn
    finally:
        aws.enforce_iam(False)


def test_calls_work_after_the_role_credentials_expired(expiring_role: str) -> None:
    """The local cloud refuses expired credentials (ExpiredToken): the call after the first
    credentials' expiry works only because they were refreshed."""
    debugger = AwsContext(region="us-east-1").assumed(expiring_role, "plldb-test")
    expiry = debugger.session.get_credentials()._expiry_time.timestamp()
    s3 = debugger.client("s3")
    deadline = time.monotonic() + 10
    while time.time() < expiry + 0.5:
        assert time.monotonic() < deadline
        time.sleep(0.1)
    s3.put_object(Bucket="payloads", Key="after-expiry", Body=b"after expiry")
    assert s3.get_object(Bucket="payloads", Key="after-expiry")["Body"].read() == b"after expiry"
