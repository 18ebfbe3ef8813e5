"""A shared stage on the local cloud: two developers, two IAM users, one deployed stack.

Alice and Bob each run `plldb attach --route header:x-debug-user=<name>` from their own
copy of tests/test_stack, whose HelloFunction says whose copy answered (``module``). The
deployed code says ``hello.app``. Interleaved invocations reach the right laptop; those no
route matches answer from the cloud; a kill -9 of one developer leaves the other's routes
alone; the last one to leave restores the stack byte-identical.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import botocore.config
import botocore.exceptions
import pytest

from plldb import naming
from tests.harness import developer_policy
from tests.harness.iam_audit import expect_refusal
from tests.harness.localcloud import TEST_STACK_DIR, TEST_STACK_NAME, LocalCloud, LocalCloudSettings
from tests.harness.localcloud_attach import ATTACHED_MARKER, PlldbProcess
from tests.harness.localcloud_dap import DapClient
from tests.harness.moto_server import free_port
from tests.harness.principals import Principal, assume_role, create_user
from tests.test_e2e_attach import invoke, snapshot, wait_restored

pytestmark = pytest.mark.e2e

HELLO = "HelloFunction"
GRACE_SECONDS = 3.0
DEPLOYED = "hello.app"
BOUND_SECONDS = 30.0  # generous bound for anything the grace period and a sweep decide


def _copy(root: Path, who: str) -> Path:
    """A copy of the test stack whose HelloFunction answers with ``hello.app@<who>``."""
    copy = root / who / "test_stack"
    shutil.copytree(TEST_STACK_DIR, copy, ignore=shutil.ignore_patterns(".aws-sam", "__pycache__"))
    source = copy / "functions" / "hello" / "app.py"
    source.write_text(source.read_text().replace(f'MODULE = "{DEPLOYED}"', f'MODULE = "{DEPLOYED}@{who}"'))
    return copy.resolve()


@pytest.fixture(scope="module")
def apps(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("shared")
    return {who: _copy(root, who) for who in ("alice", "bob")}


@pytest.fixture(scope="module")
def stage_cloud() -> Iterator[LocalCloud]:
    with LocalCloud(LocalCloudSettings(grace_seconds=GRACE_SECONDS)) as started, started.environ():
        yield started


@pytest.fixture(scope="module")
def bob(stage_cloud: LocalCloud) -> Principal:
    """A second IAM user with the same policy as the local cloud's developer (Alice)."""
    policy = developer_policy.narrowed(stage_cloud.debuggable())
    return create_user(boto3.client("iam"), "plldb-developer-bob", policy)


@pytest.fixture(scope="module")
def environments(stage_cloud: LocalCloud, bob: Principal) -> dict[str, dict[str, str]]:
    return {"alice": stage_cloud.environment, "bob": {**stage_cloud.environment, **bob.credentials}}


@pytest.fixture(scope="module")
def lam(stage_cloud: LocalCloud) -> Any:
    return boto3.client("lambda", config=botocore.config.Config(read_timeout=120))


@pytest.fixture
def developers(apps: dict[str, Path], environments: dict[str, dict[str, str]]) -> Iterator[Callable[..., PlldbProcess]]:
    """Start ``plldb <args>`` as a developer in their copy; every one still running is
    Ctrl-C'd at the end."""
    started: list[PlldbProcess] = []

    def start(who: str, *args: str, wait: bool = True) -> PlldbProcess:
        plldb = PlldbProcess(list(args), apps[who], environments[who])
        started.append(plldb)
        if wait:
            plldb.wait_for(ATTACHED_MARKER)
        return plldb

    yield start
    for plldb in started:
        if plldb.process.poll() is None:
            plldb.interrupt()


def _answered_by(lam: Any, cloud: LocalCloud, user: str | None) -> str:
    """Who answered an API Gateway-shaped invocation carrying ``x-debug-user: <user>``."""
    headers = {"x-debug-user": user} if user else {"accept": "*/*"}
    result, error = invoke(lam, cloud, HELLO, {"headers": headers, "name": user or "nobody"})
    assert error is None, result
    return str(result["module"])


def test_two_developers_each_get_their_routed_invocations_and_the_rest_run_in_the_cloud(
    stage_cloud: LocalCloud, lam: Any, developers: Callable[..., PlldbProcess]
) -> None:
    before = snapshot(stage_cloud, lam)
    alice = developers("alice", "attach", "--route", "header:x-debug-user=alice")
    assert 'send the header "x-debug-user: alice"' in " ".join(alice.text().split()), alice.text()
    bob = developers("bob", "attach", "--route", "header:X-Debug-User=bob")
    for _ in range(3):  # interleaved
        assert _answered_by(lam, stage_cloud, "alice") == f"{DEPLOYED}@alice"
        assert _answered_by(lam, stage_cloud, "bob") == f"{DEPLOYED}@bob"
        assert _answered_by(lam, stage_cloud, None) == DEPLOYED
        assert _answered_by(lam, stage_cloud, "carol") == DEPLOYED
    status = developers("alice", "status", "--stack-name", TEST_STACK_NAME, wait=False)
    assert status.wait(60) == 0, status.text()
    flat = " ".join(status.text().split())
    assert "header:x-debug-user=alice" in flat and "header:x-debug-user=bob" in flat, status.text()
    assert "plldb-developer-bob" in flat, status.text()

    assert alice.interrupt() == 0, alice.text()
    assert "left the shared stage" in " ".join(alice.text().split()), alice.text()
    assert snapshot(stage_cloud, lam) != before  # Bob still debugs: still instrumented
    assert _answered_by(lam, stage_cloud, "bob") == f"{DEPLOYED}@bob"
    assert _answered_by(lam, stage_cloud, "alice") == DEPLOYED
    assert bob.interrupt() == 0, bob.text()
    assert "function(s) restored" in bob.text(), bob.text()
    assert snapshot(stage_cloud, lam) == before
    tags = lam.list_tags(Resource=lam.get_function_configuration(
        FunctionName=stage_cloud.functions[HELLO])["FunctionArn"])["Tags"]
    assert not [k for k in tags if k.startswith("plldb:")], tags


def test_kill_9_of_one_developer_affects_only_their_routes(
    stage_cloud: LocalCloud, lam: Any, developers: Callable[..., PlldbProcess]
) -> None:
    before = snapshot(stage_cloud, lam)
    alice = developers("alice", "attach", "--route", "header:x-debug-user=alice")
    bob = developers("bob", "attach", "--route", "header:x-debug-user=bob")
    assert _answered_by(lam, stage_cloud, "alice") == f"{DEPLOYED}@alice"
    alice.kill()
    started = time.monotonic()
    while _answered_by(lam, stage_cloud, "alice") != DEPLOYED:  # within the grace period
        assert time.monotonic() - started < BOUND_SECONDS
    fell_back = time.monotonic() - started
    print(f"alice's route fell back to the cloud {fell_back:.1f} s after kill -9 (grace {GRACE_SECONDS} s)")
    assert fell_back <= GRACE_SECONDS + 10
    assert _answered_by(lam, stage_cloud, "bob") == f"{DEPLOYED}@bob"
    assert bob.interrupt() == 0, bob.text()
    wait_restored(stage_cloud, lam, before, timeout=BOUND_SECONDS)


def test_a_whole_stack_attach_and_a_routed_one_refuse_each_other(
    stage_cloud: LocalCloud, lam: Any, developers: Callable[..., PlldbProcess]
) -> None:
    before = snapshot(stage_cloud, lam)
    alice = developers("alice", "attach", "--route", "header:x-debug-user=alice")
    whole = developers("bob", "attach", wait=False)
    assert whole.wait(90) != 0
    flat = " ".join(whole.text().split())
    assert f"stack '{TEST_STACK_NAME}' is a shared stage: 1 live session(s) with routes" in flat, whole.text()
    assert "attach with --route to share it" in flat
    assert _answered_by(lam, stage_cloud, "alice") == f"{DEPLOYED}@alice"
    assert alice.interrupt() == 0, alice.text()
    assert snapshot(stage_cloud, lam) == before

    bob = developers("bob", "attach")
    routed = developers("alice", "attach", "--route", "header:x-debug-user=alice", wait=False)
    assert routed.wait(90) != 0
    assert "is already attached by" in routed.text() and "--route" in routed.text(), routed.text()
    assert bob.interrupt() == 0, bob.text()
    assert snapshot(stage_cloud, lam) == before


@pytest.mark.parametrize(("route", "message"), [
    ("cookie:x=1", "route 'cookie:x=1': unknown kind 'cookie'. Accepted forms: header:NAME=VALUE"),
    ("header:x-debug-user", "header:NAME=VALUE"),
])
def test_a_malformed_route_is_refused_before_anything_changes(
    stage_cloud: LocalCloud, lam: Any, developers: Callable[..., PlldbProcess], route: str, message: str
) -> None:
    before = snapshot(stage_cloud, lam)
    plldb = developers("alice", "attach", "--route", route, wait=False)
    assert plldb.wait(60) == 2, plldb.text()
    assert message in " ".join(plldb.text().split()), plldb.text()
    assert snapshot(stage_cloud, lam) == before


def test_mirror_answers_from_the_cloud_while_the_local_run_sits_at_a_breakpoint(
    stage_cloud: LocalCloud, lam: Any, developers: Callable[..., PlldbProcess], apps: dict[str, Path]
) -> None:
    """Alice mirrors the stage with debugpy: the caller gets the deployed answer at once,
    while her local copy is stopped at a breakpoint; continuing shows the difference."""
    before = snapshot(stage_cloud, lam)
    port = free_port()
    alice = developers("alice", "attach", "--mirror", "--debugpy", "--debugpy-port", str(port))
    source = apps["alice"] / "functions" / "hello" / "app.py"
    line = source.read_text().splitlines().index("    return {") + 1
    debugger = DapClient("127.0.0.1", port)
    try:
        assert debugger.attach({source: [line]})[source][0]["verified"]
        assert _answered_by(lam, stage_cloud, "mirrored") == DEPLOYED  # not held by the breakpoint
        stopped = debugger.wait_event("stopped", timeout=60)
        assert stopped["reason"] == "breakpoint"
        frame = debugger.top_frame(stopped["threadId"])
        assert Path(frame["source"]["path"]).resolve() == source
        assert _answered_by(lam, stage_cloud, "again") == DEPLOYED  # still answered while stopped
        debugger.request("continue", threadId=stopped["threadId"])
        second = debugger.wait_event("stopped", timeout=60)  # the second copy reaches it too
        debugger.request("continue", threadId=second["threadId"])
    finally:
        debugger.close()
    alice.wait_for("mirror HelloFunction")
    flat = " ".join(alice.text().split())
    assert "changed" in flat and f"{DEPLOYED}@alice" in flat, alice.text()
    assert alice.interrupt() == 0, alice.text()
    assert snapshot(stage_cloud, lam) == before


def test_bob_holding_alices_route_gets_nothing_she_attached_for_first(
    stage_cloud: LocalCloud, lam: Any, developers: Callable[..., PlldbProcess]
) -> None:
    developers("alice", "attach", "--route", "header:x-debug-user=alice")
    developers("bob", "attach", "--route", "header:x-debug-user=alice", "--route", "header:x-debug-user=bob")
    for _ in range(3):
        assert _answered_by(lam, stage_cloud, "alice") == f"{DEPLOYED}@alice"
        assert _answered_by(lam, stage_cloud, "bob") == f"{DEPLOYED}@bob"


def test_bob_cannot_write_the_route_table_with_what_his_session_holds(
    stage_cloud: LocalCloud, lam: Any, developers: Callable[..., PlldbProcess], bob: Principal
) -> None:
    """As himself and as the debugger role (what his attach assumes), Bob tries to remove
    Alice's entry, add one that takes everything, and replace the table: all refused."""
    developers("alice", "attach", "--route", "header:x-debug-user=alice")
    key = {naming.A_SESSION_ID: {"S": naming.stack_lock_key(TEST_STACK_NAME)}}
    admin = boto3.client("dynamodb")
    before = admin.get_item(TableName=naming.SESSIONS_TABLE, Key=key, ConsistentRead=True)["Item"]
    [alice_session] = before[naming.A_ROUTES]["M"]
    debugger_role = stage_cloud.helper_outputs[naming.OUTPUT_DEBUGGER_ROLE]
    expect_refusal("dynamodb:*Item", "*plldb-developer-bob*", why="Bob writes the route table")
    expect_refusal("dynamodb:*Item", "*:role/PLLDBDebuggerRole-*", why="Bob writes the route table as the debugger role")
    everything = {"M": {naming.R_ROUTES: {"L": []}, naming.R_AT: {"N": "0"},
                        naming.R_BY: {"S": bob.arn}, naming.R_MIRROR: {"BOOL": False}}}
    for who in (bob, assume_role(bob, debugger_role, "bob")):
        dynamodb = who.client("dynamodb")
        for attempt in (
            lambda: dynamodb.update_item(TableName=naming.SESSIONS_TABLE, Key=key,  # noqa: B023
                                         UpdateExpression="REMOVE #r.#s",
                                         ExpressionAttributeNames={"#r": naming.A_ROUTES, "#s": alice_session}),
            lambda: dynamodb.update_item(TableName=naming.SESSIONS_TABLE, Key=key,  # noqa: B023
                                         UpdateExpression="SET #r.#s = :e",
                                         ExpressionAttributeNames={"#r": naming.A_ROUTES, "#s": "bob-everything"},
                                         ExpressionAttributeValues={":e": everything}),
            lambda: dynamodb.put_item(TableName=naming.SESSIONS_TABLE, Item={**key}),  # noqa: B023
        ):
            with pytest.raises(botocore.exceptions.ClientError) as refused:
                attempt()
            assert refused.value.response["Error"]["Code"] in ("AccessDenied", "AccessDeniedException")
    assert admin.get_item(TableName=naming.SESSIONS_TABLE, Key=key, ConsistentRead=True)["Item"] == before
    assert _answered_by(lam, stage_cloud, "alice") == f"{DEPLOYED}@alice"
    assert _answered_by(lam, stage_cloud, None) == DEPLOYED


def test_detach_after_a_crash_keeps_a_colleagues_session_and_the_last_one_restores(
    stage_cloud: LocalCloud, lam: Any, developers: Callable[..., PlldbProcess]
) -> None:
    before = snapshot(stage_cloud, lam)
    alice = developers("alice", "attach", "--route", "header:x-debug-user=alice")
    bob = developers("bob", "attach", "--route", "header:x-debug-user=bob")
    alice.kill()
    detach = developers("alice", "detach", "--stack-name", TEST_STACK_NAME, wait=False)
    assert detach.wait(90) == 0, detach.text()
    flat = " ".join(detach.text().split())
    assert (f"{TEST_STACK_NAME} is a shared stage: the live sessions of "
            "arn:aws:iam::123456789012:user/plldb-developer-bob keep their routes") in flat, detach.text()
    assert _answered_by(lam, stage_cloud, "bob") == f"{DEPLOYED}@bob"
    bob.kill()
    detach = developers("bob", "detach", "--stack-name", TEST_STACK_NAME, wait=False)
    assert detach.wait(90) == 0, detach.text()
    assert "restored plldb-test-stack-HelloFunction" in detach.text(), detach.text()
    assert snapshot(stage_cloud, lam) == before
