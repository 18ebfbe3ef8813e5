"""Drill: `kill -9` of `plldb` while every `$disconnect` is lost (API Gateway delivers it on a
best-effort basis). Without `$disconnect` nothing starts the grace path; the helper stack's
scheduled sweep (the manager's ``sweep`` action, which EventBridge runs every 5 minutes in
AWS and this drill runs by hand, as the schedule would) must still end with the stack
byte-identical and no instrumentation record left.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import pytest

from benchmarks import harness
from tests.harness.localcloud import LocalCloud, LocalCloudSettings
from tests.test_drills_kill import records

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]

GRACE_SECONDS = 2.0
STACK = "plldb-drill-lost-disconnect"


@pytest.fixture(scope="module")
def cloud() -> Iterator[LocalCloud]:
    settings = LocalCloudSettings(app_dir=None, grace_seconds=GRACE_SECONDS, max_containers=1,
                                  drop_disconnect=1.0)
    with LocalCloud(settings) as started:
        yield started


def sweep(clients: harness.Clients) -> dict:
    """What the schedule does: invoke the manager with ``{"action": "sweep"}``."""
    payload, error = clients.invoke("plldb-manager", json.dumps({"action": "sweep"}).encode())
    assert error is None, payload
    return json.loads(payload)


def test_kill_9_with_every_disconnect_lost_is_restored_by_the_sweep(
    cloud: LocalCloud, tmp_path
) -> None:
    app_dir = tmp_path / "app"
    harness.write_app(app_dir, {f"Function{i}": harness.TRIVIAL_HANDLER for i in (1, 2)}, STACK)
    names = sorted(harness.deploy_app(cloud, app_dir, STACK).values())
    clients = harness.Clients(cloud)
    before = harness.stack_state(clients, names)
    with harness.PlldbProcess(cloud, app_dir) as plldb:
        plldb.wait_attached()
        plldb.kill()
    time.sleep(GRACE_SECONDS + 3)  # what $disconnect would have started is long over
    assert harness.stack_state(clients, names) != before  # nothing restored it
    assert len(records(clients)) == len(names)

    deadline = time.monotonic() + 60
    sweeps = []
    while records(clients):
        assert time.monotonic() < deadline, f"not restored after {len(sweeps)} sweeps: {sweeps}"
        sweeps.append(sweep(clients))
        time.sleep(1.0)

    assert harness.stack_state(clients, names) == before
    assert sorted(sweeps[-1]["restored"]) == names
    (reason,) = sweeps[-1]["sessions"].values()
    assert "past the 2 s grace period" in reason
