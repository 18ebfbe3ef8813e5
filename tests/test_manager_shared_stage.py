"""The manager on a shared stage, called directly against moto: the stage's functions are
instrumented once, for the stage, by whichever session comes first; each session needs its
own route claim; a session that leaves changes nothing while another lives; the last one
restores the function as it was, every plldb tag removed."""

from __future__ import annotations

import uuid
from typing import Any

import boto3
import pytest

from plldb import naming, route_table
from plldb.lambdas import stage_table
from plldb.lambdas.common import Config
from plldb.lambdas.manager import entry as manager
from plldb.session.claims import claim_tags
from tests.harness.gateway import Gateway
from tests.harness.gateway_setup import get_session, instrument_nonce, put_session
from tests.harness.gateway_stack import STACK_NAME, VOLATILE, create_stack

pytest_plugins = ["tests.harness.gateway_fixtures"]

ALICE = "arn:aws:iam::123456789012:user/alice"
BOB = "arn:aws:iam::123456789012:user/bob"


@pytest.fixture
def plain(gateway: Gateway) -> str:
    return create_stack()["Plain"]


def _configuration(name: str) -> dict[str, Any]:
    found = boto3.client("lambda").get_function_configuration(FunctionName=name)
    return {k: v for k, v in found.items() if k not in VOLATILE}


def _tags(name: str) -> dict[str, str]:
    lambda_ = boto3.client("lambda")
    return lambda_.list_tags(Resource=lambda_.get_function_configuration(FunctionName=name)["FunctionArn"])["Tags"]


def _join(who: str, route: str, function: str, claim: bool = True) -> str:
    """A session of the stage as the authorizer creates it, claimed as plldb attach claims."""
    session_id = str(uuid.uuid4())
    if claim:
        lambda_ = boto3.client("lambda")
        arn = lambda_.get_function_configuration(FunctionName=function)["FunctionArn"]
        lambda_.tag_resource(Resource=arn, Tags=claim_tags(who, session_id, shared=True))
    put_session(STACK_NAME, status=naming.ACTIVE, functions=["Plain"], session_id=session_id,
                created_by=who, claim=False)
    boto3.client("dynamodb").update_item(
        TableName=naming.SESSIONS_TABLE, Key={naming.A_SESSION_ID: {"S": session_id}},
        UpdateExpression="SET #r = :r, #m = :m",
        ExpressionAttributeNames={"#r": naming.A_ROUTES, "#m": naming.A_MIRROR},
        ExpressionAttributeValues={":r": {"L": [{"S": route}]}, ":m": {"BOOL": False}})
    stage_table.join(Config.from_environ(), STACK_NAME, session_id,
                     route_table.entry_attribute([route], len(route), who, False), None)
    return session_id


def _instrument(session_id: str) -> dict[str, Any]:
    return manager.handler({"action": "instrument", "session_id": session_id, "connection_id": None,
                            "nonce": instrument_nonce(session_id)}, None)


def _detach(session_id: str) -> dict[str, Any]:
    return manager.handler({"action": "deinstrument", "session_id": session_id,
                            "connection_id": None}, None)


def test_the_stage_is_instrumented_once_and_restored_by_the_last_session(plain: str) -> None:
    before, tags_before = _configuration(plain), _tags(plain)
    alice = _join(ALICE, "header:x-user=alice", plain)
    assert _instrument(alice)["instrumented"] == [plain]
    instrumented = _configuration(plain)
    env = instrumented["Environment"]["Variables"]
    assert env[naming.ENV_SESSION_ID] == naming.stack_lock_key(STACK_NAME)
    record = boto3.client("dynamodb").get_item(
        TableName=naming.SESSIONS_TABLE, Key={naming.A_SESSION_ID: {"S": naming.function_key(plain)}},
        ConsistentRead=True)["Item"]
    assert record[naming.A_INSTRUMENTED_BY]["S"] == naming.stack_lock_key(STACK_NAME)

    bob = _join(BOB, "header:x-user=bob", plain)
    assert _instrument(bob)["instrumented"] == [plain]
    assert _configuration(plain) == instrumented  # not updated again: no cold start for Alice

    left = _detach(alice)
    assert left == {"restored": [], "failed": [], "remaining": 1}
    assert _configuration(plain) == instrumented
    assert get_session(alice)[naming.A_STATUS]["S"] == naming.CLOSED
    assert naming.route_tag(alice) not in _tags(plain) and naming.route_tag(bob) in _tags(plain)
    assert list({e.session_id for e in route_table.stage_entries(
        stage_table.read(Config.from_environ(), STACK_NAME))}) == [bob]

    assert _detach(bob)["restored"] == [plain]
    assert _configuration(plain) == before
    assert _tags(plain) == tags_before
    assert stage_table.read(Config.from_environ(), STACK_NAME) is None


def test_a_session_without_its_own_route_claim_instruments_nothing(plain: str) -> None:
    """Bob copies Alice's route claim value onto his own key? He cannot produce a value
    bound to his session without tagging; with no claim at all he gets nothing."""
    before = _configuration(plain)
    bob = _join(BOB, "header:x-user=bob", plain, claim=False)
    summary = _instrument(bob)
    assert summary["instrumented"] == []
    [skipped] = summary["skipped"]
    assert skipped["function"] == plain
    assert f"not claimed by {BOB} for this session" in skipped["reason"]
    assert naming.route_tag(bob) in skipped["reason"]
    assert _configuration(plain) == before
    assert get_session(bob)[naming.A_STATUS]["S"] == naming.CLOSED


def test_alices_claim_does_not_let_bobs_session_in(plain: str) -> None:
    before = _configuration(plain)
    alice_claim = str(uuid.uuid4())
    lambda_ = boto3.client("lambda")
    arn = lambda_.get_function_configuration(FunctionName=plain)["FunctionArn"]
    lambda_.tag_resource(Resource=arn, Tags=claim_tags(ALICE, alice_claim, shared=True))
    bob = _join(BOB, "header:x-user=bob", plain, claim=False)
    lambda_.tag_resource(Resource=arn, Tags={naming.route_tag(bob): naming.claim_value(ALICE, alice_claim)})
    assert _instrument(bob)["instrumented"] == []
    assert _configuration(plain) == before


def test_the_sweep_prunes_a_killed_session_and_restores_when_none_is_left(plain: str) -> None:
    before = _configuration(plain)
    alice = _join(ALICE, "header:x-user=alice", plain)
    assert _instrument(alice)["instrumented"] == [plain]
    boto3.client("dynamodb").update_item(  # killed: past its TTL, no $disconnect ever came
        TableName=naming.SESSIONS_TABLE, Key={naming.A_SESSION_ID: {"S": alice}},
        UpdateExpression="SET #ttl = :past", ExpressionAttributeNames={"#ttl": naming.A_TTL},
        ExpressionAttributeValues={":past": {"N": "1"}})
    manager.handler({"action": "sweep"}, None)
    assert _configuration(plain) == before
    assert stage_table.read(Config.from_environ(), STACK_NAME) is None
