"""`plldb attach --function-name NAME --code DIR` on the local cloud: a function with no stack.

The function is created directly (as Terraform, Pulumi or the console would), with the
harness's credentials, from a zip whose handler answers "deployed"; plldb runs as the IAM
developer with docs/iam/plldb-developer-policy.json. Attached, an invocation through
Lambda's Invoke answers with the fixture's local source (tests/fixtures/by_name/src); Ctrl-C
restores the function as it was. Bad input (an unknown name, a code folder without the
handler's module) fails before anything changes.
"""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from plldb import naming
from tests.harness import developer_policy
from tests.harness.localcloud import LocalCloud, LocalCloudSettings
from tests.harness.localcloud_attach import ATTACHED_MARKER, PlldbProcess
from tests.harness.localcloud_stacks import ContentStore
from tests.harness.principals import create_user

pytestmark = pytest.mark.e2e

FIXTURE = Path(__file__).parent / "fixtures" / "by_name"
TEST_STACK = Path(__file__).parent / "test_stack"
FUNCTION = "plldb-by-name-orders"  # as tests/fixtures/by_name/main.tf names it
OTHER = "plldb-by-name-other"
CONFIG_KEYS = ("Handler", "Runtime", "Timeout", "MemorySize", "Role", "Environment", "Layers")
TRUST = {"Version": "2012-10-17", "Statement": [
    {"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}]}


@pytest.fixture(scope="module")
def cloud() -> Iterator[LocalCloud]:
    """The helper stack and the test stack; the by-name functions are created the way
    Terraform would, outside any stack."""
    # A grace longer than any test here: after a crash, only `plldb detach` restores.
    with LocalCloud(LocalCloudSettings(grace_seconds=120.0)) as started, started.environ():
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w") as archive:
            archive.writestr("app.py", "def handler(event, context):\n    return {'answered_by': 'deployed'}\n")
        code = buffer.getvalue()
        assert started.work_dir is not None
        ContentStore(started.work_dir / "content").put(code)  # what the Lambda front runs
        role = boto3.client("iam").create_role(
            RoleName="by-name-orders-role", AssumeRolePolicyDocument=json.dumps(TRUST))["Role"]["Arn"]
        for name in (FUNCTION, OTHER):
            boto3.client("lambda").create_function(
                FunctionName=name, Runtime="python3.12", Role=role, Handler="app.handler",
                Code={"ZipFile": code}, Timeout=10)
        yield started


def _configuration() -> dict[str, Any]:
    found = boto3.client("lambda").get_function_configuration(FunctionName=FUNCTION)
    return {k: v for k, v in found.items() if k in CONFIG_KEYS}


def _tags() -> dict[str, str]:
    lambda_ = boto3.client("lambda")
    return lambda_.list_tags(Resource=lambda_.get_function_configuration(FunctionName=FUNCTION)["FunctionArn"])["Tags"]


def _invoke() -> Any:
    response = boto3.client("lambda").invoke(FunctionName=FUNCTION, Payload=json.dumps({"n": 3}))
    assert "FunctionError" not in response, response
    return json.loads(response["Payload"].read())


def test_attach_by_name_runs_the_local_code_and_restores(cloud: LocalCloud) -> None:
    before = _configuration()
    assert _invoke() == {"answered_by": "deployed"}
    plldb = PlldbProcess(["attach", "--function-name", FUNCTION, "--code", "src"], FIXTURE, cloud.environment)
    try:
        plldb.wait_for(ATTACHED_MARKER)
        assert "functions by name (session key functions:" in plldb.text()
        assert _invoke() == {"answered_by": "local source", "event": {"n": 3}}
    finally:
        assert plldb.interrupt() == 0, plldb.text()
    assert _configuration() == before
    assert _invoke() == {"answered_by": "deployed"}


def test_a_function_debugged_by_another_set_is_refused_and_keeps_its_session(cloud: LocalCloud) -> None:
    first = PlldbProcess(["attach", "--function-name", FUNCTION, "--code", "src"], FIXTURE, cloud.environment)
    try:
        first.wait_for(ATTACHED_MARKER)
        claim = _tags().get(naming.CLAIM_TAG)
        assert claim
        second = PlldbProcess(["attach", "--function-name", FUNCTION, "--function-name", OTHER,
                               "--code", "src"], FIXTURE, cloud.environment)
        assert second.wait(90) != 0
        assert f"function '{FUNCTION}' is already debugged by" in second.text(), second.text()
        assert "use --force to take it over" in " ".join(second.text().split())
        assert _tags().get(naming.CLAIM_TAG) == claim  # refused before claiming anything
        assert _invoke() == {"answered_by": "local source", "event": {"n": 3}}  # still the first's
    finally:
        assert first.interrupt() == 0, first.text()


def test_a_stack_attach_is_refused_while_a_session_by_name_debugs_one_of_its_functions(cloud: LocalCloud) -> None:
    hello = cloud.functions["HelloFunction"]
    by_name = PlldbProcess(["attach", "--function-name", hello, "--code", "functions/hello"],
                           TEST_STACK, cloud.environment)
    try:
        by_name.wait_for(ATTACHED_MARKER)
        stack = PlldbProcess(["attach"], TEST_STACK, cloud.environment)
        assert stack.wait(90) != 0
        assert f"function '{hello}' is already debugged by" in stack.text(), stack.text()
    finally:
        assert by_name.interrupt() == 0, by_name.text()


def test_after_a_crash_detach_with_the_printed_key_restores(cloud: LocalCloud) -> None:
    before = _configuration()
    key = naming.by_name_key([FUNCTION])
    plldb = PlldbProcess(["attach", "--function-name", FUNCTION, "--code", "src"], FIXTURE, cloud.environment)
    plldb.wait_for(ATTACHED_MARKER)
    assert f"session key {key}" in plldb.text()
    plldb.kill()
    assert _configuration() != before
    detach = PlldbProcess(["detach", "--stack-name", key], FIXTURE, cloud.environment)
    assert detach.wait(90) == 0, detach.text()
    assert f"restored {FUNCTION}" in detach.text()
    assert _configuration() == before


@pytest.mark.parametrize(("args", "message"), [
    (["--function-name", "no-such-fn", "--code", "src"],
     "function 'no-such-fn' not found in region us-east-1: check --function-name and --region"),
    (["--function-name", FUNCTION, "--code", "."],
     f"function {FUNCTION}: code folder . has no module for handler app.handler"),
])
def test_bad_input_is_refused_before_anything_changes(cloud: LocalCloud, args: list[str], message: str) -> None:
    before = _configuration()
    plldb = PlldbProcess(["attach", *args], FIXTURE, cloud.environment)
    assert plldb.wait(90) != 0
    assert message in " ".join(plldb.text().split()), plldb.text()
    assert _configuration() == before


def test_a_developer_who_cannot_read_the_function_is_told_which_statement_is_missing(cloud: LocalCloud) -> None:
    policy = developer_policy.narrowed(cloud.debuggable())
    policy["Statement"] = [s for s in policy["Statement"] if s["Sid"] != "ReadFunctionsByName"]
    user = create_user(boto3.client("iam"), "by-name-no-read", policy)
    plldb = PlldbProcess(["attach", "--function-name", FUNCTION, "--code", "src"], FIXTURE,
                         {**cloud.environment, **user.credentials})
    assert plldb.wait(90) != 0
    assert (f"cannot read function '{FUNCTION}' in region us-east-1: your credentials need "
            "lambda:GetFunctionConfiguration on it (statement ReadFunctionsByName of "
            "docs/iam/plldb-developer-policy.json)") in " ".join(plldb.text().split()), plldb.text()
