"""Attack: forge what restoring reads, then have plldb restore (docs/security.md, promise 3).

Restoring removes plldb's traces from a function's *current* configuration and puts back the
timeout recorded in the function's own environment. Nothing it applies comes from the
sessions table: a forged instrumentation record, written here with the harness's own
credentials as a stand-in for any principal who may write that table, changes nothing but
plldb's traces. A recorded timeout that is not 1..900 s is not applied either.
"""

from __future__ import annotations

import logging
from typing import Any

import boto3
import pytest

from plldb import protocol
from plldb.lambdas import common, manager, manager_plan
from tests.harness.gateway import Gateway
from tests.harness.gateway_setup import layer_zip, put_session, scan
from tests.harness.gateway_stack import (
    INSTRUMENTABLE,
    STACK_NAME,
    configuration,
    create_stack,
    snapshot,
)

pytest_plugins = ["tests.harness.gateway_fixtures"]

# The record attributes older plldb versions restored from: the configuration to put back,
# and the configuration plldb had applied (restore used the first when the function still
# ran the second).
FORGED_ORIGINAL = "Original"
FORGED_APPLIED = "Applied"
INJECTED = {"INJECTED": "attacker", protocol.ENV_EXEC_WRAPPER: "/opt/attacker/wrapper"}


def _manager(action: str, session_id: str, **fields: Any) -> dict[str, Any]:
    event = {"action": action, "session_id": session_id, "connection_id": None, **fields}
    return manager.handler(event, None)


def _attacker_layer() -> str:
    return boto3.client("lambda").publish_layer_version(
        LayerName="attacker", Content={"ZipFile": layer_zip()}
    )["LayerVersionArn"]


def _forge_record(function_name: str, session_id: str, original: dict[str, Any]) -> None:
    """Overwrite the function's record: ``original`` to restore, and as ``Applied`` exactly
    what the function runs now (anyone with read access to Lambda sees it)."""
    current = manager_plan.config_subset(configuration(function_name))
    role = configuration(function_name)["Role"].rsplit("/", 1)[-1]
    boto3.client("dynamodb").put_item(
        TableName=protocol.SESSIONS_TABLE,
        Item={
            protocol.A_SESSION_ID: {"S": protocol.function_key(function_name)},
            protocol.A_KIND: {"S": protocol.KIND_INSTRUMENTATION},
            protocol.A_STACK_NAME: {"S": STACK_NAME},
            protocol.A_FUNCTION_NAME: {"S": function_name},
            protocol.A_FUNCTION_ARN: {"S": configuration(function_name)["FunctionArn"]},
            protocol.A_ROLE_NAME: {"S": role},
            protocol.A_GRANT_ADDED: {"BOOL": True},
            protocol.A_STATUS: {"S": protocol.INSTRUMENTED},
            protocol.A_INSTRUMENTED_BY: {"S": session_id},
            protocol.A_CREATED_AT: {"S": common.iso_now()},
            FORGED_ORIGINAL: {"S": common.dumps(original)},
            FORGED_APPLIED: {"S": common.dumps(current)},
        },
    )


def _records() -> list[dict[str, Any]]:
    return [
        item
        for item in scan(protocol.SESSIONS_TABLE)
        if item[protocol.A_KIND]["S"] == protocol.KIND_INSTRUMENTATION
    ]


def test_forged_restore_record_changes_nothing_but_traces(gateway: Gateway) -> None:
    """Forged records for an instrumented function and for one plldb never touched: detach
    leaves every function exactly as it was before attach."""
    names = create_stack()
    before = snapshot(names)
    attacker_layer = _attacker_layer()
    session_id = put_session(STACK_NAME, status=protocol.ACTIVE)
    attached = _manager("instrument", session_id, stack_name=STACK_NAME, functions=["Plain"])
    assert attached["instrumented"] == [names["Plain"]]

    for logical in ("Plain", "NoEnv"):
        own = manager_plan.config_subset(before[logical]["configuration"])
        forged = {
            "Environment": {**own["Environment"], **INJECTED},
            "Layers": [*own["Layers"], attacker_layer],
            "Timeout": protocol.MAX_TIMEOUT,
        }
        _forge_record(names[logical], session_id, forged)

    restored = _manager("deinstrument", session_id)

    assert sorted(restored["restored"]) == sorted([names["Plain"], names["NoEnv"]])
    assert restored["failed"] == []
    for logical, name in names.items():
        now = configuration(name)
        variables = now.get("Environment", {}).get("Variables", {})
        assert not set(INJECTED.items()) & set(variables.items()), logical
        assert attacker_layer not in [layer["Arn"] for layer in now.get("Layers", [])], logical
    assert snapshot(names) == before
    assert _records() == []


def test_a_recorded_timeout_out_of_range_is_not_applied(
    gateway: Gateway, caplog: pytest.LogCaptureFixture
) -> None:
    """PLLDB_ORIGINAL_TIMEOUT is only applied as 1..900 s: anything else leaves the timeout
    as it is, says so, and the rest of plldb's traces still go."""
    names = create_stack()
    before = snapshot(names)
    session_id = put_session(STACK_NAME, status=protocol.ACTIVE)
    _manager("instrument", session_id, stack_name=STACK_NAME, timeout=600)
    forged = dict(zip(INSTRUMENTABLE, ("100000", "abc", "0", "\uff13"), strict=True))
    lambda_ = boto3.client("lambda")
    for logical, value in forged.items():
        variables = configuration(names[logical])["Environment"]["Variables"]
        lambda_.update_function_configuration(
            FunctionName=names[logical],
            Environment={"Variables": {**variables, protocol.ENV_ORIGINAL_TIMEOUT: value}},
        )

    caplog.set_level(logging.INFO, logger="plldb.lambdas")
    restored = _manager("deinstrument", session_id)

    assert sorted(restored["restored"]) == sorted(names[n] for n in INSTRUMENTABLE)
    for logical, value in forged.items():
        now = configuration(names[logical])
        assert now["Timeout"] == 600, logical
        assert {**now, "Timeout": None} == {**before[logical]["configuration"], "Timeout": None}
        assert (
            f"{names[logical]}: warning (restored; timeout left at 600 s: "
            f"PLLDB_ORIGINAL_TIMEOUT {value!r} is not 1 to 900 s)"
        ) in caplog.text
    assert _records() == []
