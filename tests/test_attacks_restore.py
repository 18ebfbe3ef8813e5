"""Attack: forge what restoring reads, then have plldb restore (docs/security.md, promise 3).

Restoring removes plldb's traces from a function's *current* configuration and puts back the
timeout recorded in the function's own environment. Nothing it applies comes from the
sessions table: a forged instrumentation record, written here with the harness's own
credentials as a stand-in for any principal who may write that table, changes nothing but
plldb's traces. A recorded timeout that is not 1..900 s is not applied either.

The first two tests run the manager against moto; the last one runs the whole path under
enforced IAM (`plldb attach` as the developer user, the manager with its own role).
"""

from __future__ import annotations

import logging
from typing import Any

import boto3
import pytest

from plldb import limits, naming
from plldb.lambdas import common
from plldb.lambdas.manager import entry as manager
from plldb.lambdas.manager import plan as manager_plan
from tests.harness.gateway import Gateway
from tests.harness.gateway_setup import instrument_nonce, layer_zip, put_session, scan
from tests.harness.gateway_stack import (
    INSTRUMENTABLE,
    STACK_NAME,
    configuration,
    create_stack,
    snapshot,
)
from tests.harness.localcloud import TEST_STACK_DIR, LocalCloud, LocalCloudSettings
from tests.harness.localcloud_attach import ATTACHED_MARKER, PlldbProcess

pytest_plugins = ["tests.harness.gateway_fixtures"]

# The record attributes older plldb versions restored from: the configuration to put back,
# and the configuration plldb had applied (restore used the first when the function still
# ran the second).
FORGED_ORIGINAL = "Original"
FORGED_APPLIED = "Applied"
INJECTED = {"INJECTED": "attacker", naming.ENV_EXEC_WRAPPER: "/opt/attacker/wrapper"}


def _manager(action: str, session_id: str, **fields: Any) -> dict[str, Any]:
    """The manager invoked directly; an instrument run is armed as a ``$connect`` would."""
    event = {"action": action, "session_id": session_id, "connection_id": None, **fields}
    if action == "instrument":
        event["nonce"] = instrument_nonce(session_id)
    return manager.handler(event, None)


def _attacker_layer() -> str:
    return boto3.client("lambda").publish_layer_version(
        LayerName="attacker", Content={"ZipFile": layer_zip()}
    )["LayerVersionArn"]


def _forged(own: dict[str, Any], layer: str) -> dict[str, Any]:
    """What an attacker would have restored: its variables and layer, the longest timeout."""
    return {
        "Environment": {**own["Environment"], **INJECTED},
        "Layers": [*own["Layers"], layer],
        "Timeout": limits.MAX_TIMEOUT,
    }


def _forge_record(
    function_name: str, session_id: str, original: dict[str, Any], stack_name: str = STACK_NAME
) -> None:
    """Overwrite the function's record: ``original`` to restore, and as ``Applied`` exactly
    what the function runs now (anyone with read access to Lambda sees it)."""
    now = boto3.client("lambda").get_function_configuration(FunctionName=function_name)
    boto3.client("dynamodb").put_item(
        TableName=naming.SESSIONS_TABLE,
        Item={
            naming.A_SESSION_ID: {"S": naming.function_key(function_name)},
            naming.A_KIND: {"S": naming.KIND_INSTRUMENTATION},
            naming.A_STACK_NAME: {"S": stack_name},
            naming.A_FUNCTION_NAME: {"S": function_name},
            naming.A_FUNCTION_ARN: {"S": now["FunctionArn"]},
            naming.A_ROLE_NAME: {"S": now["Role"].rsplit("/", 1)[-1]},
            naming.A_GRANT_ADDED: {"BOOL": True},
            naming.A_STATUS: {"S": naming.INSTRUMENTED},
            naming.A_INSTRUMENTED_BY: {"S": session_id},
            naming.A_CREATED_AT: {"S": common.iso_now()},
            FORGED_ORIGINAL: {"S": common.dumps(original)},
            FORGED_APPLIED: {"S": common.dumps(manager_plan.config_subset(now))},
        },
    )


def _records() -> list[dict[str, Any]]:
    return [
        item
        for item in scan(naming.SESSIONS_TABLE)
        if item[naming.A_KIND]["S"] == naming.KIND_INSTRUMENTATION
    ]


def test_forged_restore_record_changes_nothing_but_traces(gateway: Gateway) -> None:
    """Forged records for an instrumented function and for one plldb never touched: detach
    leaves every function exactly as it was before attach."""
    names = create_stack()
    before = snapshot(names)
    attacker_layer = _attacker_layer()
    session_id = put_session(STACK_NAME, status=naming.ACTIVE, functions=["Plain"])
    attached = _manager("instrument", session_id)
    assert attached["instrumented"] == [names["Plain"]]

    for logical in ("Plain", "NoEnv"):
        own = manager_plan.config_subset(before[logical]["configuration"])
        _forge_record(names[logical], session_id, _forged(own, attacker_layer))

    restored = _manager("deinstrument", session_id)

    assert sorted(restored["restored"]) == sorted([names["Plain"], names["NoEnv"]])
    assert restored["failed"] == []
    _assert_nothing_injected(names.values(), attacker_layer)
    assert snapshot(names) == before
    assert _records() == []


def _assert_nothing_injected(functions: Any, layer: str) -> None:
    for name in functions:
        now = boto3.client("lambda").get_function_configuration(FunctionName=name)
        variables = now.get("Environment", {}).get("Variables", {})
        assert not set(INJECTED.items()) & set(variables.items()), name
        assert layer not in [each["Arn"] for each in now.get("Layers", [])], name


def test_a_recorded_timeout_out_of_range_is_not_applied(
    gateway: Gateway, caplog: pytest.LogCaptureFixture
) -> None:
    """PLLDB_ORIGINAL_TIMEOUT is only applied as 1..900 s: anything else leaves the timeout
    as it is, says so, and the rest of plldb's traces still go."""
    names = create_stack()
    before = snapshot(names)
    session_id = put_session(STACK_NAME, status=naming.ACTIVE, timeout=600)
    _manager("instrument", session_id)
    forged = dict(zip(INSTRUMENTABLE, ("100000", "abc", "0", "\uff13"), strict=True))
    lambda_ = boto3.client("lambda")
    for logical, value in forged.items():
        variables = configuration(names[logical])["Environment"]["Variables"]
        lambda_.update_function_configuration(
            FunctionName=names[logical],
            Environment={"Variables": {**variables, naming.ENV_ORIGINAL_TIMEOUT: value}},
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


@pytest.mark.e2e
def test_forged_restore_record_under_enforced_iam() -> None:
    """The developer attaches with its own policy; the records of the stack's functions are
    forged while attached; Ctrl-C restores each function exactly as it was before attach."""
    with LocalCloud(LocalCloudSettings(max_containers=1)) as cloud, cloud.environ():
        functions = list(cloud.functions.values())
        lambda_ = boto3.client("lambda")
        before = {name: lambda_.get_function_configuration(FunctionName=name) for name in functions}
        attacker_layer = _attacker_layer()
        attach = PlldbProcess(["attach"], TEST_STACK_DIR, cloud.environment)
        try:
            attach.wait_for(ATTACHED_MARKER)
            by_function = {r[naming.A_FUNCTION_NAME]["S"]: r for r in _records()}
            assert sorted(by_function) == sorted(functions)
            for name in functions:
                own = manager_plan.config_subset(before[name])
                session_id = by_function[name][naming.A_INSTRUMENTED_BY]["S"]
                stack_name = by_function[name][naming.A_STACK_NAME]["S"]
                _forge_record(name, session_id, _forged(own, attacker_layer), stack_name)
            assert attach.interrupt() == 0, attach.text()
        finally:
            attach.kill()
        assert f"detached: {len(functions)} function(s) restored" in attach.text()
        _assert_nothing_injected(functions, attacker_layer)
        for name in functions:
            now = lambda_.get_function_configuration(FunctionName=name)
            assert _stable(now) == _stable(before[name]), name
        assert _records() == []


def _stable(configuration: dict[str, Any]) -> dict[str, Any]:
    """A function configuration without what every update changes."""
    volatile = ("ResponseMetadata", "LastModified", "RevisionId", "LastUpdateStatus")
    return {k: v for k, v in configuration.items() if not k.startswith(volatile)}
