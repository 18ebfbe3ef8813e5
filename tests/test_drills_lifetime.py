"""Drill: API Gateway's 2-hour connection limit, shortened to 2 s by the gateway emulator.

`plldb attach` (a real subprocess) keeps serving invocations across several forced
closes: the same session continues (no restore, no re-instrumentation), every invocation
is answered by the local handler, and Ctrl-C still restores the stack.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest

from plldb import naming
from tests.harness.localcloud import TEST_STACK_DIR, LocalCloud, LocalCloudSettings
from tests.harness.localcloud_attach import PlldbProcess

pytestmark = pytest.mark.e2e

LIFETIME_SECONDS = 2.0
DRILL_SECONDS = 9.0  # four lifetimes or more


@pytest.fixture(scope="module")
def cloud() -> Iterator[LocalCloud]:
    settings = LocalCloudSettings(grace_seconds=60, max_lifetime=LIFETIME_SECONDS, max_containers=2)
    with LocalCloud(settings) as started:
        yield started


def sessions(cloud: LocalCloud) -> list[dict]:
    with cloud.environ():
        items = boto3.client("dynamodb").scan(TableName=naming.SESSIONS_TABLE)["Items"]
    return [i for i in items if i[naming.A_KIND]["S"] == naming.KIND_SESSION]


def test_the_session_survives_the_connection_lifetime_limit(cloud: LocalCloud) -> None:
    attach = PlldbProcess(["attach"], Path(TEST_STACK_DIR), cloud.environment)
    try:
        attach.wait_for("attached")
        (session,) = sessions(cloud)
        with cloud.environ():
            lam = boto3.client("lambda")
            answered = []
            started = time.monotonic()
            while time.monotonic() - started < DRILL_SECONDS:
                n = len(answered)
                response = lam.invoke(
                    FunctionName=cloud.functions["EchoFunction"],
                    Payload=json.dumps({"n": n}).encode(),
                )
                assert response.get("FunctionError") is None
                answered.append(json.loads(response["Payload"].read())["echo"])
                time.sleep(0.2)
        assert answered == [{"n": n} for n in range(len(answered))]
        (now,) = sessions(cloud)
        assert now[naming.A_SESSION_ID] == session[naming.A_SESSION_ID]  # same session
        assert now[naming.A_STATUS]["S"] in (naming.ACTIVE, naming.PENDING)
        assert now[naming.A_CONNECTION_ID] != session[naming.A_CONNECTION_ID]  # reconnected
        assert "restored" not in attach.text()  # never restored by the server side meanwhile
        assert attach.interrupt() == 0, attach.text()
        assert "detached: 2 function(s) restored" in attach.text()
    finally:
        attach.kill()
