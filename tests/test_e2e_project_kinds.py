"""`plldb attach` in an AWS CDK app and in a Serverless Framework service, on the local cloud.

The fixture's synthesized (CDK) or packaged (Serverless) template is deployed as its stack,
each function's code zipped from what the tool uploads (the CDK asset folder, the service
folder): invoked without plldb, a handler's ``__file__`` is the deployed copy's. `plldb
attach` runs in the fixture folder with no --stack-name (the stack name comes from the
project); an invocation through Lambda's Invoke then answers with the ``__file__`` of the
project's **source** file (in the CDK app, after stopping at a breakpoint set by that file's
path), and Ctrl-C restores every function as it was.
"""

from __future__ import annotations

import json
import os
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from plldb.capture import records
from tests.harness.localcloud import LocalCloud, LocalCloudSettings
from tests.harness.localcloud_attach import ATTACHED_MARKER, PlldbProcess
from tests.harness.localcloud_dap import DapClient
from tests.harness.moto_server import free_port

pytestmark = pytest.mark.e2e

FIXTURES = Path(__file__).parent / "fixtures"
GRACE_SECONDS = 3.0
CONFIG_KEYS = ("Handler", "Runtime", "Timeout", "MemorySize", "Role", "Environment", "Layers")


def cdk_asset_folders(template: Path) -> dict[str, Path]:
    """What `cdk deploy` uploads for each function: its ``aws:asset:path`` folder."""
    resources = json.loads(template.read_text())["Resources"]
    return {
        name: template.parent / resource["Metadata"]["aws:asset:path"]
        for name, resource in resources.items()
        if resource["Type"] == "AWS::Lambda::Function"
    }


@pytest.fixture
def cdk_app(tmp_path: Path) -> Path:
    """A copy of the CDK fixture synthesized after its sources, except the app file
    (app.py), edited since: the stale warning names it."""
    root = tmp_path / "cdk_app"
    shutil.copytree(FIXTURES / "cdk_app", root)
    for path in root.rglob("*"):
        os.utime(path, (1_000_000, 1_000_000))
    os.utime(root / "cdk.out" / "manifest.json", (2_000_000, 2_000_000))
    os.utime(root / "app.py", (3_000_000, 3_000_000))
    return root.resolve()


@pytest.fixture
def serverless_service(tmp_path: Path) -> Path:
    root = tmp_path / "serverless_service"
    shutil.copytree(FIXTURES / "serverless_service", root)
    return root.resolve()


def start_cloud(template: Path, code: dict[str, Path], stack_name: str) -> LocalCloud:
    settings = LocalCloudSettings(grace_seconds=GRACE_SECONDS, app_dir=None, app_template=template,
                                  app_code=code, app_stack_name=stack_name)
    return LocalCloud(settings)


@pytest.fixture
def attached() -> Iterator[Any]:
    """`plldb attach <args>` in a folder, waited for until attached; Ctrl-C'd at the end."""
    started: list[PlldbProcess] = []

    def start(cloud: LocalCloud, folder: Path, *args: str) -> PlldbProcess:
        plldb = PlldbProcess(["attach", *args], folder, cloud.environment)
        started.append(plldb)
        plldb.wait_for(ATTACHED_MARKER)
        return plldb

    yield start
    for plldb in started:
        plldb.interrupt()


def configurations(cloud: LocalCloud) -> dict[str, dict[str, Any]]:
    lam = boto3.client("lambda")
    return {
        name: {k: v for k, v in lam.get_function_configuration(FunctionName=name).items() if k in CONFIG_KEYS}
        for name in cloud.functions.values()
    }


def invoke(cloud: LocalCloud, logical_id: str, event: Any) -> Any:
    response = boto3.client("lambda").invoke(FunctionName=cloud.functions[logical_id], Payload=json.dumps(event))
    assert "FunctionError" not in response, response
    return json.loads(response["Payload"].read())


def invoke_through_breakpoint(cloud: LocalCloud, port: int, source: Path, logical_id: str, event: Any) -> Any:
    """Invoke with a breakpoint on the ``return`` line of ``source`` (set by path, as an IDE
    does): it must stop there, in that file, before the answer comes."""
    line = next(i for i, text in enumerate(source.read_text().splitlines(), 1) if "return" in text)
    debugger = DapClient("127.0.0.1", port)
    outcome: dict[str, Any] = {}
    try:
        assert debugger.attach({source: [line]})[source][0]["verified"]
        invocation = threading.Thread(target=lambda: outcome.update(result=invoke(cloud, logical_id, event)))
        invocation.start()
        stopped = debugger.wait_event("stopped", timeout=60)
        frame = debugger.top_frame(stopped["threadId"])
        assert (Path(frame["source"]["path"]).resolve(), frame["line"]) == (source, line)
        debugger.request("continue", threadId=stopped["threadId"])
        invocation.join(60)
    finally:
        debugger.close()
    return outcome["result"]


def detach(plldb: PlldbProcess, cloud: LocalCloud, before: dict[str, Any]) -> None:
    assert plldb.interrupt() == 0, plldb.text()
    assert configurations(cloud) == before


def test_attach_in_a_cdk_app_runs_the_source_folders(cdk_app: Path, attached: Any) -> None:
    template = cdk_app / "cdk.out" / "CdkAppStack.template.json"
    with start_cloud(template, cdk_asset_folders(template), "cdk-app-dev") as cloud, cloud.environ():
        before = configurations(cloud)
        port = free_port()
        plldb = attached(cloud, cdk_app, "--debugpy", "--debugpy-port", str(port))
        text = plldb.text()
        assert ("AWS CDK app (read cdk.out/manifest.json, cdk.out/CdkAppStack.template.json, "
                "cdk.out/CdkAppStackWorkersB4F63023.nested.template.json): stack cdk-app-dev") in text
        assert "is older than the source (app.py changed after the last synth)" in text
        source = cdk_app / "lambda" / "index.py"
        assert invoke_through_breakpoint(cloud, port, source, "PlainFunction82E70C5A", {"n": 1}) == {
            "plain": True, "event": {"n": 1}, "file": str(source)}
        assert invoke(cloud, "OrdersFunctionC129706A", {}) == {
            "orders": "from the bundled asset", "file": str(cdk_app / "functions" / "orders" / "app.py")}
        detach(plldb, cloud, before)
        assert [r["event"] for r in records.load_records(cdk_app / ".plldb", "PlainFunction82E70C5A")] == [{"n": 1}]
        deployed = invoke(cloud, "PlainFunction82E70C5A", {})["file"]
        assert not deployed.startswith(str(cdk_app)), deployed
        again = PlldbProcess(["detach"], cdk_app, cloud.environment)
        assert again.wait(60) == 0, again.text()
        assert "nothing to restore: cdk-app-dev is not instrumented" in again.text()


def test_attach_in_a_serverless_service_runs_the_service_folder(
    serverless_service: Path, attached: Any
) -> None:
    root = serverless_service
    template = root / ".serverless" / "cloudformation-template-update-stack.json"
    code = {"HelloLambdaFunction": root, "ListDashitemsLambdaFunction": root,
            "OrdersUnderscoresyncLambdaFunction": root / "orders_module"}
    with start_cloud(template, code, "shop-api-dev") as cloud, cloud.environ():
        before = configurations(cloud)
        plldb = attached(cloud, root, "--stage", "dev")
        assert ("Serverless Framework service (read serverless.yml, "
                ".serverless/cloudformation-template-update-stack.json): stack shop-api-dev") in plldb.text()
        assert invoke(cloud, "HelloLambdaFunction", {"n": 2}) == {
            "hello": {"n": 2}, "file": str(root / "handler.py")}
        assert invoke(cloud, "OrdersUnderscoresyncLambdaFunction", {}) == {
            "orders": "synced", "file": str(root / "orders_module" / "app.py")}
        detach(plldb, cloud, before)
        assert [r["event"] for r in records.load_records(root / ".plldb", "HelloLambdaFunction")] == [{"n": 2}]
