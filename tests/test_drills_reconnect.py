"""Drill: invocations while the WebSocket connection is dropped at random moments.

The local cloud runs a generated stack of two functions whose handler appends each run to
an execution log; `plldb attach` (a real subprocess) serves them. Invocations go through
Lambda's Invoke API (8 at a time) while a dropper closes plldb's connection from the server
side (the management API's DeleteConnection) at random moments. Every invocation must get
exactly one answer, its own, and every handler must have run exactly once: none lost, none
duplicated; the session survives.

Scale with PLLDB_DRILL_INVOCATIONS (default 1000: about 40 drops) and PLLDB_DRILL_SEED.
"""

from __future__ import annotations

import json
import os
import random
import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import boto3
import pytest

from benchmarks import harness
from plldb import naming
from tests.harness.gateway_setup import wait_until
from tests.harness.localcloud import LocalCloud, LocalCloudSettings

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]

INVOCATIONS = int(os.environ.get("PLLDB_DRILL_INVOCATIONS", "1000"))
SEED = int(os.environ.get("PLLDB_DRILL_SEED", str(int(time.time()))))
CONCURRENCY = 8
STACK = "plldb-drill-reconnect"


@pytest.fixture(scope="module")
def cloud() -> Iterator[LocalCloud]:
    # A grace period far longer than a reconnect: a drop must never restore the stack.
    with LocalCloud(LocalCloudSettings(app_dir=None, grace_seconds=60, max_containers=4)) as c:
        yield c


def drop_connection(cloud: LocalCloud, connection_id: str) -> bool:
    """DeleteConnection through the gateway emulator's management API (server-side close),
    signed with the harness's credentials: like API Gateway, it refuses unsigned calls."""
    env = cloud.harness_environment
    api = boto3.client(
        "apigatewaymanagementapi",
        endpoint_url=cloud.urls["management"],
        region_name=env["AWS_REGION"],
        aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
        aws_session_token=env["AWS_SESSION_TOKEN"],
    )
    try:
        api.delete_connection(ConnectionId=connection_id)
    except api.exceptions.GoneException:  # already gone (plldb is reconnecting)
        return False
    return True


class Dropper:
    """Closes plldb's current connection at random moments until stopped.

    A drop comes after a random number (5 to 45) of answered invocations plus a random
    delay, so it lands at any phase of the invocations in flight, and the drill's length is
    bounded by the number of invocations, not by how long each drop stalls them.
    """

    def __init__(self, cloud: LocalCloud, clients: harness.Clients, session_id: str) -> None:
        self.cloud, self.clients, self.session_id = cloud, clients, session_id
        self.random = random.Random(SEED)
        self.dropped: list[str] = []
        self.answered = 0
        self._changed = threading.Condition()
        self._stop = False
        self._thread = threading.Thread(target=self._run, daemon=True, name="dropper")

    def count_answer(self) -> None:
        with self._changed:
            self.answered += 1
            self._changed.notify_all()

    def _run(self) -> None:
        next_at = self.random.randint(5, 45)
        while True:
            with self._changed:
                self._changed.wait_for(lambda n=next_at: self._stop or self.answered >= n)
                if self._stop:
                    return
            time.sleep(self.random.uniform(0, 0.15))
            connection_id = self.clients.connection_id(self.session_id)
            if connection_id and drop_connection(self.cloud, connection_id):
                self.dropped.append(connection_id)
            next_at = self.answered + self.random.randint(5, 45)

    def __enter__(self) -> Dropper:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        with self._changed:
            self._stop = True
            self._changed.notify_all()
        self._thread.join(15)


def unanswered(clients: harness.Clients, output: str) -> str:
    """Diagnosis of lost invocations: their request items and what plldb logged of them."""
    items = clients.dynamodb.scan(TableName=naming.DEBUGGER_TABLE)["Items"]
    lines = []
    for item in items:
        if item[naming.A_STATUS]["S"] == naming.REQUEST_RESPONDED:
            continue
        request_id = item[naming.A_REQUEST_ID]["S"]
        lines.append(f"request {request_id}: {item[naming.A_STATUS]['S']}")
        lines += [f"  plldb: {line}" for line in output.splitlines() if request_id in line]
    return "\n".join(lines)


def test_every_invocation_answered_exactly_once_through_random_drops(
    cloud: LocalCloud, tmp_path: Path
) -> None:
    execution_log = tmp_path / "executions.log"
    source = harness.RECORDING_HANDLER.format(log=str(execution_log))
    app = harness.write_app(tmp_path / "app", {"First": source, "Second": source}, STACK)
    functions = harness.deploy_app(cloud, app, STACK)
    names = sorted(functions.values())
    clients = harness.Clients(cloud)
    before = harness.stack_state(clients, names)

    def invoke(n: int) -> tuple[int, str, dict, str | None]:
        name = names[n % 2]
        try:
            body, error = clients.invoke(name, json.dumps({"n": n}).encode())
        except Exception as exc:  # noqa: BLE001 - reported with the diagnosis below
            return n, name, {"client error": repr(exc)}, "NoAnswer"
        finally:
            dropper.count_answer()
        return n, name, json.loads(body), error

    with harness.PlldbProcess(cloud, app, verbose=True) as plldb:
        plldb.wait_attached()
        session_id = plldb.session_id()
        dropper = Dropper(cloud, clients, session_id)
        with dropper, ThreadPoolExecutor(CONCURRENCY) as pool:
            results = list(pool.map(invoke, range(INVOCATIONS)))
        assert plldb.process.poll() is None, plldb.text()[-3000:]
        assert all(harness.is_instrumented(clients, name) for name in names)
        # the last drop may have landed just before the last answer: the reconnect follows
        wait_until(
            lambda: clients.session(session_id)[naming.A_STATUS]["S"] == naming.ACTIVE,
            timeout=20,
        )
        plldb.detach()
        output = plldb.text()

    failures = [(n, answer) for n, _, answer, error in results if error]
    assert not failures, f"seed {SEED}: {failures[:5]}\n{unanswered(clients, output)}"
    wrong = [(n, name, a) for n, name, a, _ in results if a != {"n": n, "function": name}]
    assert not wrong, f"seed {SEED}: answers not their own: {wrong[:5]}"
    runs = Counter(int(line.split()[0]) for line in execution_log.read_text().splitlines())
    assert set(runs) == set(range(INVOCATIONS)), f"seed {SEED}: lost runs"
    assert not [n for n, count in runs.items() if count != 1], f"seed {SEED}: duplicated runs"
    assert len(dropper.dropped) >= INVOCATIONS // 50, "the drill must actually drop the connection"
    assert output.count("reconnected (") >= len(dropper.dropped) - 1
    assert harness.stack_state(clients, names) == before
