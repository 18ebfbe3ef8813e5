"""The local cloud refuses what AWS refuses, resources included (tests/harness/localcloud_authz.py).

One moto launcher with two functions, ``stackA-Fn`` and ``stackB-Fn``, created by the
harness; then IAM enforcement on, and real IAM principals (tests/harness/principals.py)
act on them. moto alone would let a statement on ``function:stackA-*`` act on stackB.
"""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Iterator
from typing import Any

import boto3
import botocore.exceptions
import pytest

from tests.harness import principals
from tests.harness.moto_server import FAKE_CREDENTIALS, REGION, MotoServer

ACCOUNT = "123456789012"
FUNCTION = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function"


def _policy(*statements: dict[str, Any]) -> dict[str, Any]:
    return {"Version": "2012-10-17", "Statement": list(statements)}


def _allow(actions: list[str], resource: str | list[str]) -> dict[str, Any]:
    return {"Effect": "Allow", "Action": actions, "Resource": resource}


class Cloud:
    """A launcher holding stackA-Fn and stackB-Fn; the harness's IAM client creates users."""

    def __init__(self, server: MotoServer) -> None:
        self.server = server
        harness = boto3.Session(
            aws_access_key_id=FAKE_CREDENTIALS["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=FAKE_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
            aws_session_token=FAKE_CREDENTIALS["AWS_SESSION_TOKEN"],
            region_name=REGION,
        )
        self.iam = harness.client("iam", endpoint_url=server.url)
        self.lambda_ = harness.client("lambda", endpoint_url=server.url)
        trust = _policy(
            {
                "Effect": "Allow",
                "Principal": {"Service": "lambda.amazonaws.com"},
                "Action": "sts:AssumeRole",
            }
        )
        role = self.iam.create_role(RoleName="fn", AssumeRolePolicyDocument=json.dumps(trust))
        code = io.BytesIO()
        with zipfile.ZipFile(code, "w") as archive:
            archive.writestr("app.py", "def handler(event, context):\n    return event\n")
        for name in ("stackA-Fn", "stackB-Fn"):
            self.lambda_.create_function(
                FunctionName=name,
                Runtime="python3.12",
                Role=role["Role"]["Arn"],
                Handler="app.handler",
                Code={"ZipFile": code.getvalue()},
                Timeout=3,
            )
        server.enforce_iam()

    def tags(self, name: str) -> dict[str, str]:
        return self.lambda_.list_tags(Resource=f"{FUNCTION}:{name}")["Tags"]


@pytest.fixture(scope="module")
def cloud() -> Iterator[Cloud]:
    server = MotoServer().start()
    try:
        yield Cloud(server)
    finally:
        server.stop()


def _refusal(call: Any) -> botocore.exceptions.ClientError:
    with pytest.raises(botocore.exceptions.ClientError) as caught:
        call()
    return caught.value


def test_lambda_actions_are_checked_on_the_functions_arn(cloud: Cloud) -> None:
    policy = _policy(_allow(["lambda:TagResource"], f"{FUNCTION}:stackA-*"))
    lambda_ = principals.create_user(cloud.iam, "tagger", policy).client("lambda")
    lambda_.tag_resource(Resource=f"{FUNCTION}:stackA-Fn", Tags={"owner": "tagger"})
    assert cloud.tags("stackA-Fn") == {"owner": "tagger"}

    refused = _refusal(
        lambda: lambda_.tag_resource(Resource=f"{FUNCTION}:stackB-Fn", Tags={"owner": "tagger"})
    )
    error = refused.response["Error"]  # parsed from a JSON body, as Lambda answers
    assert error["Code"] == "AccessDeniedException"
    assert "user/tagger is not authorized to perform: lambda:TagResource" in error["Message"]
    assert cloud.tags("stackB-Fn") == {}


def test_a_read_only_user_cannot_update_a_function(cloud: Cloud) -> None:
    read_only = _policy(
        _allow(["lambda:GetFunctionConfiguration", "lambda:ListTags"], f"{FUNCTION}:*")
    )
    reader = principals.create_user(cloud.iam, "reader", read_only)
    lambda_ = reader.session().client("lambda")
    assert lambda_.get_function_configuration(FunctionName="stackB-Fn")["Timeout"] == 3

    refused = _refusal(
        lambda: lambda_.update_function_configuration(FunctionName="stackB-Fn", Timeout=900)
    )
    assert refused.response["Error"]["Code"] == "AccessDeniedException"
    assert "lambda:UpdateFunctionConfiguration" in str(refused)
    assert cloud.lambda_.get_function_configuration(FunctionName="stackB-Fn")["Timeout"] == 3


def test_a_user_opens_the_role_sessions_it_may_assume(cloud: Cloud) -> None:
    account_root = {"AWS": f"arn:aws:iam::{ACCOUNT}:root"}
    trust = _policy({"Effect": "Allow", "Principal": account_root, "Action": "sts:AssumeRole"})
    role_arn = cloud.iam.create_role(RoleName="Reader", AssumeRolePolicyDocument=json.dumps(trust))[
        "Role"
    ]["Arn"]
    cloud.iam.put_role_policy(
        RoleName="Reader",
        PolicyName="read",
        PolicyDocument=json.dumps(_policy(_allow(["lambda:ListTags"], f"{FUNCTION}:stackA-*"))),
    )
    nothing = _policy(_allow(["sts:GetCallerIdentity"], "*"))
    user = principals.create_user(cloud.iam, "assumer", nothing, assume_roles=[role_arn])
    session = principals.assume_role(user, role_arn, "tests")
    assert session.arn == f"arn:aws:sts::{ACCOUNT}:assumed-role/Reader/tests"
    assert session.credentials["AWS_SESSION_TOKEN"]
    tags = session.client("lambda").list_tags(Resource=f"{FUNCTION}:stackA-Fn")["Tags"]
    assert tags == cloud.tags("stackA-Fn")
    refused = _refusal(lambda: session.client("lambda").list_tags(Resource=f"{FUNCTION}:stackB-Fn"))
    assert refused.response["Error"]["Code"] == "AccessDeniedException"

    stranger = principals.create_user(cloud.iam, "stranger", nothing)
    refused = _refusal(lambda: principals.assume_role(stranger, role_arn, "tests"))
    assert refused.response["Error"]["Code"] == "AccessDenied"
