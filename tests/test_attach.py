"""`plldb attach`, `detach` and `status` as real subprocesses against the local cloud.

moto + the gateway emulator (real helper Lambdas) + the Lambda front (real layer, real
awslambdaric in Runtime API emulator containers): nothing in plldb knows it is not AWS.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest

from plldb.session.attach import instrumentation_problem
from tests.harness.localcloud import LocalCloud, LocalCloudSettings
from tests.harness.localcloud_attach import PlldbProcess

pytestmark = pytest.mark.e2e

TEST_STACK = Path(__file__).parent / "test_stack"
STACK = "plldb-test-stack"
PLLDB = str(Path(sys.executable).parent / "plldb")
VOLATILE = {"LastModified", "RevisionId", "ResponseMetadata", "LastUpdateStatus",
            "LastUpdateStatusReason", "LastUpdateStatusReasonCode", "State", "StateReason",
            "StateReasonCode"}


def run_plldb(args: list[str], env: dict[str, str], cwd: Path = TEST_STACK) -> subprocess.CompletedProcess:
    return subprocess.run([PLLDB, *args], cwd=cwd, env=env, text=True, capture_output=True,
                          timeout=120)


@pytest.fixture(scope="module")
def cloud() -> Iterator[LocalCloud]:
    with LocalCloud(LocalCloudSettings(grace_seconds=60, max_containers=2)) as started:
        yield started


@pytest.fixture
def env(cloud: LocalCloud) -> dict[str, str]:
    clean = {k: v for k, v in os.environ.items()
             if not k.startswith("AWS_ENDPOINT_URL") and k != "AWS_PROFILE"}
    return {**clean, **cloud.environment, "COLUMNS": "400", "NO_COLOR": "1"}


@pytest.fixture
def lam(cloud: LocalCloud) -> Iterator[object]:
    with cloud.environ():
        yield boto3.client("lambda")


def functions(cloud: LocalCloud) -> list[str]:
    with cloud.environ():
        cf = boto3.client("cloudformation")
        resources = cf.list_stack_resources(StackName=STACK)["StackResourceSummaries"]
    return sorted(r["PhysicalResourceId"] for r in resources
                  if r["ResourceType"] == "AWS::Lambda::Function")


def configurations(cloud: LocalCloud) -> dict[str, dict]:
    with cloud.environ():
        lam = boto3.client("lambda")
        iam = boto3.client("iam")
        found = {}
        for name in functions(cloud):
            config = lam.get_function_configuration(FunctionName=name)
            role = config["Role"].rsplit("/", 1)[-1]
            found[name] = {
                "config": {k: v for k, v in config.items() if k not in VOLATILE},
                "policies": sorted(iam.list_role_policies(RoleName=role)["PolicyNames"]),
            }
        return found


def test_attach_invoke_status_second_attach_and_ctrl_c(cloud: LocalCloud, env: dict, lam) -> None:
    before = configurations(cloud)
    attach = PlldbProcess(["attach"], TEST_STACK, cloud.environment)  # stack from samconfig
    try:
        attach.wait_for("attached")
        hello = next(name for name in before if "Hello" in name)
        response = lam.invoke(FunctionName=hello, Payload=b'{"name": "attach-test"}')
        result = json.loads(response["Payload"].read())
        assert result["greeting"] == "hello-from-env, attach-test!"
        attach.wait_for("HelloFunction  ")  # its live line

        status = run_plldb(["status", "--json"], env)
        assert status.returncode == 0, status.stderr
        report = json.loads(status.stdout)
        live = [s for s in report["sessions"] if s["live"] and s["stack_name"] == STACK]
        assert [s["status"] for s in live] == ["ACTIVE"]
        assert sorted(f["function_name"] for f in report["instrumented_functions"]) == sorted(before)

        second = run_plldb(["attach", "--stack-name", STACK], env)
        assert second.returncode == 1
        assert f"stack '{STACK}' is already attached by" in second.stderr
        assert "use --force" in second.stderr

        assert attach.interrupt() == 0, attach.text()
        assert "detached: 2 function(s) restored" in attach.text()
    finally:
        attach.kill()
    assert configurations(cloud) == before


def test_status_shows_what_is_attached_now_and_history_with_all(
    cloud: LocalCloud, env: dict
) -> None:
    """Issue 12: active sessions and instrumented functions; closed ones behind --all; no
    empty table; session ids whole."""
    attach = PlldbProcess(["attach", "--stack-name", STACK], TEST_STACK, cloud.environment)
    try:
        session_id = attach.wait_for("session ").split()[1]
        attach.wait_for("attached")
        now = run_plldb(["status"], env)
        assert now.returncode == 0, now.stderr
        assert "Active sessions" in now.stdout and session_id in now.stdout
        assert "Instrumented functions" in now.stdout
        assert attach.interrupt() == 0, attach.text()
    finally:
        attach.kill()
    after = run_plldb(["status"], env)
    assert after.returncode == 0, after.stderr
    assert session_id not in after.stdout
    assert "no active debugging session (plldb status --all shows closed ones)" in after.stdout
    assert "no instrumented function" in after.stdout
    assert "┏" not in after.stdout  # no empty table
    history = run_plldb(["status", "--all"], env)
    assert session_id in history.stdout and "CLOSED" in history.stdout


def test_detach_restores_after_kill_9_and_is_idempotent(cloud: LocalCloud, env: dict) -> None:
    before = configurations(cloud)
    attach = PlldbProcess(["attach", "--stack-name", STACK], TEST_STACK, cloud.environment)
    try:
        attach.wait_for("attached")
    finally:
        attach.kill()
    assert configurations(cloud) != before  # grace period is 60 s: still instrumented

    first = run_plldb(["detach", "--stack-name", STACK], env)
    assert first.returncode == 0, first.stderr
    assert first.stdout.count("restored") == 2
    assert configurations(cloud) == before

    again = run_plldb(["detach", "--stack-name", STACK], env)
    assert again.returncode == 0, again.stderr
    assert f"nothing to restore: {STACK} is not instrumented" in again.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["detach", "--stack-name", "no-such-stack"],
         "stack 'no-such-stack' not found in region us-east-1: check --stack-name and --region"),
        (["detach", "--stack-name", "functions:0123456789ab"],
         "nothing is attached under functions:0123456789ab: no session or instrumented function"),
        (["attach", "--stack-name", "no-such-stack"],
         "stack 'no-such-stack' not found in region us-east-1"),
        (["attach", "--function", "Nope*"],
         f"no Python function of stack '{STACK}' matches --function Nope*"),
        (["attach", "--template", "missing.yaml"], "missing.yaml"),
        (["attach", "--pycharm-port", "12345"], "--pycharm-port needs the pydevd-pycharm package"),
    ],
)
def test_attach_errors_are_one_line(env: dict, args: list[str], message: str) -> None:
    result = run_plldb(args, env)
    assert result.returncode == 1
    assert message in result.stderr
    assert "Traceback" not in result.stderr + result.stdout


def test_debugpy_port_in_use(env: dict) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = run_plldb(["attach", "--debugpy", "--debugpy-port", str(port)], env)
    assert result.returncode == 1
    assert f"debugpy cannot listen on 127.0.0.1:{port}" in result.stderr
    assert "choose another --debugpy-port" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout


def test_template_that_does_not_match_the_stack(cloud: LocalCloud, tmp_path: Path) -> None:
    """Issue 12 B4: a stack function the template lacks is a warning; the others attach."""
    template = (TEST_STACK / "template.yaml").read_text()
    without_echo = template[: template.index("  EchoFunction:")]  # and without Outputs
    (tmp_path / "template.yaml").write_text(without_echo)
    for folder in ("functions", "layers"):
        (tmp_path / folder).symlink_to(TEST_STACK / folder)
    attach = PlldbProcess(["attach", "--stack-name", STACK, "--function", "HelloFunction"],
                          tmp_path, cloud.environment)
    try:
        attach.wait_for("attached")
        text = " ".join(attach.text().split())  # warnings may wrap
        assert "function EchoFunction has no match in" in text
        assert "pass --template PATH" in text
        assert attach.interrupt() == 0, attach.text()
    finally:
        attach.kill()


def test_usage_errors_without_aws(tmp_path: Path) -> None:
    env = {**os.environ, "COLUMNS": "400"}
    no_stack = run_plldb(["attach"], env, cwd=tmp_path)
    assert no_stack.returncode == 2
    assert "--stack-name is required (no samconfig.toml with a stack_name here)" in no_stack.stderr
    no_debugpy = run_plldb(["attach", "--stack-name", "x", "--wait-for-client"], env, cwd=tmp_path)
    assert no_debugpy.returncode == 2
    assert "--wait-for-client, --debugpy-host and --debugpy-port need --debugpy" in no_debugpy.stderr
    bad_timeout = run_plldb(["attach", "--stack-name", "x", "--timeout", "901"], env, cwd=tmp_path)
    assert bad_timeout.returncode == 2
    assert "901 is not in the range 1<=x<=900" in bad_timeout.stderr


def test_attach_exits_1_when_no_function_can_be_instrumented(cloud: LocalCloud) -> None:
    echo = next(name for name in functions(cloud) if "Echo" in name)
    with cloud.environ():
        lam = boto3.client("lambda")
        original = lam.get_function_configuration(FunctionName=echo).get("Environment")
        lam.update_function_configuration(
            FunctionName=echo, Environment={"Variables": {"BIG": "x" * 3900}}
        )
    try:
        attach = PlldbProcess(
            ["attach", "--function", "EchoFunction"], TEST_STACK, cloud.environment
        )
        try:
            code = attach.wait(120)
        finally:
            attach.kill()
        assert code == 1, attach.text()
        assert "over the 4096 byte limit" in attach.text()
        assert "no function could be instrumented: detaching" in attach.text()
        assert "attached: waiting" not in attach.text()
    finally:
        with cloud.environ():
            lam.update_function_configuration(
                FunctionName=echo, Environment=original or {"Variables": {}}
            )


@pytest.mark.parametrize(
    ("message", "problem"),
    [
        ({"status": "failed", "message": "stack shop does not exist"},
         "instrumentation failed: stack shop does not exist"),
        ({"status": "ok", "message": "0 instrumented", "summary": {"instrumented": []}},
         "no function could be instrumented"),
        ({"status": "ok", "message": "1 instrumented", "summary": {"instrumented": ["f"]}}, None),
    ],
)
def test_instrumentation_problem(message: dict, problem: str | None) -> None:
    assert instrumentation_problem({"type": "progress", "phase": "instrument", **message}) == problem


def test_detach_reports_a_manager_refusal_in_one_line(cloud: LocalCloud, env: dict) -> None:
    record = {  # an instrumentation record whose owner is not a session id (corrupted)
        "SessionId": {"S": "FUNCTION#some-function"},
        "Kind": {"S": "instrumentation"},
        "StackName": {"S": "other-stack"},
        "FunctionName": {"S": "some-function"},
        "InstrumentedBy": {"S": "not-a-session"},
        "Status": {"S": "INSTRUMENTED"},
    }
    with cloud.environ():
        dynamodb = boto3.client("dynamodb")
        dynamodb.put_item(TableName="PLLDBSessions", Item=record)
    try:
        result = run_plldb(["detach", "--stack-name", "other-stack"], env)
    finally:
        with cloud.environ():
            dynamodb.delete_item(TableName="PLLDBSessions", Key={"SessionId": record["SessionId"]})
    assert result.returncode == 1
    assert "the manager failed to restore the stack: manager request without a valid session_id" in (
        result.stderr
    )
    assert "Traceback" not in result.stderr + result.stdout
