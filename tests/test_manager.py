"""The manager, end to end: a stack in moto, the real handlers behind the gateway emulator."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from typing import Any
from unittest import mock

import boto3
from websockets.sync.client import ClientConnection

from plldb import limits, naming, protocol
from plldb.lambdas import common
from plldb.lambdas.manager import apply as manager_apply
from plldb.lambdas.manager import entry as manager
from plldb.lambdas.manager import plan as manager_plan
from tests.harness.gateway import MANAGER, Gateway
from tests.harness.gateway_setup import get_session, instrument_nonce, put_session, scan, wait_until
from tests.harness.gateway_stack import (
    EXISTING_WRAPPER,
    INSTRUMENTABLE,
    SKIPPED,
    STACK_NAME,
    configuration,
    create_stack,
    role_policies,
    snapshot,
)
from tests.harness.identity_proof import connect_session, proof_headers
from tests.test_iam_audit import ACCOUNT, _helper_stack, _template_allows

pytest_plugins = ["tests.harness.gateway_fixtures"]


def _connect(gateway: Gateway, session_id: str) -> ClientConnection:
    return connect_session(gateway.websocket_url, session_id)


def _until(ws: ClientConnection, done: Any, timeout: float = 30.0) -> list[dict[str, Any]]:
    """Messages received until one satisfies ``done`` (included)."""
    messages = []
    deadline = time.monotonic() + timeout
    while True:
        message = protocol.parse_server_message(
            ws.recv(timeout=max(0.1, deadline - time.monotonic()))
        )
        messages.append(message)
        if done(message):
            return messages


def _summary_done(message: dict[str, Any]) -> bool:
    return message["type"] == protocol.TYPE_PROGRESS and message["done"]


def _records() -> list[dict[str, Any]]:
    return [
        i
        for i in scan(naming.SESSIONS_TABLE)
        if i[naming.A_KIND]["S"] == naming.KIND_INSTRUMENTATION
    ]


def _attach(gateway: Gateway, **session: Any) -> tuple[str, ClientConnection, list[dict]]:
    session_id = put_session(STACK_NAME, **session)
    ws = _connect(gateway, session_id)
    return session_id, ws, _until(ws, _summary_done)


def _assert_instrumented(
    names: dict[str, str], logical: str, session_id: str, timeout: int
) -> None:
    config = configuration(names[logical])
    env = config["Environment"]["Variables"]
    assert env[naming.ENV_EXEC_WRAPPER] == naming.WRAPPER_PATH
    assert env[naming.ENV_SESSION_ID] == session_id
    assert naming.ENV_CONNECTION_ID not in env  # changes on reconnect: read from the session
    assert env[naming.ENV_MANAGEMENT_URL].endswith("/prod")
    assert config["Layers"][-1]["Arn"] == os.environ[naming.ENV_LAYER_ARN]
    assert config["Timeout"] == timeout
    assert f"{naming.SHIM_POLICY_NAME}-us-east-1" in role_policies(names[logical])


def test_instrument_then_detach_restores_byte_for_byte(gateway: Gateway) -> None:
    names = create_stack()
    before = snapshot(names)
    session_id, ws, messages = _attach(gateway, timeout=600)
    with ws:
        per_function = {m["function"]: m for m in messages if m.get("function")}
        for logical in INSTRUMENTABLE:
            assert per_function[names[logical]]["status"] == "ok"
            _assert_instrumented(names, logical, session_id, 600)
        reasons = {logical: per_function[names[logical]]["message"] for logical in SKIPPED}
        assert all(per_function[names[logical]]["status"] == "skipped" for logical in SKIPPED)
        assert "already has 5 layers" in reasons["FiveLayers"]
        assert "runtime nodejs20.x is not Python" in reasons["Node"]
        assert "over the 4096 byte limit" in reasons["BigEnv"]
        for logical in SKIPPED:
            assert configuration(names[logical]) == before[logical]["configuration"]
        summary = messages[-1]["summary"]
        assert sorted(summary["instrumented"]) == sorted(names[n] for n in INSTRUMENTABLE)
        wrapped = configuration(names["Wrapped"])["Environment"]["Variables"]
        assert wrapped[naming.ENV_ORIGINAL_WRAPPER] == EXISTING_WRAPPER
        assert len(_records()) == len(INSTRUMENTABLE)

        ws.send(json.dumps({"action": protocol.ACTION_DETACH}))
        detached = _until(ws, lambda m: m["type"] == protocol.TYPE_DETACHED)[-1]
    assert sorted(detached["restored"]) == sorted(names[n] for n in INSTRUMENTABLE)
    assert detached["failed"] == []
    assert snapshot(names) == before
    assert _records() == []
    assert get_session(session_id)[naming.A_STATUS]["S"] == naming.CLOSED


def test_abrupt_client_kill_restores_after_grace(gateway: Gateway) -> None:
    names = create_stack()
    before = snapshot(names)
    session_id = put_session(STACK_NAME)
    client = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from websockets.sync.client import connect\n"
            "ws = connect(sys.argv[1], open_timeout=30, additional_headers={sys.argv[2]: "
            "sys.argv[3]}); print('up', flush=True); time.sleep(60)",
            f"{gateway.websocket_url}?sessionId={session_id}",
            *proof_headers(session_id).popitem(),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert client.stdout.readline().strip() == "up"
        wait_until(
            lambda: (
                len(_records()) == len(INSTRUMENTABLE)
                and all(r[naming.A_STATUS]["S"] == naming.INSTRUMENTED for r in _records())
            ),
            timeout=60,
        )
        _assert_instrumented(names, "Plain", session_id, limits.DEFAULT_DEBUG_TIMEOUT)
    finally:
        os.kill(client.pid, signal.SIGKILL)
        client.wait(10)
    wait_until(
        lambda: get_session(session_id)[naming.A_STATUS]["S"] == naming.CLOSED, timeout=60
    )
    gateway.wait_for_invocations()
    assert snapshot(names) == before
    assert _records() == []
    disconnect = gateway.invocations_of("plldb-disconnect")[-1]
    assert disconnect.event["requestContext"]["disconnectStatusCode"] == 1006


def test_reconnect_within_grace_keeps_instrumentation(make_gateway: Any) -> None:
    gateway = make_gateway(grace_seconds=1.5)
    names = create_stack()
    before = snapshot(names)
    session_id, ws, _ = _attach(gateway, functions=["Plain"])
    ws.close()
    wait_until(lambda: get_session(session_id)[naming.A_STATUS]["S"] == naming.DISCONNECTED)
    _reopen_as_pending(session_id)
    with _connect(gateway, session_id) as again:
        progress = _until(again, _summary_done)
        wait_until(
            lambda: all(i.finished.is_set() for i in gateway.invocations_of(MANAGER)), timeout=20
        )
        assert get_session(session_id)[naming.A_STATUS]["S"] == naming.ACTIVE
        _assert_instrumented(names, "Plain", session_id, limits.DEFAULT_DEBUG_TIMEOUT)
        assert [r[naming.A_FUNCTION_NAME]["S"] for r in _records()] == [names["Plain"]]
        # a reconnect reconfigures nothing (no update, no cold start)
        assert [m["message"] for m in progress if m.get("function") == names["Plain"]] == [
            f"already instrumented (timeout {limits.DEFAULT_DEBUG_TIMEOUT} s)"
        ]
        grace_runs = [
            i
            for i in gateway.invocations_of(MANAGER)
            if i.event["action"] == "deinstrument_after_grace"
        ]
        assert grace_runs and grace_runs[0].result == {"reconnected": True}
        again.send(json.dumps({"action": protocol.ACTION_DETACH}))
        _until(again, lambda m: m["type"] == protocol.TYPE_DETACHED)
    assert snapshot(names) == before


def _reopen_as_pending(session_id: str) -> None:
    """What `plldb attach` does to reconnect: its own session back to PENDING."""
    boto3.client("dynamodb").update_item(
        TableName=naming.SESSIONS_TABLE,
        Key={naming.A_SESSION_ID: {"S": session_id}},
        UpdateExpression="SET #s = :pending, #t = :ttl",
        ExpressionAttributeNames={"#s": naming.A_STATUS, "#t": naming.A_TTL},
        ExpressionAttributeValues={
            ":pending": {"S": naming.PENDING},
            ":ttl": {"N": str(int(time.time()) + 300)},
        },
    )


def test_a_reconnect_that_never_arrives_still_restores_after_grace(make_gateway: Any) -> None:
    gateway = make_gateway(grace_seconds=1.0)
    names = create_stack()
    before = snapshot(names)
    session_id, ws, _ = _attach(gateway, functions=["Plain"])
    ws.close()
    wait_until(lambda: get_session(session_id)[naming.A_STATUS]["S"] == naming.DISCONNECTED)
    _reopen_as_pending(session_id)  # ... and the tool dies before it connects again
    wait_until(
        lambda: get_session(session_id)[naming.A_STATUS]["S"] == naming.CLOSED, timeout=60
    )
    gateway.wait_for_invocations()
    assert snapshot(names) == before
    assert _records() == []


def test_deploy_while_instrumented_is_not_clobbered(gateway: Gateway) -> None:
    """Restoring removes only plldb's traces from what runs now: a deploy's changes stay."""
    names = create_stack()
    session_id, ws, _ = _attach(gateway, functions=["Plain", "NoEnv", "Wrapped"])
    lambda_client = boto3.client("lambda")
    # a CloudFormation deploy: the template's configuration, no plldb trace left
    lambda_client.update_function_configuration(
        FunctionName=names["Plain"], Environment={"Variables": {"A": "2"}}, Layers=[], Timeout=42
    )
    # a deploy that replaced the environment only: plldb's layer is left, and with the
    # environment went the recorded timeout
    lambda_client.update_function_configuration(
        FunctionName=names["NoEnv"], Environment={"Variables": {"C": "3"}}
    )
    # a console edit of the timeout only: plldb's layer and variables still there
    lambda_client.update_function_configuration(FunctionName=names["Wrapped"], Timeout=77)
    with ws:
        ws.send(json.dumps({"action": protocol.ACTION_DETACH}))
        messages = _until(ws, lambda m: m["type"] == protocol.TYPE_DETACHED)
    statuses = {m["function"]: m for m in messages if m.get("function")}
    assert statuses[names["Plain"]]["status"] == "kept-deploy"
    assert statuses[names["Plain"]]["message"] == (
        "replaced since it was instrumented (a deploy?): no plldb trace left, kept as deployed"
    )
    plain = configuration(names["Plain"])
    assert (plain["Environment"], plain["Layers"], plain["Timeout"]) == (
        {"Variables": {"A": "2"}},
        [],
        42,
    )
    assert statuses[names["NoEnv"]]["status"] == "kept-deploy"
    assert statuses[names["NoEnv"]]["message"] == (
        "changed since it was instrumented (a deploy?): kept as deployed, plldb's remaining "
        f"layer and variables removed; timeout left at {limits.MAX_TIMEOUT} s: "
        "PLLDB_ORIGINAL_TIMEOUT is missing"
    )
    no_env = configuration(names["NoEnv"])
    assert (no_env["Environment"], no_env["Layers"], no_env["Timeout"]) == (
        {"Variables": {"C": "3"}},
        [],
        limits.MAX_TIMEOUT,
    )
    # the debug timeout is plldb's: the recorded one comes back, the rest is as it was
    wrapped_outcome = statuses[names["Wrapped"]]
    assert (wrapped_outcome["status"], wrapped_outcome["message"]) == (
        "ok",
        "restored (timeout 3 s)",
    )
    wrapped = configuration(names["Wrapped"])
    assert wrapped["Environment"]["Variables"] == {
        "AWS_LAMBDA_EXEC_WRAPPER": EXISTING_WRAPPER,
        "B": "2",
    }
    assert wrapped["Layers"] == [] and wrapped["Timeout"] == 3
    assert f"{naming.SHIM_POLICY_NAME}-us-east-1" not in role_policies(names["Plain"])
    assert session_id and _records() == []


RECORD_ATTRIBUTES = {
    naming.A_SESSION_ID,
    naming.A_KIND,
    naming.A_STACK_NAME,
    naming.A_FUNCTION_NAME,
    naming.A_FUNCTION_ARN,
    naming.A_ROLE_NAME,
    naming.A_GRANT_ADDED,
    naming.A_STATUS,
    naming.A_INSTRUMENTED_BY,
    naming.A_CREATED_AT,
}


def _run_manager(action: str, session_id: str, **fields: Any) -> dict[str, Any]:
    """The manager invoked directly; an instrument run is armed as a ``$connect`` would."""
    event = {"action": action, "session_id": session_id, "connection_id": None, **fields}
    if action == "instrument" and "nonce" not in fields:
        event["nonce"] = instrument_nonce(session_id)
    return manager.handler(event, None)


def test_crash_midway_then_rerun_keeps_the_original(gateway: Gateway) -> None:
    names = create_stack()
    before = snapshot(names)
    session_id = put_session(STACK_NAME, status=naming.ACTIVE, functions=list(INSTRUMENTABLE))
    real_update = manager_apply.Functions.update
    calls: list[str] = []

    def crash_after_first(
        self: manager_apply.Functions, name: str, subset: dict[str, Any]
    ) -> None:
        calls.append(name)
        if len(calls) > 1:
            raise RuntimeError("manager killed")
        real_update(self, name, subset)

    instrument: dict[str, Any] = {}  # the stack and its filter are the session's own
    # The fault no real part can produce on cue: the manager killed right after its first
    # function update. One worker makes "first" deterministic.
    with (
        mock.patch.object(manager, "MAX_WORKERS", 1),
        mock.patch.object(manager_apply.Functions, "update", crash_after_first),
    ):
        first = _run_manager("instrument", session_id, **instrument)
    assert len(first["instrumented"]) == 1 and len(first["failed"]) == len(INSTRUMENTABLE) - 1
    statuses = {r[naming.A_STATUS]["S"] for r in _records()}
    assert statuses == {naming.INSTRUMENTED, naming.INSTRUMENTING}

    second = _run_manager("instrument", session_id, **instrument)
    assert sorted(second["instrumented"]) == sorted(names[n] for n in INSTRUMENTABLE)
    for record in _records():
        logical = next(k for k, v in names.items() if v == record[naming.A_FUNCTION_NAME]["S"])
        assert set(record) == RECORD_ATTRIBUTES  # who instrumented what; no configuration
        assert record[naming.A_STATUS]["S"] == naming.INSTRUMENTED
        # the function itself holds what comes back: its own timeout, its own wrapper
        current = manager_plan.config_subset(configuration(names[logical]))
        own = manager_plan.config_subset(before[logical]["configuration"])
        assert current["Environment"][naming.ENV_ORIGINAL_TIMEOUT] == str(own["Timeout"])
        assert manager_plan.strip_traces(current) == own
    assert _run_manager("instrument", session_id, **instrument) == second  # idempotent

    restored = _run_manager("deinstrument", session_id)
    assert sorted(restored["restored"]) == sorted(names[n] for n in INSTRUMENTABLE)
    assert snapshot(names) == before
    assert _run_manager("deinstrument", session_id) == {"restored": [], "failed": []}
    assert snapshot(names) == before


def test_missing_stack_and_bad_requests_are_reported(gateway: Gateway) -> None:
    session_id = put_session("no-such-stack", status=naming.ACTIVE)
    result = _run_manager("instrument", session_id)
    assert result == {"error": "stack no-such-stack does not exist"}
    assert _run_manager("explode", session_id) == {
        "error": "manager request without a known action"
    }
    assert manager.handler({"action": "instrument", "session_id": "nope"}, None) == {
        "error": "manager request without a valid session_id"
    }
    closed = put_session(STACK_NAME, status=naming.CLOSED)
    assert "is not active" in _run_manager("instrument", closed)["error"]


def test_container_image_functions_are_skipped() -> None:
    assert manager_plan.unsupported({"PackageType": "Image"}) == (
        "container image function: layers cannot be added to it"
    )
    assert manager_plan.unsupported({"PackageType": "Zip", "Runtime": "python3.12"}) is None


def _sweep() -> dict[str, Any]:
    return manager.handler({"action": "sweep"}, None)


def test_sweep_restores_a_killed_client_whose_disconnect_was_lost(make_gateway: Any) -> None:
    """No $disconnect at all: the schedule's sweeps find the connection gone (DISCONNECTED),
    then, past the grace period, restore the stack exactly and close the session."""
    gateway = make_gateway(grace_seconds=1.0, drop_disconnect=1.0)
    names = create_stack()
    before = snapshot(names)
    session_id, ws, _ = _attach(gateway, functions=["Plain", "Wrapped"])
    ws.close()
    wait_until(lambda: gateway.dropped_disconnects)
    assert get_session(session_id)[naming.A_STATUS]["S"] == naming.ACTIVE

    first = _sweep()
    assert first["restored"] == [] and first["sessions"] == {}
    assert get_session(session_id)[naming.A_STATUS]["S"] == naming.DISCONNECTED
    time.sleep(2.1)  # the grace period (1 s) passes; DisconnectedAt has 1 s resolution
    second = _sweep()

    assert sorted(second["restored"]) == sorted([names["Plain"], names["Wrapped"]])
    assert "past the 1 s grace period" in second["sessions"][session_id]
    assert snapshot(names) == before
    assert _records() == []
    assert get_session(session_id)[naming.A_STATUS]["S"] == naming.CLOSED


def test_sweep_restores_sessions_past_their_ttl_and_leaves_live_ones(gateway: Gateway) -> None:
    names = create_stack()
    before = snapshot(names)
    expired = put_session(STACK_NAME, status=naming.ACTIVE, functions=["Plain"])
    _run_manager("instrument", expired)
    boto3.client("dynamodb").update_item(  # its TTL passes; DynamoDB has not deleted it yet
        TableName=naming.SESSIONS_TABLE,
        Key={naming.A_SESSION_ID: {"S": expired}},
        UpdateExpression="SET #ttl = :past",
        ExpressionAttributeNames={"#ttl": naming.A_TTL},
        ExpressionAttributeValues={":past": {"N": str(int(time.time()) - 1)}},
    )
    live, ws, _ = _attach(gateway, functions=["Wrapped"])
    with ws:
        result = _sweep()
        assert result["restored"] == [names["Plain"]]
        assert result["sessions"] == {expired: "ACTIVE session past its TTL"}
        # (the role keeps the shim policy: the live session's function shares it)
        assert configuration(names["Plain"]) == before["Plain"]["configuration"]
        assert [r[naming.A_FUNCTION_NAME]["S"] for r in _records()] == [names["Wrapped"]]
        assert get_session(live)[naming.A_STATUS]["S"] == naming.ACTIVE


def test_the_session_timeout_is_applied_exactly_even_when_lower(gateway: Gateway) -> None:
    """``--timeout 2`` gives NoEnv (10 s) 2 s while attached, and detach puts 10 s back."""
    names = create_stack()
    before = snapshot(names)
    session_id, ws, messages = _attach(gateway, functions=["NoEnv"], timeout=2)
    with ws:
        assert configuration(names["NoEnv"])["Timeout"] == 2
        assert "instrumented (timeout 2 s)" in [m["message"] for m in messages]
        ws.send(json.dumps({"action": protocol.ACTION_DETACH}))
        _until(ws, lambda m: m["type"] == protocol.TYPE_DETACHED)
    assert snapshot(names) == before


SOURCES_STACK = "plldb-test-sources"


def _create_sources_stack() -> dict[str, str]:
    """A stack with an SQS-fed function (as SAM's SQS event makes it) and another one;
    returns logical id -> function name."""
    trust = {"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"},
        "Action": "sts:AssumeRole"}]}
    function = {"Type": "AWS::Lambda::Function", "Properties": {
        "Handler": "app.handler", "Runtime": "python3.12", "Role": {"Fn::GetAtt": ["Role", "Arn"]},
        "Code": {"ZipFile": "def handler(event, context):\n    return event\n"}}}
    template = {"Resources": {
        "Role": {"Type": "AWS::IAM::Role", "Properties": {"AssumeRolePolicyDocument": trust}},
        "Orders": {"Type": "AWS::SQS::Queue",
                   "Properties": {"QueueName": "orders", "VisibilityTimeout": 30}},
        "Fed": function,
        "Aliased": function,
        "FedFromOrders": {"Type": "AWS::Lambda::EventSourceMapping", "Properties": {
            "EventSourceArn": {"Fn::GetAtt": ["Orders", "Arn"]}, "FunctionName": {"Ref": "Fed"}}},
    }}
    cloudformation = boto3.client("cloudformation")
    cloudformation.create_stack(StackName=SOURCES_STACK, TemplateBody=json.dumps(template),
                                Capabilities=["CAPABILITY_IAM"])
    resources = cloudformation.list_stack_resources(StackName=SOURCES_STACK)
    return {r["LogicalResourceId"]: r["PhysicalResourceId"]
            for r in resources["StackResourceSummaries"]
            if r["ResourceType"] == "AWS::Lambda::Function"}


def test_aliases_and_sqs_queues(gateway: Gateway) -> None:
    """A function behind an alias on a published version is skipped with what to do; an
    SQS-fed function is instrumented with a warning naming the queue."""
    names = _create_sources_stack()
    lambda_ = boto3.client("lambda")
    version = lambda_.publish_version(FunctionName=names["Aliased"])["Version"]
    lambda_.create_alias(FunctionName=names["Aliased"], Name="live", FunctionVersion=version)
    before = {name: configuration(name) for name in names.values()}

    session_id = put_session(SOURCES_STACK)
    with _connect(gateway, session_id) as ws:
        messages = _until(ws, _summary_done)
        outcomes = {(m["function"], m["status"]): m["message"] for m in messages if m.get("function")}
        summary = messages[-1]["summary"]
        ws.send(json.dumps({"action": protocol.ACTION_DETACH}))
        _until(ws, lambda m: m["type"] == protocol.TYPE_DETACHED)

    assert outcomes[(names["Aliased"], "skipped")] == (
        f"reached through alias live (version {version}): plldb instruments $LATEST only, so "
        "that traffic would never reach this machine; debug it with the alias on $LATEST "
        "(e.g. deploy without AutoPublishAlias while debugging) or invoke $LATEST"
    )
    assert outcomes[(names["Fed"], "warning")] == (
        "SQS queue orders has a visibility timeout of 30 s, not above the debug timeout of "
        "900 s: its messages are delivered again while you are on a breakpoint; attach with "
        "--timeout 29 to stay below it"
    )
    assert summary["instrumented"] == [names["Fed"]]
    assert summary["warnings"] == [
        {"function": names["Fed"], "reason": outcomes[(names["Fed"], "warning")]}
    ]
    assert {name: configuration(name) for name in names.values()} == before


def test_a_customer_managed_kms_key_is_a_clear_skip(gateway: Gateway) -> None:
    """moto's CloudFormation drops KmsKeyArn, so the function is made directly and planned."""
    key = boto3.client("kms").create_key()["KeyMetadata"]["Arn"]
    role = boto3.client("iam").create_role(
        RoleName="kms-function-role", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    session = get_session(put_session(STACK_NAME))
    session_id, creator = session["SessionId"]["S"], session["CreatedBy"]["S"]
    boto3.client("lambda").create_function(
        FunctionName="encrypted", Runtime="python3.12", Role=role, Handler="app.handler",
        Code={"ZipFile": b"PK"}, KMSKeyArn=key, Environment={"Variables": {"SECRET": "x"}},
        Tags={naming.CLAIM_TAG: naming.claim_value(creator, session_id)},  # as attach does
    )
    config = common.Config.from_environ()
    planner = manager.Manager(config, common.Connection(None, ""))
    request = manager.Request.parse(
        {"action": "instrument", "session_id": session_id, "nonce": "n"})

    outcome = planner.plan("encrypted", request, 900, session, session_id)

    assert outcome == manager_plan.Outcome(
        "encrypted", manager_plan.SKIPPED,
        f"its environment is encrypted with the customer managed KMS key {key}, which the "
        "plldb manager may not use: debug it without KmsKeyArn (AWS's default key), or debug "
        "another function",
    )


def test_the_manager_may_read_every_layer_a_function_already_has() -> None:
    """Each update re-sends the function's layers; Lambda may check GetLayerVersion on each
    again (not documented either way): the manager's role allows it for any layer of its
    region (its own account's and shared ones), and nowhere else."""
    own = f"arn:aws:lambda:us-east-1:{ACCOUNT}:layer:deps:3"
    shared = "arn:aws:lambda:us-east-1:017000801446:layer:AWSLambdaPowertoolsPythonV3:7"
    for layer in (own, shared, _helper_stack()["outputs"]["LayerVersionArn"]):
        assert _template_allows("ManagerRole", "lambda:GetLayerVersion", layer), layer
    assert not _template_allows(
        "ManagerRole", "lambda:GetLayerVersion", own.replace("us-east-1", "eu-west-1")
    )
    assert not _template_allows("ManagerRole", "lambda:PublishLayerVersion", own)


def test_a_summary_too_large_for_one_post_arrives_without_its_reasons(gateway: Gateway) -> None:
    """A post is held to the 32 KB frame quota: a big stack's summary drops the reasons
    (each was posted with its own function) rather than the summary itself."""
    session_id = put_session("no-such-stack")
    with _connect(gateway, session_id) as ws:
        _until(ws, _summary_done)  # the manager's own answer: the stack does not exist
        connection = common.Connection(
            get_session(session_id)[naming.A_CONNECTION_ID]["S"], gateway.management_url
        )
        skipped = [{"function": f"function-{i:03}", "reason": "r" * 300} for i in range(200)]
        summary = {"instrumented": [], "skipped": skipped, "failed": [], "warnings": []}
        assert connection.post(protocol.progress_message("instrument", "done", done=True,
                                                         summary=summary))
        (received,) = _until(ws, _summary_done)
    assert [s["function"] for s in received["summary"]["skipped"]] == [
        s["function"] for s in skipped
    ]
    assert {s["reason"] for s in received["summary"]["skipped"]} == {""}
