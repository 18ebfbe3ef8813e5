"""Hermetic replay end to end (issue 23): `plldb attach` on the local cloud captures a
handler's AWS calls; with the local cloud stopped, `plldb replay` and the exported pytest
answer them from the capture.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from plldb.capture import records
from tests.harness.gateway_setup import wait_until
from tests.harness.localcloud import LocalCloud, LocalCloudSettings
from tests.harness.localcloud_attach import ATTACHED_MARKER, PlldbProcess
from tests.test_hermetic import API_KEY, HERMETIC, edit, make_state, replay, run_exported
from tests.test_invoke import plldb

pytestmark = pytest.mark.e2e

STACK = "plldb-hermetic"


@pytest.fixture
def app(tmp_path: Path) -> Path:
    return Path(shutil.copytree(HERMETIC, tmp_path / "orders")).resolve()


@pytest.fixture
def captured(app: Path) -> Iterator[list[dict[str, Any]]]:
    """Two invocations through `plldb attach` on the local cloud, captured; the cloud is
    stopped when the test starts."""
    settings = LocalCloudSettings(grace_seconds=3.0, app_dir=app, app_stack_name=STACK)
    with LocalCloud(settings) as cloud, cloud.environ():
        make_state(cloud.administrator().client)
        plldb_process = PlldbProcess(["attach", "--stack-name", STACK], app, cloud.environment)
        try:
            plldb_process.wait_for(ATTACHED_MARKER)
            lam = boto3.client("lambda")
            for key in ("o1", "o2"):
                response = lam.invoke(FunctionName=cloud.functions["OrdersFunction"],
                                      Payload=json.dumps({"id": key}))
                assert "FunctionError" not in response, response["Payload"].read()
            folder = app / ".plldb"
            wait_until(lambda: len(records.load_records(folder)) == 2)
        finally:
            assert plldb_process.interrupt() == 0, plldb_process.text()
    yield records.load_records(app / ".plldb")


def test_attach_captures_the_calls_and_replays_them_with_the_cloud_stopped(app: Path, captured: list) -> None:
    first, second = captured
    assert [(c["service"], c["operation"]) for c in first["aws_calls"]] == [
        ("secretsmanager", "GetSecretValue"), ("dynamodb", "GetItem"), ("s3", "PutObject")]
    assert second["aws_calls"][0]["phase"] == "init", "the warm invocation carries the module load's calls"
    for path in (app / ".plldb").rglob("*.json"):
        assert API_KEY not in path.read_text()
    for record in captured:
        same = replay(app, record["id"])
        assert same.returncode == 0, same.stdout + same.stderr
        assert "OrdersFunction: same (AWS calls answered from the capture)" in same.stdout
    target = app / "tests" / "test_captured_orders.py"
    exported = plldb(["events", "export", first["id"][:8], second["id"][:8], "--pytest", str(target)], app)
    assert exported.returncode == 0, exported.stderr
    passed = run_exported(target)
    assert passed.returncode == 0 and "2 passed" in passed.stdout, passed.stdout
    edit(app, '"total": int(item["total"])})', '"total": int(item["total"]), "v": 2})')
    changed = replay(app, first["id"])
    assert changed.returncode == 1 and "~ different parameters: s3:PutObject" in changed.stdout
    assert "--- captured" not in changed.stdout, "the result is the same; the write is not"
