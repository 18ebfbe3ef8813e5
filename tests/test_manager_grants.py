"""The shim's access as one managed policy: attached per role, refused roles, legacy policies."""

from __future__ import annotations

import json
import logging
from typing import Any
from unittest import mock

import boto3
import botocore.client
import botocore.exceptions
import pytest

from plldb.lambdas import common
from plldb.lambdas.manager import entry as manager
from plldb.lambdas.manager.apply import Grants
from tests.harness.gateway import Gateway
from tests.harness.gateway_setup import instrument_nonce, put_session
from tests.harness.gateway_stack import INSTRUMENTABLE, STACK_NAME, configuration, create_stack

pytest_plugins = ["tests.harness.gateway_fixtures"]

QUOTA = "Cannot exceed quota for PoliciesPerRole: 10"
_real_call = botocore.client.BaseClient._make_api_call


def _role(name: str) -> None:
    trust = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Service": "lambda.amazonaws.com"},
                "Action": "sts:AssumeRole",
            }
        ],
    }
    boto3.client("iam").create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(trust))


def _attached(role: str) -> list[str]:
    policies = boto3.client("iam").list_attached_role_policies(RoleName=role)
    return [p["PolicyArn"] for p in policies["AttachedPolicies"]]


def _at_quota(*roles: str) -> Any:
    """IAM's answer for a role that already has its maximum of managed policies (moto has no
    quota): AttachRolePolicy on ``roles`` fails with LimitExceeded, every other call is real."""

    def call(self: Any, operation: str, params: dict[str, Any]) -> Any:
        if operation == "AttachRolePolicy" and params["RoleName"] in roles:
            error = {"Error": {"Code": "LimitExceeded", "Message": QUOTA}}
            raise botocore.exceptions.ClientError(error, operation)
        return _real_call(self, operation, params)

    return mock.patch.object(botocore.client.BaseClient, "_make_api_call", call)


def test_grant_attaches_the_policy_and_names_each_role_that_cannot_take_it(
    gateway: Gateway,
) -> None:
    _role("roomy")
    _role("full")
    config = common.Config.from_environ()
    grants = Grants(common.client("iam"), config)
    with _at_quota("full"):
        refused = grants.grant({"roomy", "full"})
        assert grants.grant({"roomy"}) == {}  # attaching again changes nothing
    assert set(refused) == {"full"}
    assert QUOTA in refused["full"]
    assert "detach a managed policy from that role" in refused["full"]
    assert f"PLLDBShimAccess-{boto3.Session().region_name}" in refused["full"]
    assert _attached("roomy") == [config.shim_policy_arn]
    assert grants.has_policy("roomy") and not grants.has_policy("full")
    grants.revoke({"roomy", "full"})  # a policy that is not attached is no error
    assert _attached("roomy") == []


def test_revoke_leaves_an_older_plldbs_inline_policy_and_says_how_to_delete_it(
    gateway: Gateway, caplog: pytest.LogCaptureFixture
) -> None:
    _role("legacy")
    statement = {"Effect": "Allow", "Action": "dynamodb:GetItem", "Resource": "*"}
    document = {"Version": "2012-10-17", "Statement": [statement]}
    iam = boto3.client("iam")
    iam.put_role_policy(
        RoleName="legacy", PolicyName="PLLDBShimAccess", PolicyDocument=json.dumps(document)
    )
    grants = Grants(common.client("iam"), common.Config.from_environ())
    grants.grant({"legacy"})
    with caplog.at_level(logging.WARNING, logger="plldb.lambdas"):
        grants.revoke({"legacy"})
    assert _attached("legacy") == []
    assert iam.list_role_policies(RoleName="legacy")["PolicyNames"] == ["PLLDBShimAccess"]
    assert (
        "aws iam delete-role-policy --role-name legacy --policy-name PLLDBShimAccess" in caplog.text
    )


def test_functions_whose_role_is_at_its_quota_fail_with_why_and_stay_untouched(
    gateway: Gateway,
) -> None:
    names = create_stack()
    before = {logical: configuration(names[logical]) for logical in INSTRUMENTABLE}
    role = before["Plain"]["Role"].rsplit("/", 1)[-1]
    session_id = put_session(STACK_NAME, status="ACTIVE")
    with _at_quota(role):
        summary = manager.handler(
            {"action": "instrument", "session_id": session_id,
             "nonce": instrument_nonce(session_id)}, None
        )
    failed = {f["function"]: f["reason"] for f in summary["failed"]}
    assert set(failed) == {names[logical] for logical in INSTRUMENTABLE}
    assert all(QUOTA in reason for reason in failed.values())
    assert summary["instrumented"] == []
    assert {logical: configuration(names[logical]) for logical in INSTRUMENTABLE} == before
