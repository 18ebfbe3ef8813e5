"""Drill: `kill -9` of `plldb` at random points of attach and of detach.

Whatever the moment (before the session exists, while connecting, while the manager
instruments, right after Ctrl-C while it restores), the stack must end byte-identical to
before (configuration minus the fields every update changes, role policies) within the
grace period, with no instrumentation record left: the helper stack's `$disconnect` path
restores what a dead client cannot.

Scale with PLLDB_DRILL_KILLS (kills of each kind, default 6) and PLLDB_DRILL_SEED.
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from benchmarks import harness
from plldb import naming
from tests.harness.localcloud import LocalCloud, LocalCloudSettings

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]

KILLS = int(os.environ.get("PLLDB_DRILL_KILLS", "6"))
SEED = int(os.environ.get("PLLDB_DRILL_SEED", str(int(time.time()))))
GRACE_SECONDS = 2.0
SETTLE_SECONDS = GRACE_SECONDS + 30  # grace, then the manager's restore on a busy machine
STACK = "plldb-drill-kill"


@pytest.fixture(scope="module")
def cloud() -> Iterator[LocalCloud]:
    settings = LocalCloudSettings(app_dir=None, grace_seconds=GRACE_SECONDS, max_containers=1)
    with LocalCloud(settings) as started:
        yield started


@pytest.fixture(scope="module")
def stack(cloud: LocalCloud, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str]]:
    app_dir = tmp_path_factory.mktemp("kill-app")
    sources = {f"Function{i}": harness.TRIVIAL_HANDLER for i in range(1, 6)}
    harness.write_app(app_dir, sources, STACK)
    return app_dir, sorted(harness.deploy_app(cloud, app_dir, STACK).values())


def records(clients: harness.Clients) -> list[str]:
    """Instrumentation records left in PLLDBSessions (there must be none once restored)."""
    items = clients.dynamodb.scan(TableName=naming.SESSIONS_TABLE, ConsistentRead=True)["Items"]
    return [
        item[naming.A_SESSION_ID]["S"]
        for item in items
        if item.get(naming.A_KIND, {}).get("S") == naming.KIND_INSTRUMENTATION
    ]


def wait_restored(clients: harness.Clients, names: list[str], before: str, what: str) -> float:
    """Seconds until the stack is as before with no record left; fails after the bound."""
    started = time.monotonic()
    while True:
        if harness.stack_state(clients, names) == before and not records(clients):
            return time.monotonic() - started
        if time.monotonic() - started > SETTLE_SECONDS:
            raise AssertionError(
                f"seed {SEED}: {what}: not restored {SETTLE_SECONDS:.0f}s after the kill "
                f"(records left: {records(clients)})"
            )
        time.sleep(0.25)


def test_kill_9_during_attach_always_restores(cloud: LocalCloud, stack) -> None:
    app_dir, names = stack
    clients = harness.Clients(cloud)
    before = harness.stack_state(clients, names)
    with harness.PlldbProcess(cloud, app_dir, "--force") as plldb:  # how long attach takes
        attach_seconds = plldb.wait_attached()
    wait_restored(clients, names, before, "after a normal detach")
    chooser = random.Random(SEED)
    for run in range(KILLS):
        delay = chooser.uniform(0, attach_seconds * 1.1)
        plldb = harness.PlldbProcess(cloud, app_dir, "--force")
        time.sleep(delay)
        reached = plldb.text().splitlines()[-1:] or ["(nothing printed)"]
        plldb.kill()
        wait_restored(clients, names, before, f"kill {run} at {delay:.2f}s after '{reached[0]}'")


def test_kill_9_during_detach_always_restores(cloud: LocalCloud, stack) -> None:
    app_dir, names = stack
    clients = harness.Clients(cloud)
    before = harness.stack_state(clients, names)
    chooser = random.Random(SEED + 1)
    for run in range(KILLS):
        plldb = harness.PlldbProcess(cloud, app_dir, "--force")
        plldb.wait_attached()
        delay = chooser.uniform(0, 0.8)  # a detach of 5 functions takes about half a second
        plldb.process.send_signal(2)  # Ctrl-C: detach starts
        time.sleep(delay)
        plldb.kill()
        wait_restored(clients, names, before, f"kill {run} {delay:.2f}s into detach")
