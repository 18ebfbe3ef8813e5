"""The ``$connect`` authorizer on a shared stage, called directly, as two IAM users.

Alice and Bob are real IAM users of the moto server; their identity proofs are signed by
the product's signer and checked by moto's STS. Each attack is made by Bob, holding what his
own legitimate session holds, against Alice's entry, and checks that nothing changed.
"""

from __future__ import annotations

import json
import re
import uuid
from typing import Any

import boto3
import pytest

from plldb import naming, route_table, routing
from plldb.lambdas import authorizer, stage_table
from plldb.lambdas.common import Config
from plldb.session.claims import claim_tags
from tests.harness.gateway import Gateway
from tests.harness.gateway_setup import get_session, put_session, scan
from tests.harness.identity_proof import caller_arn, proof_headers
from tests.harness.principals import Principal, create_user

pytest_plugins = ["tests.harness.gateway_fixtures"]

STACK = "shop"
METHOD_ARN = "arn:aws:execute-api:us-east-1:123456789012:abc123/prod/$connect"
ALLOW_ALL = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sts:*", "Resource": "*"}]}


def _connect(session_id: str, who: boto3.Session | None = None, connection: str | None = None,
             **query: str) -> dict[str, Any]:
    event = {
        "type": "REQUEST",
        "methodArn": METHOD_ARN,
        "headers": proof_headers(session_id, who),
        "queryStringParameters": {"sessionId": session_id, "stackName": STACK} | query,
        "requestContext": {"connectionId": connection or f"c-{session_id[:8]}=", "routeKey": "$connect"},
    }
    return authorizer.handler(event, None)


def _effect(result: dict[str, Any]) -> str:
    return result["policyDocument"]["Statement"][0]["Effect"]


def _routes(*expressions: str) -> str:
    return json.dumps(list(expressions))


def _table() -> dict[str, route_table.Entry]:
    item = stage_table.read(Config.from_environ(), STACK)
    return {e.session_id: e for e in route_table.stage_entries(item)}


def _refused(caplog: pytest.LogCaptureFixture, reason: str, session_id: str,
             who: boto3.Session | None = None, **query: str) -> None:
    """Deny with ``reason`` logged, and neither table changed."""
    sessions, requests = scan(naming.SESSIONS_TABLE), scan(naming.DEBUGGER_TABLE)
    caplog.clear()
    assert _effect(_connect(session_id, who, **query)) == "Deny"
    assert re.search(reason, caplog.text), caplog.text
    assert scan(naming.SESSIONS_TABLE) == sessions
    assert scan(naming.DEBUGGER_TABLE) == requests


@pytest.fixture
def bob(gateway: Gateway) -> Principal:
    return create_user(boto3.client("iam"), f"bob-{uuid.uuid4().hex[:6]}", ALLOW_ALL)


@pytest.fixture
def alice_session(gateway: Gateway) -> str:
    session_id = str(uuid.uuid4())
    assert _effect(_connect(session_id, routes=_routes("header:x-debug-user=alice"))) == "Allow"
    return session_id


def test_sessions_with_routes_share_the_stack_each_with_its_own_entry(
    alice_session: str, bob: Principal
) -> None:
    bobs = str(uuid.uuid4())
    assert _effect(_connect(bobs, bob.session(), routes=_routes("header:x-debug-user=bob"),
                            mirror="1")) == "Allow"
    table = _table()
    assert [str(r) for r in table[alice_session].routes] == ["header:x-debug-user=alice"]
    assert table[alice_session].by == caller_arn() and not table[alice_session].mirror
    assert [str(r) for r in table[bobs].routes] == ["header:x-debug-user=bob"]
    assert table[bobs].by == bob.arn and table[bobs].mirror
    assert table[alice_session].at <= table[bobs].at  # the earlier one wins on overlap
    item = get_session(bobs)
    assert [r["S"] for r in item[naming.A_ROUTES]["L"]] == ["header:x-debug-user=bob"]
    assert item[naming.A_MIRROR]["BOOL"] is True


def test_bob_cannot_change_alices_routes_by_reconnecting_with_her_session(
    alice_session: str, bob: Principal, caplog: pytest.LogCaptureFixture
) -> None:
    before = _table()
    _refused(caplog, f"not created by {re.escape(bob.arn)}", alice_session, bob.session(),
             routes=_routes("header:x-debug-user=bob"))
    assert _table() == before


def test_a_reconnect_keeps_the_routes_the_session_was_created_with(alice_session: str) -> None:
    assert _effect(_connect(alice_session, connection="again=",
                            routes=_routes("sample:100%"))) == "Allow"
    assert [str(r) for r in _table()[alice_session].routes] == ["header:x-debug-user=alice"]


def test_a_whole_stack_session_is_refused_while_routed_ones_live(
    alice_session: str, bob: Principal, caplog: pytest.LogCaptureFixture
) -> None:
    """Bob asks for the unrouted traffic: everything. Without force he gets nothing."""
    _refused(caplog, f"stack {STACK} is attached by .* \\(no force\\)", str(uuid.uuid4()), bob.session())
    assert list(_table()) == [alice_session]


def test_force_needs_the_callers_claims_on_the_stages_functions(
    bob: Principal, caplog: pytest.LogCaptureFixture
) -> None:
    """A stage with an instrumented function: Bob's force without his claim on it fails;
    with it, the stage's sessions are closed."""
    from plldb.lambdas.manager import entry as manager
    from tests.harness.gateway_setup import instrument_nonce
    from tests.harness.gateway_stack import STACK_NAME, create_stack

    plain = create_stack()["Plain"]
    alice = str(uuid.uuid4())
    lambda_ = boto3.client("lambda")
    arn = lambda_.get_function_configuration(FunctionName=plain)["FunctionArn"]
    lambda_.tag_resource(Resource=arn, Tags=claim_tags(caller_arn(), alice, shared=True))
    assert _effect(_connect(alice, stackName=STACK_NAME, functions="Plain",
                            routes=_routes("header:x-u=alice"))) == "Allow"
    assert manager.handler({"action": "instrument", "session_id": alice, "connection_id": f"c-{alice[:8]}=",
                            "nonce": instrument_nonce(alice)}, None)["instrumented"] == [plain]
    takeover = str(uuid.uuid4())
    _refused(caplog, f"only for a caller who claimed its functions first.*{plain} not claimed by "
             f"{re.escape(bob.arn)}", takeover, bob.session(), stackName=STACK_NAME, force="1")
    assert get_session(alice)[naming.A_STATUS]["S"] == naming.ACTIVE
    lambda_.tag_resource(Resource=arn, Tags=claim_tags(bob.arn, takeover, shared=False))
    assert _effect(_connect(takeover, bob.session(), stackName=STACK_NAME, force="1")) == "Allow"
    assert get_session(alice)[naming.A_STATUS]["S"] == naming.CLOSED


def test_a_routed_session_is_refused_while_a_whole_stack_one_lives(
    gateway: Gateway, bob: Principal, caplog: pytest.LogCaptureFixture
) -> None:
    whole = str(uuid.uuid4())
    assert _effect(_connect(whole)) == "Allow"
    _refused(caplog, f"stack {STACK} is attached by .* \\(no force\\)", str(uuid.uuid4()),
             bob.session(), routes=_routes("header:x-debug-user=bob"))


@pytest.mark.parametrize(("routes", "reason"), [
    ("not json", "routes is not a JSON list"),
    ('{"a": 1}', "routes is not a JSON list of strings"),
    (_routes("cookie:x=1"), "malformed routes: route .cookie:x=1.: unknown kind .cookie."),
    (_routes(*[f"header:x-u=v{i}" for i in range(routing.MAX_ROUTES + 1)]), "malformed routes"),
])
def test_malformed_routes_are_refused(gateway: Gateway, caplog: pytest.LogCaptureFixture,
                                      routes: str, reason: str) -> None:
    _refused(caplog, reason, str(uuid.uuid4()), routes=routes)


def test_a_full_stage_is_refused(gateway: Gateway, caplog: pytest.LogCaptureFixture) -> None:
    for i in range(naming.MAX_SHARED_SESSIONS):
        session_id = put_session(STACK, status=naming.ACTIVE, claim=False)
        stage_table.join(Config.from_environ(), STACK, session_id,
                         route_table.entry_attribute([f"header:x-u=u{i}"], i, "arn:aws:iam::1:user/u", False), None)
    _refused(caplog, f"has {naming.MAX_SHARED_SESSIONS} live sessions on its shared stage",
             str(uuid.uuid4()), routes=_routes("header:x-u=late"))


def test_nobody_joins_while_the_stage_is_being_restored(
    gateway: Gateway, caplog: pytest.LogCaptureFixture
) -> None:
    config = Config.from_environ()
    session_id = put_session(STACK, status=naming.CLOSED, claim=False)
    stage_table.join(config, STACK, session_id, route_table.entry_attribute(["sample:1%"], 1, "arn:x", False), None)
    stage_table.leave(config, STACK, session_id)
    assert stage_table.begin_restore(config, STACK)
    _refused(caplog, "being restored .* attach again in a few seconds", str(uuid.uuid4()),
             routes=_routes("header:x-u=a"))
    stage_table.finish_restore(config, STACK)
    assert stage_table.read(config, STACK) is None
    assert _effect(_connect(str(uuid.uuid4()), routes=_routes("header:x-u=a"))) == "Allow"


def test_the_last_entry_can_be_restored_only_once_and_not_while_one_remains(gateway: Gateway) -> None:
    config = Config.from_environ()
    first, second = str(uuid.uuid4()), str(uuid.uuid4())
    for session_id in (first, second):
        stage_table.join(config, STACK, session_id, route_table.entry_attribute(["sample:5%"], 1, "arn:x", False), None)
    stage_table.leave(config, STACK, first)
    assert not stage_table.begin_restore(config, STACK)  # the second is still there
    stage_table.leave(config, STACK, second)
    assert stage_table.begin_restore(config, STACK)
    assert not stage_table.begin_restore(config, STACK)  # another run holds it

