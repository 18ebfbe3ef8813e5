"""Claims: the manager instruments only functions the session's creator tagged for it, and
removes its own claim tag, and only its own, when it restores them."""

from __future__ import annotations

from typing import Any

import boto3

from plldb import naming
from plldb.lambdas.manager import entry as manager
from tests.harness.gateway import Gateway
from tests.harness.gateway_setup import get_session, instrument_nonce, put_session
from tests.harness.gateway_stack import INSTRUMENTABLE, STACK_NAME, configuration, create_stack

pytest_plugins = ["tests.harness.gateway_fixtures"]

OTHER = "arn:aws:iam::123456789012:user/someone-else"


def _run(action: str, session_id: str, **fields: Any) -> dict[str, Any]:
    """The manager invoked directly; an instrument run is armed as a ``$connect`` would."""
    event = {"action": action, "session_id": session_id, **fields}
    if action == "instrument" and "nonce" not in fields:
        event["nonce"] = instrument_nonce(session_id)
    return manager.handler(event, None)


def _tags(name: str) -> dict[str, str]:
    lambda_ = boto3.client("lambda")
    arn = lambda_.get_function_configuration(FunctionName=name)["FunctionArn"]
    return lambda_.list_tags(Resource=arn)["Tags"]


def _tag(name: str, value: str) -> None:
    lambda_ = boto3.client("lambda")
    arn = lambda_.get_function_configuration(FunctionName=name)["FunctionArn"]
    lambda_.tag_resource(Resource=arn, Tags={naming.CLAIM_TAG: value})


def test_only_functions_claimed_by_the_sessions_creator_are_instrumented(
    gateway: Gateway,
) -> None:
    names = create_stack()
    before = {logical: configuration(names[logical]) for logical in INSTRUMENTABLE}
    session_id = put_session(STACK_NAME, status=naming.ACTIVE, claim=False)
    creator = boto3.client("dynamodb").get_item(
        TableName=naming.SESSIONS_TABLE, Key={naming.A_SESSION_ID: {"S": session_id}}
    )["Item"][naming.A_CREATED_BY]["S"]
    _tag(names["Plain"], naming.claim_value(creator, session_id))
    _tag(names["NoEnv"], naming.claim_value(OTHER, session_id))  # someone else's claim
    _tag(names["Wrapped"], naming.claim_value(creator, "another-session"))

    summary = _run("instrument", session_id)

    assert summary["instrumented"] == [names["Plain"]]
    skipped = {s["function"]: s["reason"] for s in summary["skipped"]}
    for logical in ("NoEnv", "Wrapped", "Child"):
        assert skipped[names[logical]] == (
            f"not claimed by {creator} for this session: plldb debugs only functions your own "
            "credentials could tag (plldb:claim, lambda:TagResource); see docs/security.md"
        )
        assert configuration(names[logical]) == before[logical]


def test_a_session_without_a_creator_instruments_nothing(gateway: Gateway) -> None:
    names = create_stack()
    session_id = put_session(STACK_NAME, status=naming.ACTIVE)
    boto3.client("dynamodb").update_item(
        TableName=naming.SESSIONS_TABLE,
        Key={naming.A_SESSION_ID: {"S": session_id}},
        UpdateExpression="REMOVE #by",
        ExpressionAttributeNames={"#by": naming.A_CREATED_BY},
    )
    summary = _run("instrument", session_id)
    assert summary["instrumented"] == []
    reasons = {s["function"]: s["reason"] for s in summary["skipped"]}
    assert reasons[names["Plain"]] == (
        f"session {session_id} names no creator: plldb instruments only claimed functions"
    )


def test_restore_removes_the_claim_only_while_it_is_still_this_sessions(
    gateway: Gateway,
) -> None:
    names = create_stack()
    session_id = put_session(STACK_NAME, status=naming.ACTIVE)
    summary = _run("instrument", session_id)
    assert sorted(summary["instrumented"]) == sorted(names[n] for n in INSTRUMENTABLE)
    reclaimed = naming.claim_value(OTHER, "a-later-session")
    _tag(names["NoEnv"], reclaimed)  # a --force takeover re-claimed it meanwhile

    result = _run("deinstrument", session_id)

    assert sorted(result["restored"]) == sorted(names[n] for n in INSTRUMENTABLE)
    assert naming.CLAIM_TAG not in _tags(names["Plain"])
    assert _tags(names["NoEnv"])[naming.CLAIM_TAG] == reclaimed
    env = configuration(names["NoEnv"]).get("Environment", {}).get("Variables", {})
    assert naming.ENV_SESSION_ID not in env  # restored before the tag question


def test_a_session_that_instruments_nothing_is_closed_and_holds_no_stack(
    gateway: Gateway,
) -> None:
    """An attacker's session (no claim) must not keep the next developer's attach out."""
    create_stack()
    session_id = put_session(STACK_NAME, status=naming.ACTIVE, claim=False)
    assert _run("instrument", session_id)["instrumented"] == []
    assert get_session(session_id)[naming.A_STATUS]["S"] == naming.CLOSED


def test_instrument_pointed_at_another_connection_is_refused(gateway: Gateway) -> None:
    """Whoever may invoke the manager directly cannot redirect a session's progress."""
    names = create_stack()
    before = {logical: configuration(names[logical]) for logical in INSTRUMENTABLE}
    session_id = put_session(STACK_NAME, status=naming.ACTIVE)
    boto3.client("dynamodb").update_item(
        TableName=naming.SESSIONS_TABLE,
        Key={naming.A_SESSION_ID: {"S": session_id}},
        UpdateExpression="SET #conn = :conn",
        ExpressionAttributeNames={"#conn": naming.A_CONNECTION_ID},
        ExpressionAttributeValues={":conn": {"S": "the-developers="}},
    )
    result = _run("instrument", session_id, connection_id="attackers=")
    assert result == {
        "error": f"session {session_id} is not on this connection: nothing instrumented"
    }
    assert {logical: configuration(names[logical]) for logical in INSTRUMENTABLE} == before
    assert get_session(session_id)[naming.A_STATUS]["S"] == naming.ACTIVE


def test_the_manager_takes_its_targets_from_the_session_only(gateway: Gateway) -> None:
    """Anyone who may invoke the manager (plldb detach needs that) knows a live session's id
    and connection (the debugger role reads them). Pointing an instrument request at it with
    other targets, or running it without the nonce of the $connect that opened it, changes
    nothing; the session's own run ignores whatever targets the request names."""
    names = create_stack()
    before = {logical: configuration(names[logical]) for logical in INSTRUMENTABLE}
    session_id = put_session(STACK_NAME, status=naming.ACTIVE, functions=["Plain"], timeout=600)
    forged = {"stack_name": "attackers-stack", "functions": [], "timeout": 1}
    assert _run("instrument", session_id, nonce="", **forged) == {
        "error": "instrument needs the nonce of the $connect that opened the session"
    }
    instrument_nonce(session_id)  # the developer's $connect armed it; the attacker guesses
    assert _run("instrument", session_id, nonce="guessed", **forged) == {"error": (
        f"session {session_id}: this request was not started by the $connect that opened it "
        "(or was already run): nothing instrumented")}
    assert {logical: configuration(names[logical]) for logical in INSTRUMENTABLE} == before
    assert get_session(session_id)[naming.A_STATUS]["S"] == naming.ACTIVE

    nonce = instrument_nonce(session_id)
    summary = _run("instrument", session_id, nonce=nonce, **forged)
    assert summary["instrumented"] == [names["Plain"]]  # the session's filter, not the request's
    assert configuration(names["Plain"])["Timeout"] == 600  # the session's timeout
    replayed = _run("instrument", session_id, nonce=nonce, **forged)
    assert "was not started by the $connect" in replayed["error"]  # a nonce is used once
