"""The local cloud enforces IAM: every identity holds only its own policies.

plldb runs as the IAM user holding docs/iam/plldb-developer-policy.json, each function with
its execution role, the debugger role's credentials expire (after a few seconds here).
These tests prove the refusals are real, so that a green end-to-end run means the policies
allow what the code does and no more.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
import urllib.parse
from collections.abc import Iterator
from datetime import datetime, timezone
from typing import Any

import boto3
import botocore.config
import botocore.exceptions
import pytest

from plldb import limits, naming
from tests.harness import developer_policy
from tests.harness.iam_audit import expect_refusal
from tests.harness.localcloud import (
    DEVELOPER_USER,
    TEST_STACK_DIR,
    LocalCloud,
    LocalCloudSettings,
)
from tests.harness.localcloud_attach import ATTACHED_MARKER, PlldbProcess, plldb_command
from tests.harness.moto_server import REGION, MotoServer

pytestmark = pytest.mark.e2e

SESSION_SECONDS = 2


@pytest.fixture(scope="module")
def cloud() -> Iterator[LocalCloud]:
    settings = LocalCloudSettings(session_seconds=SESSION_SECONDS, max_containers=1)
    with LocalCloud(settings) as started:
        yield started


def _client(cloud: LocalCloud, service: str, env: dict[str, str]) -> Any:
    return boto3.client(
        service,
        endpoint_url=cloud.urls["moto"],
        region_name=REGION,
        aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
        aws_session_token=env.get("AWS_SESSION_TOKEN"),
    )


def _error_code(call: Any) -> str:
    with pytest.raises(botocore.exceptions.ClientError) as caught:
        call()
    return caught.value.response["Error"]["Code"]


def _role_credentials(cloud: LocalCloud, role_arn: str, session_name: str) -> dict[str, str]:
    """What Lambda gives a function running under ``role_arn`` (the local cloud's way)."""
    moto = MotoServer(port=urllib.parse.urlsplit(cloud.urls["moto"]).port)
    return moto.service_credentials(role_arn, session_name, 60)


def test_plldb_runs_as_the_user_with_exactly_the_documented_policy(cloud: LocalCloud) -> None:
    identity = _client(cloud, "sts", cloud.environment).get_caller_identity()
    assert identity["Arn"].endswith(f":user/{DEVELOPER_USER}")
    iam = _client(cloud, "iam", cloud.harness_environment)
    (name,) = iam.list_user_policies(UserName=DEVELOPER_USER)["PolicyNames"]
    document = iam.get_user_policy(UserName=DEVELOPER_USER, PolicyName=name)["PolicyDocument"]
    assert document == developer_policy.narrowed(cloud.debuggable())  # as the README says
    assert iam.list_attached_user_policies(UserName=DEVELOPER_USER)["AttachedPolicies"] == []


def test_the_user_is_refused_what_its_policy_does_not_allow(cloud: LocalCloud) -> None:
    function = cloud.functions["HelloFunction"]
    user = f"arn:aws:iam::*:user/{DEVELOPER_USER}"
    why = "proves the developer user holds only its documented policy"
    expect_refusal("lambda:UpdateFunctionConfiguration", user, why=why)
    expect_refusal("dynamodb:Scan", user, why=why)
    lam = _client(cloud, "lambda", cloud.environment)
    update = lambda: lam.update_function_configuration(FunctionName=function, Timeout=5)  # noqa: E731
    assert _error_code(update) == "AccessDeniedException"
    dynamodb = _client(cloud, "dynamodb", cloud.environment)
    scan = lambda: dynamodb.scan(TableName=naming.SESSIONS_TABLE)  # noqa: E731
    assert _error_code(scan) == "AccessDeniedException"  # only through the debugger role


def test_plldb_status_lists_every_session_under_enforcement(cloud: LocalCloud) -> None:
    """`plldb status` without a stack scans the sessions table with the debugger role."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    result = subprocess.run(
        [*plldb_command(), "status"],
        env={**env, **cloud.environment},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "AccessDenied" not in result.stdout + result.stderr


def test_debugger_role_credentials_stop_working_at_their_expiration(cloud: LocalCloud) -> None:
    sts = _client(cloud, "sts", cloud.environment)
    assumed = sts.assume_role(
        RoleArn=cloud.helper_outputs[naming.OUTPUT_DEBUGGER_ROLE],
        RoleSessionName="expiry",
        DurationSeconds=3600,
    )
    expiration = assumed["Credentials"]["Expiration"]
    assert (expiration - datetime.now(timezone.utc)).total_seconds() <= SESSION_SECONDS + 1
    creds = assumed["Credentials"]
    env = {
        "AWS_ACCESS_KEY_ID": creds["AccessKeyId"],
        "AWS_SECRET_ACCESS_KEY": creds["SecretAccessKey"],
        "AWS_SESSION_TOKEN": creds["SessionToken"],
    }
    dynamodb = _client(cloud, "dynamodb", env)
    get = lambda: dynamodb.get_item(  # noqa: E731
        TableName=naming.SESSIONS_TABLE, Key={naming.A_SESSION_ID: {"S": "none"}}
    )
    get()
    while datetime.now(timezone.utc) < expiration:
        time.sleep(0.1)
    assert _error_code(get) == "ExpiredTokenException"


def test_a_functions_role_reads_no_plldb_table_before_attach(cloud: LocalCloud) -> None:
    function = cloud.functions["HelloFunction"]
    lam = _client(cloud, "lambda", cloud.harness_environment)
    role = lam.get_function_configuration(FunctionName=function)["Role"]
    expect_refusal("dynamodb:GetItem", role, why="a function's role has no plldb rights unattached")
    dynamodb = _client(cloud, "dynamodb", _role_credentials(cloud, role, function))
    get = lambda: dynamodb.get_item(  # noqa: E731
        TableName=naming.SESSIONS_TABLE, Key={naming.A_SESSION_ID: {"S": "none"}}
    )
    assert _error_code(get) == "AccessDeniedException"


def _manager_rights(cloud: LocalCloud, helper: str) -> list[str]:
    """Which of the manager's calls the role of ``plldb-<helper>`` may make."""
    lam = _client(cloud, "lambda", cloud.harness_environment)
    role = lam.get_function_configuration(FunctionName=f"plldb-{helper}")["Role"]
    if helper != "manager":
        why = "proves the manager's rights are its role's alone"
        expect_refusal("dynamodb:Scan", role, why=why)
        expect_refusal("lambda:GetFunctionConfiguration", role, why=why)
    env = _role_credentials(cloud, role, f"plldb-{helper}")
    dynamodb, functions = _client(cloud, "dynamodb", env), _client(cloud, "lambda", env)
    calls = {
        "scan sessions": lambda: dynamodb.scan(TableName=naming.SESSIONS_TABLE),
        "read a function": lambda: functions.get_function_configuration(
            FunctionName=cloud.functions["HelloFunction"]
        ),
    }
    allowed = []
    for what, call in calls.items():
        try:
            call()
            allowed.append(what)
        except botocore.exceptions.ClientError as exc:
            assert exc.response["Error"]["Code"] == "AccessDeniedException"
    return allowed


def test_only_the_manager_role_scans_and_reads_functions(cloud: LocalCloud) -> None:
    assert _manager_rights(cloud, "manager") == ["scan sessions", "read a function"]
    assert _manager_rights(cloud, "connect") == []


def test_a_session_outlives_its_debugger_role_credentials(cloud: LocalCloud) -> None:
    """plldb's role credentials expire every few seconds here; it refreshes them.

    Events and results this large travel through the payload bucket, which plldb reaches
    only through the URLs the shim presigns (it holds no S3 rights): every call, the
    presigned ones too, must be allowed by the policies of whoever signed it.
    """
    lam = boto3.client(
        "lambda",
        endpoint_url=cloud.urls["lambda"],
        region_name=REGION,
        aws_access_key_id=cloud.harness_environment["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=cloud.harness_environment["AWS_SECRET_ACCESS_KEY"],
        aws_session_token=cloud.harness_environment["AWS_SESSION_TOKEN"],
        config=botocore.config.Config(read_timeout=120, retries={"max_attempts": 1}),
    )
    attach = PlldbProcess(["attach"], TEST_STACK_DIR, cloud.environment)
    try:
        attach.wait_for(ATTACHED_MARKER)
        started, answered = time.monotonic(), []
        while time.monotonic() - started < 3 * SESSION_SECONDS or len(answered) < 2:
            event = {"n": len(answered), "pad": "x" * (limits.INLINE_PAYLOAD_LIMIT + 1)}
            response = lam.invoke(
                FunctionName=cloud.functions["EchoFunction"], Payload=json.dumps(event)
            )
            assert response.get("FunctionError") is None, response["Payload"].read()
            answered.append(json.loads(response["Payload"].read())["echo"]["n"])
        assert answered == list(range(len(answered)))
        assert attach.interrupt() == 0, attach.text()
        assert "detached: 2 function(s) restored" in attach.text()
    finally:
        attach.kill()
