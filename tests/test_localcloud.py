"""The local cloud: started and stopped cleanly, found like AWS, runs the test stack like Lambda."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import boto3
import botocore.exceptions
import psutil
import pytest

from plldb import __version__, naming
from plldb.cloud.aws import AwsContext
from plldb.cloud.helper_stack import find_helper_stack
from tests.harness.gateway_setup import wait_until
from tests.harness.localcloud import (
    REPO_ROOT,
    STATE_FILE,
    TEST_STACK_DIR,
    TEST_STACK_NAME,
    LocalCloud,
    LocalCloudSettings,
)
from tests.harness.localcloud_attach import ATTACHED_MARKER, PlldbProcess
from tests.harness.localcloud_credentials import REFRESH_MARGIN_S
from tests.harness.localcloud_lambda import Invoker
from tests.harness.localcloud_stacks import ContentStore
from tests.harness.moto_server import REGION

HELLO, ECHO = "HelloFunction", "EchoFunction"


@pytest.fixture(scope="module")
def cloud() -> Iterator[LocalCloud]:
    with LocalCloud(LocalCloudSettings(grace_seconds=3, max_containers=2)) as started:
        yield started


@pytest.fixture
def lam(cloud: LocalCloud) -> Iterator[object]:
    with cloud.environ():
        yield boto3.client("lambda")


def invoke(lam, function: str, event: object) -> tuple[dict, str | None]:
    response = lam.invoke(FunctionName=function, Payload=json.dumps(event).encode())
    return json.loads(response["Payload"].read()), response.get("FunctionError")


def test_plldb_finds_the_helper_stack_like_in_aws(cloud: LocalCloud) -> None:
    with cloud.environ():
        helper = find_helper_stack(AwsContext(region=REGION))
    assert helper.websocket_url == cloud.urls["websocket"]
    assert helper.websocket_url.startswith("ws://127.0.0.1:")
    assert helper.management_url == cloud.urls["management"]
    assert helper.version == __version__
    assert helper.manager_function == "plldb-manager"
    assert helper.layer_version_arn.split(":")[6] == naming.LAYER_NAME
    assert helper.sessions_table == naming.SESSIONS_TABLE


def test_helper_resources_are_the_templates(cloud: LocalCloud) -> None:
    with cloud.environ():
        table = boto3.client("dynamodb").describe_table(TableName=naming.SESSIONS_TABLE)["Table"]
        roles = {r["RoleName"] for r in boto3.client("iam").list_roles()["Roles"]}
        manager = boto3.client("lambda").get_function_configuration(FunctionName="plldb-manager")
    assert {i["IndexName"] for i in table["GlobalSecondaryIndexes"]} == {
        naming.STACK_NAME_INDEX,
        naming.CONNECTION_ID_INDEX,
    }
    assert {"PLLDBDebuggerRole-us-east-1", "PLLDBManagerRole-us-east-1"} <= roles
    variables = manager["Environment"]["Variables"]
    assert variables[naming.ENV_MANAGEMENT_URL] == cloud.urls["management"]
    assert str(variables[naming.ENV_GRACE_SECONDS]) == "3"


def test_test_stack_is_deployed_with_both_functions(cloud: LocalCloud, lam) -> None:
    assert set(cloud.functions) == {HELLO, ECHO}
    with cloud.environ():
        stack = boto3.client("cloudformation").describe_stacks(StackName=TEST_STACK_NAME)["Stacks"][
            0
        ]
    assert stack["StackStatus"] == "CREATE_COMPLETE"
    outputs = {o["OutputKey"]: o["OutputValue"] for o in stack["Outputs"]}
    assert outputs["HelloFunctionName"] == cloud.functions[HELLO]
    hello = lam.get_function_configuration(FunctionName=cloud.functions[HELLO])
    assert hello["Environment"]["Variables"] == {"GREETING": "hello-from-env"}
    assert [layer["Arn"].split(":")[6] for layer in hello["Layers"]] == ["plldb-test-common"]


def test_each_function_answers_with_its_own_code(cloud: LocalCloud, lam) -> None:
    hello, error = invoke(lam, cloud.functions[HELLO], {"name": "Ann"})
    assert error is None
    assert hello["module"] == "hello.app"
    assert hello["greeting"] == "hello-from-env, Ann!"
    assert "hello" in json.dumps(hello["layer"])
    echo, error = invoke(lam, cloud.functions[ECHO], {"x": [1, 2]})
    assert error is None
    assert echo["module"] == "echo.app" and echo["echo"] == {"x": [1, 2]}


def test_unknown_function_is_lambdas_404(lam) -> None:
    with pytest.raises(botocore.exceptions.ClientError) as caught:
        lam.invoke(FunctionName="no-such-function", Payload=b"{}")
    assert caught.value.response["Error"]["Code"] == "ResourceNotFoundException"
    assert "Function not found: no-such-function" in str(caught.value)


def test_other_lambda_calls_reach_moto(cloud: LocalCloud, lam) -> None:
    names = {f["FunctionName"] for f in lam.list_functions()["Functions"]}
    assert set(cloud.functions.values()) | {"plldb-manager"} <= names


def test_concurrent_invocations_all_answered(cloud: LocalCloud, lam) -> None:
    calls = [(HELLO if i % 2 else ECHO, i) for i in range(8)]  # 2 environments per function

    def one(call: tuple[str, int]) -> dict:
        return invoke(lam, cloud.functions[call[0]], {"name": str(call[1]), "i": call[1]})[0]

    with ThreadPoolExecutor(len(calls)) as pool:
        results = list(pool.map(one, calls))
    for (logical, i), result in zip(calls, results, strict=True):
        if logical == HELLO:
            assert result["greeting"] == f"hello-from-env, {i}!"
        else:
            assert result["echo"] == {"name": str(i), "i": i}


def test_real_layer_and_wrapper_without_session_pass_through(cloud: LocalCloud, lam) -> None:
    name = cloud.functions[ECHO]
    original = lam.get_function_configuration(FunctionName=name)
    before, _ = invoke(lam, name, {"k": 1})
    wrapper_env = {"Variables": {naming.ENV_EXEC_WRAPPER: naming.WRAPPER_PATH}}
    try:
        lam.update_function_configuration(FunctionName=name, Environment=wrapper_env)
        missing, error = invoke(lam, name, {"k": 1})  # the wrapper without its layer
        assert error == "Unhandled" and missing["errorType"] == "Runtime.InvalidEntrypoint"
        assert missing["errorMessage"].endswith(
            f"Error: fork/exec {naming.WRAPPER_PATH}: No such file or directory"
        )
        layer = cloud.helper_outputs[naming.OUTPUT_LAYER_ARN]
        lam.update_function_configuration(
            FunctionName=name, Environment=wrapper_env, Layers=[layer]
        )
        after, error = invoke(lam, name, {"k": 1})
        assert error is None
        assert after == before
    finally:
        lam.update_function_configuration(
            FunctionName=name,
            Environment=original.get("Environment", {"Variables": {}}),
            Layers=[layer["Arn"] for layer in original.get("Layers", [])],
        )


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "tests.harness.localcloud", *args],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_command_line_start_and_stop_leave_nothing(tmp_path: Path) -> None:
    state_dir = tmp_path / "state"
    started = _run("start", "--state-dir", str(state_dir), "--grace-seconds", "2")
    assert started.returncode == 0, started.stderr
    state = json.loads(started.stdout)
    assert json.loads((state_dir / STATE_FILE).read_text()) == state
    pids = [p["pid"] for p in state["processes"]]
    assert {p["name"] for p in state["processes"]} == {"moto", "gateway", "lambda"}
    env = state["environment"]
    lam = boto3.client(
        "lambda",
        endpoint_url=env["AWS_ENDPOINT_URL_LAMBDA"],
        region_name=REGION,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    function = state["stacks"][TEST_STACK_NAME][ECHO]
    assert invoke(lam, function, {"a": 1})[0]["echo"] == {"a": 1}
    children = [c.pid for pid in pids for c in psutil.Process(pid).children(recursive=True)]
    assert children, "the invocation's container runs under the Lambda front"
    again = _run("start", "--state-dir", str(state_dir))
    assert again.returncode == 1 and "already running" in again.stderr

    stopped = _run("stop", "--state-dir", str(state_dir))
    assert stopped.returncode == 0, stopped.stderr
    deadline = time.monotonic() + 10
    while any(psutil.pid_exists(p) for p in pids + children) and time.monotonic() < deadline:
        time.sleep(0.1)  # orphans are reaped by init, not by us
    assert not [p for p in pids + children if psutil.pid_exists(p)]
    assert not any(Path(folder).exists() for folder in state["temp_dirs"])
    assert not (state_dir / STATE_FILE).exists()


def test_stop_without_a_running_cloud_says_so(tmp_path: Path) -> None:
    result = _run("stop", "--state-dir", str(tmp_path))
    assert result.returncode == 1
    assert f"no local cloud state in {tmp_path} (nothing to stop)" in result.stderr


def test_python_api_stop_leaves_no_process_nor_folder() -> None:
    cloud = LocalCloud(LocalCloudSettings(app_dir=None)).start()
    pids = [p.pid for p in cloud.processes]
    assert cloud._watcher is not None
    pids.append(cloud._watcher.pid)
    folders = [cloud.state_dir, cloud.work_dir]
    cloud.stop()
    assert not [p for p in pids if psutil.pid_exists(p)]
    assert not any(folder.exists() for folder in folders)


OWNER = """
import json, sys
from tests.harness.localcloud import LocalCloud, LocalCloudSettings
cloud = LocalCloud(LocalCloudSettings(app_dir=None)).start()
print(json.dumps({"pids": [p.pid for p in cloud.processes],
                  "folders": [str(cloud.state_dir), str(cloud.work_dir)]}), flush=True)
sys.stdin.read()
"""


def test_a_killed_owner_leaves_nothing_behind() -> None:
    owner = subprocess.Popen(
        [sys.executable, "-c", OWNER],
        cwd=REPO_ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        started = json.loads(owner.stdout.readline())
    finally:
        owner.kill()
        owner.wait(10)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and (
        any(psutil.pid_exists(p) for p in started["pids"])
        or any(Path(f).exists() for f in started["folders"])
    ):
        time.sleep(0.2)
    assert not [p for p in started["pids"] if psutil.pid_exists(p)]
    assert not [f for f in started["folders"] if Path(f).exists()]


def test_a_cloud_that_drops_every_disconnect_leaves_the_session_as_it_was() -> None:
    """LocalCloudSettings.drop_disconnect reaches the gateway: a killed plldb's session stays
    ACTIVE, as after a $disconnect API Gateway lost (only server-side sweeps can end it)."""
    with LocalCloud(LocalCloudSettings(drop_disconnect=1.0, max_containers=1)) as cloud:
        attach = PlldbProcess(["attach"], TEST_STACK_DIR, cloud.environment)
        try:
            attach.wait_for(ATTACHED_MARKER)
        finally:
            attach.kill()
        log = cloud.state_dir / "logs" / "gateway.log"
        wait_until(lambda: "dropped $disconnect" in log.read_text())
        with cloud.environ():
            items = boto3.client("dynamodb").scan(TableName=naming.SESSIONS_TABLE)["Items"]
        sessions = [i for i in items if i[naming.A_KIND]["S"] == naming.KIND_SESSION]
        assert [s[naming.A_STATUS]["S"] for s in sessions] == [naming.ACTIVE]


def test_a_warm_environment_is_retired_before_its_credentials_expire(
    cloud: LocalCloud, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    assert cloud.work_dir is not None
    lifetime = int(REFRESH_MARGIN_S) + 2  # stale for new invocations 2 s after it is issued
    invoker = Invoker(
        cloud.urls["moto"],
        cloud.urls["lambda"],
        ContentStore(cloud.work_dir / "content"),
        tmp_path,
        max_containers=1,
        role_session_seconds=lifetime,
    )
    caplog.set_level(logging.INFO, logger="tests.harness.localcloud_lambda")
    try:
        issued = time.time()
        name = cloud.functions[ECHO]
        assert json.loads(invoker.invoke(name, b'{"n": 1}').body)["echo"] == {"n": 1}
        while time.time() < issued + lifetime - REFRESH_MARGIN_S:  # bounded: 2 s
            time.sleep(0.1)
        assert json.loads(invoker.invoke(name, b'{"n": 2}').body)["echo"] == {"n": 2}
    finally:
        invoker.stop()
    messages = [record.getMessage() for record in caplog.records]
    assert sum(m.startswith("cold start of") for m in messages) == 2
    assert any(m.startswith("retiring an environment") for m in messages)
