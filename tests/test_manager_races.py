"""The manager against AWS's timing: posts before ``$connect`` completes, restores that race.

* API Gateway: "Until execution of the integration associated with the $connect route is
  completed, the upgrade request is pending and the actual connection will not be
  established" (Manage connected users and client apps: $connect and $disconnect routes).
  The manager, started by ``$connect``, may post before that: the gateway emulator's
  ``connect_latency`` completes the upgrade only after a first post got 410.
* IAM evaluates ``aws:ResourceTag`` conditions on the resource as it is when the call is
  made (Controlling access to AWS resources using tags): the manager's role may update or
  untag a function only while it carries ``plldb:claim`` (the template's
  InstrumentClaimedFunctions and ReleaseClaims statements). The call audit found two
  restores of one function racing, the second untagging after the first had removed the
  tag; here the race is forced with botocore's own event hooks, and every such call is
  checked against that condition when it is made.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from typing import Any

import boto3

from plldb import limits, naming
from plldb.lambdas import common
from plldb.lambdas.manager import entry as manager
from plldb.lambdas.manager.records import Records
from tests.harness.gateway import MANAGER, Gateway
from tests.harness.gateway_setup import get_session, instrument_nonce, put_session, wait_until
from tests.harness.gateway_stack import STACK_NAME, create_stack, snapshot
from tests.test_manager import _attach

pytest_plugins = ["tests.harness.gateway_fixtures"]


def test_progress_posted_before_connect_completes_still_arrives(make_gateway: Any) -> None:
    """The first post gets 410 (the connection does not exist yet); the manager tries
    again until ``$connect`` has completed, so the client gets every message."""
    gateway = make_gateway(connect_latency=20.0)
    names = create_stack()
    session_id, ws, messages = _attach(gateway, functions=["Plain"])
    with ws:
        per_function = {m["function"]: m["status"] for m in messages if m.get("function")}
        assert per_function == {names["Plain"]: "ok"}
        assert messages[0]["message"] == f"1 function(s) of stack {STACK_NAME} to instrument"
        connection_id = get_session(session_id)[naming.A_CONNECTION_ID]["S"]
        assert gateway.refused_early[connection_id].is_set()  # the first post did get 410
    wait_until(lambda: all(i.finished.is_set() for i in gateway.invocations_of(MANAGER)))


def test_a_connection_that_never_comes_is_given_up_within_the_bound(
    gateway: Gateway, monkeypatch: Any
) -> None:
    """A 410 that lasts past the bound marks the connection gone: later posts do not wait."""
    monkeypatch.setattr(limits, "CONNECT_POST_WAIT_SECONDS", 0.5)
    connection = common.Connection("never-connected", gateway.management_url, connecting=True)
    assert not connection.post({"type": "progress", "message": "1"})
    assert connection.gone
    assert not common.Connection("gone", gateway.management_url).post({"type": "progress"})


@contextlib.contextmanager
def _hooks(lambda_: Any, hooks: dict[str, Callable[..., None]], first: bool = False) -> Iterator[None]:
    """botocore event hooks on the (cached, shared) client for the block's duration only."""
    events = lambda_.meta.events
    for name, hook in hooks.items():
        (events.register_first if first else events.register)(name, hook)
    try:
        yield
    finally:
        for name, hook in hooks.items():
            events.unregister(name, hook)


def _tag_condition(arn: str, refused: list[str]) -> dict[str, Callable[..., None]]:
    """Hooks recording the calls the manager's role would be refused: UpdateFunction-
    Configuration or UntagResource once the function's claim tag is gone."""
    harness = boto3.client("lambda")

    def check(event_name: str, **_: Any) -> None:
        if naming.CLAIM_TAG not in harness.list_tags(Resource=arn)["Tags"]:
            refused.append(event_name.rsplit(".", 1)[-1])

    return {f"before-call.lambda.{op}": check for op in ("UpdateFunctionConfiguration", "UntagResource")}


def test_two_restores_of_one_function_never_act_without_its_claim(gateway: Gateway) -> None:
    """Run A holds the record and restores; run B, started from inside A's UntagResource
    (after A's update, before its untag), restores the same records: B must leave it to A."""
    names = create_stack()
    before = snapshot(names)
    session_id = put_session(STACK_NAME, status=naming.ACTIVE, functions=["Plain"])
    manager.handler({"action": "instrument", "session_id": session_id, "connection_id": None,
                     "nonce": instrument_nonce(session_id)}, None)
    config = common.Config.from_environ()
    first = manager.Manager(config, common.Connection(None, ""))
    second = manager.Manager(config, common.Connection(None, ""))
    records = Records(common.client("dynamodb"), config.sessions_table).all()
    arn = records[0][naming.A_FUNCTION_ARN]["S"]
    refused: list[str] = []
    results: list[dict[str, Any]] = []
    started = threading.Event()

    def second_run(**_: Any) -> None:
        if not started.is_set():  # once: B's own untag (if it makes one) must not recurse
            started.set()
            results.append(second.restore_all(records, reply=False))

    # second_run goes first: B runs when A's untag is about to be made, then A's is checked
    with (
        _hooks(first.lambda_, _tag_condition(arn, refused)),
        _hooks(first.lambda_, {"before-call.lambda.UntagResource": second_run}, first=True),
    ):
        result = first.restore_all(records, reply=False)

    assert refused == []
    assert result == {"restored": [names["Plain"]], "failed": []}
    assert results == [{"restored": [names["Plain"]], "failed": []}]
    assert snapshot(names) == before
    assert Records(common.client("dynamodb"), config.sessions_table).all() == []
