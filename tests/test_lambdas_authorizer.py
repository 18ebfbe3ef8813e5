"""The ``$connect`` authorizer, called directly: who is calling, and which session it may use.

Callers are real IAM users of the moto server; their identity proofs are signed by the
product's own signer (plldb.session.identity) and checked by replaying them to moto's STS.
"""

from __future__ import annotations

import base64
import json
import re
import time
import uuid
from typing import Any

import boto3
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from plldb import limits, naming
from plldb.lambdas import authorizer
from tests.harness.gateway import Gateway
from tests.harness.gateway_setup import get_session, put_session, scan
from tests.harness.identity_proof import NO_RIGHTS, caller_arn, proof_headers
from tests.harness.moto_server import MotoServer
from tests.harness.principals import Principal, create_user

pytest_plugins = ["tests.harness.gateway_fixtures"]

METHOD_ARN = "arn:aws:execute-api:us-east-1:123456789012:abc123/prod/$connect"


def _event(
    session_id: Any,
    headers: dict[str, str] | None = None,
    connection_id: str = "conn1=",
    **query: str,
) -> dict[str, Any]:
    return {
        "type": "REQUEST",
        "methodArn": METHOD_ARN,
        "headers": headers if headers is not None else proof_headers(str(session_id)),
        "queryStringParameters": {"sessionId": session_id, **query},
        "requestContext": {"connectionId": connection_id, "routeKey": "$connect"},
    }


def _effect(result: dict[str, Any]) -> str:
    [statement] = result["policyDocument"]["Statement"]
    assert statement["Resource"] == METHOD_ARN and statement["Action"] == "execute-api:Invoke"
    return statement["Effect"]


def _denied(event: dict[str, Any], caplog: pytest.LogCaptureFixture, reason: str | re.Pattern[str]) -> None:
    """Deny, with ``reason`` (text, or a pattern) in the authorizer's log, and no table changed."""
    sessions, requests = scan(naming.SESSIONS_TABLE), scan(naming.DEBUGGER_TABLE)
    caplog.clear()
    result = authorizer.handler(event, None)
    assert _effect(result) == "Deny" and result["context"] == {}
    found = reason.search(caplog.text) if isinstance(reason, re.Pattern) else reason in caplog.text
    assert found, caplog.text
    assert scan(naming.SESSIONS_TABLE) == sessions
    assert scan(naming.DEBUGGER_TABLE) == requests


@pytest.fixture
def other(gateway: Gateway) -> Principal:
    """Another IAM user of the account: no rights at all, but an identity STS confirms."""
    return create_user(boto3.client("iam"), "someone-else", NO_RIGHTS)


def test_a_new_session_is_created_for_the_authenticated_caller(gateway: Gateway) -> None:
    session_id = str(uuid.uuid4())
    result = authorizer.handler(
        _event(session_id, stackName="my-stack", functions="Hello*,Echo", timeout="30"), None
    )
    assert _effect(result) == "Allow"
    me = caller_arn()
    assert result["principalId"] == me
    nonce = result["context"].pop("instrumentNonce")
    assert result["context"] == {"sessionId": session_id, "stackName": "my-stack", "callerArn": me}
    item = get_session(session_id)
    # the session keeps only the nonce's digest: the table is readable by the debugger role
    assert item[naming.A_INSTRUMENT_NONCE]["S"] == naming.nonce_digest(nonce) != nonce
    assert item[naming.A_STATUS]["S"] == naming.ACTIVE
    assert item[naming.A_CREATED_BY]["S"] == me
    assert item[naming.A_CONNECTION_ID]["S"] == "conn1="
    assert [f["S"] for f in item[naming.A_FUNCTIONS]["L"]] == ["Hello*", "Echo"]
    assert item[naming.A_TIMEOUT]["N"] == "30"
    assert int(item[naming.A_TTL]["N"]) >= time.time() + limits.SESSION_TTL_SECONDS - 60


def test_only_the_creator_resumes_a_session(
    other: Principal, caplog: pytest.LogCaptureFixture
) -> None:
    session_id = put_session("my-stack", status=naming.DISCONNECTED)
    as_other = proof_headers(session_id, other.session())
    _denied(_event(session_id, as_other, "conn2="), caplog, f"not created by {other.arn}")
    assert _effect(authorizer.handler(_event(session_id, connection_id="conn3="), None)) == "Allow"
    item = get_session(session_id)
    assert (item[naming.A_STATUS]["S"], item[naming.A_CONNECTION_ID]["S"]) == (
        naming.ACTIVE,
        "conn3=",
    )


def test_a_session_that_is_over_is_not_resumed(
    gateway: Gateway, caplog: pytest.LogCaptureFixture
) -> None:
    for session_id in (put_session("s", status=naming.CLOSED), put_session("s", ttl_in=-5)):
        _denied(_event(session_id), caplog, "is over")


def test_a_proof_for_another_session_is_refused(
    gateway: Gateway, caplog: pytest.LogCaptureFixture
) -> None:
    session_id = str(uuid.uuid4())
    stolen = proof_headers(str(uuid.uuid4()))
    _denied(_event(session_id, stolen, stackName="s"), caplog, "signed for another session")


def test_a_stale_or_unsigned_proof_is_refused(
    gateway: Gateway, caplog: pytest.LogCaptureFixture
) -> None:
    session_id = str(uuid.uuid4())
    proof = json.loads(base64.b64decode(proof_headers(session_id)[naming.IDENTITY_HEADER]))
    stale = {**proof, "X-Amz-Date": time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(time.time() - 900))}
    _denied(_event(session_id, _header(stale), stackName="s"), caplog, re.compile(r"signed 90\d s ago"))  # a loaded machine may pass a second
    unsigned = {
        **proof,
        "Authorization": proof["Authorization"].replace(";x-plldb-session", ""),
    }
    _denied(_event(session_id, _header(unsigned), stackName="s"), caplog, "not among the signed")
    _denied(_event(session_id, {}, stackName="s"), caplog, "no X-PLLDB-Identity header")
    _denied(_event(session_id, {naming.IDENTITY_HEADER: "%%%"}, stackName="s"), caplog, "base64")


def test_a_forged_signature_is_refused_by_sts(
    aws: MotoServer, gateway: Gateway, other: Principal, caplog: pytest.LogCaptureFixture
) -> None:
    """Under IAM enforcement moto's STS checks signatures, as STS does."""
    session_id = str(uuid.uuid4())
    proof = json.loads(
        base64.b64decode(proof_headers(session_id, other.session())[naming.IDENTITY_HEADER])
    )
    signature = proof["Authorization"].rsplit("Signature=", 1)[1]
    forged = {**proof, "Authorization": proof["Authorization"].replace(signature, "0" * 64)}
    aws.enforce_iam(True)
    try:
        _denied(_event(session_id, _header(forged), stackName="s"), caplog, "STS refused")
    finally:
        aws.enforce_iam(False)


def test_a_live_session_of_the_stack_is_replaced_only_with_force(
    other: Principal, caplog: pytest.LogCaptureFixture
) -> None:
    holder = put_session("shared", status=naming.ACTIVE, created_by=other.arn)
    session_id = str(uuid.uuid4())
    _denied(_event(session_id, stackName="shared"), caplog, f"attached by {other.arn}")
    forced = authorizer.handler(_event(session_id, stackName="shared", force="1"), None)
    assert _effect(forced) == "Allow"
    assert get_session(holder)[naming.A_STATUS]["S"] == naming.CLOSED
    assert get_session(session_id)[naming.A_CREATED_BY]["S"] == caller_arn()


def test_bad_options_are_refused(gateway: Gateway, caplog: pytest.LogCaptureFixture) -> None:
    session_id = str(uuid.uuid4())
    _denied(_event(session_id), caplog, "stackName")
    _denied(_event(session_id, stackName="x; drop"), caplog, "stackName")
    _denied(_event(session_id, stackName="s", timeout="901"), caplog, "timeout")
    _denied(_event(session_id, stackName="s", functions="a b"), caplog, "functions")


def test_instrumentation_records_are_not_sessions(
    gateway: Gateway, caplog: pytest.LogCaptureFixture
) -> None:
    """A FUNCTION# record never opens a connection, whatever its attributes."""
    record_key = put_session("s")
    boto3.client("dynamodb").update_item(
        TableName=naming.SESSIONS_TABLE,
        Key={naming.A_SESSION_ID: {"S": record_key}},
        UpdateExpression="SET #k = :k",
        ExpressionAttributeNames={"#k": naming.A_KIND},
        ExpressionAttributeValues={":k": {"S": naming.KIND_INSTRUMENTATION}},
    )
    _denied(_event(record_key), caplog, "is over")


def _header(proof: dict[str, str]) -> dict[str, str]:
    return {naming.IDENTITY_HEADER: base64.b64encode(json.dumps(proof).encode()).decode()}


_anything = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3)
    ),
    max_leaves=10,
)


@pytest.fixture
def unusable_sessions(gateway: Gateway) -> list[str]:
    return [
        put_session("s", ttl_in=-5),
        put_session("s", status=naming.CLOSED),
        put_session("s", created_by="arn:aws:iam::123456789012:user/somebody"),
        str(uuid.uuid4()),
    ]


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_random_events_are_denied_and_change_nothing(
    unusable_sessions: list[str], data: st.DataObject
) -> None:
    before = scan(naming.SESSIONS_TABLE)
    session_ids = st.sampled_from(unusable_sessions) | _anything
    event = data.draw(
        _anything
        | st.builds(
            lambda sid, conn, query, arn, headers: {
                "methodArn": arn,
                "headers": headers,
                "queryStringParameters": query if query is not None else {"sessionId": sid},
                "requestContext": {"connectionId": conn},
            },
            session_ids,
            st.text(max_size=12) | _anything,
            st.none() | _anything,
            st.just(METHOD_ARN) | _anything,
            _anything,
        )
    )
    result = authorizer.handler(event, None)
    assert result["policyDocument"]["Statement"][0]["Effect"] == "Deny"
    assert result["context"] == {}
    assert scan(naming.SESSIONS_TABLE) == before


# --- a proof is single-use, addressed to this API, signed for this region's STS ----------------
# AWS: "The host header must be included as a signed header" for SigV4, and a signature covers
# the credential scope's region and service (AWS General Reference, "Create a signed AWS API
# request"); STS answers SignatureDoesNotMatch when a request signed for one endpoint is sent
# to another. Since boto3 1.40 the SDK's STS default is the regional endpoint.


def _signed(
    session_id: str, *, url: str | None = None, region: str = "us-east-1",
    audience: str | None = None, when: float | None = None, host: bool = True,
) -> dict[str, str]:
    """A proof signed as plldb signs it, with one thing changed."""
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest

    from tests.harness.identity_proof import audience_for

    url = url or boto3.client("sts").meta.endpoint_url
    headers = {
        "Content-Type": naming.IDENTITY_CONTENT_TYPE,
        naming.IDENTITY_SESSION_HEADER: session_id,
        naming.IDENTITY_AUDIENCE_HEADER: audience if audience is not None else audience_for(),
        naming.IDENTITY_NONCE_HEADER: uuid.uuid4().hex,
    }
    if host:
        headers["Host"] = url.split("://", 1)[1].rstrip("/")
    request = AWSRequest(method="POST", url=url, data=naming.IDENTITY_BODY, headers=headers)
    credentials = boto3.Session().get_credentials().get_frozen_credentials()
    signer = SigV4Auth(credentials, "sts", region)
    # SigV4Auth.add_auth, at the time ``when`` instead of now
    request.context["timestamp"] = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(when or time.time()))
    request.headers["X-Amz-Date"] = request.context["timestamp"]
    canonical = signer.canonical_request(request)
    signature = signer.signature(signer.string_to_sign(request, canonical), request)
    signer._inject_signature_to_request(request, signature)
    return _header({name: str(value) for name, value in request.headers.items()})


def test_a_replayed_proof_is_refused(gateway: Gateway, caplog: pytest.LogCaptureFixture) -> None:
    session_id = str(uuid.uuid4())
    proof = proof_headers(session_id)
    assert _effect(authorizer.handler(_event(session_id, proof, stackName="s1"), None)) == "Allow"
    replayed = _event(session_id, proof, "conn9=", stackName="s1")
    _denied(replayed, caplog, "was already used")
    assert get_session(session_id)[naming.A_CONNECTION_ID]["S"] == "conn1="  # not moved


def test_a_proof_addressed_to_another_api_is_refused(
    gateway: Gateway, caplog: pytest.LogCaptureFixture
) -> None:
    session_id = str(uuid.uuid4())
    elsewhere = "https://other.execute-api.us-east-1.amazonaws.com/live"
    _denied(_event(session_id, _signed(session_id, audience=elsewhere), stackName="s"), caplog,
            f"the proof is addressed to '{elsewhere}', not to this helper stack")


def test_a_proof_for_another_sts_endpoint_names_the_mismatch(
    gateway: Gateway, caplog: pytest.LogCaptureFixture
) -> None:
    """What older boto3 (global endpoint) or AWS_STS_REGIONAL_ENDPOINTS=legacy would sign."""
    session_id = str(uuid.uuid4())
    own = boto3.client("sts").meta.endpoint_url.split("://", 1)[1]
    global_sts = _signed(session_id, url="https://sts.amazonaws.com")
    _denied(_event(session_id, global_sts, stackName="s"), caplog,
            f"the proof is signed for STS host 'sts.amazonaws.com', but this helper stack "
            f"verifies proofs with '{own}'")
    other_region = _signed(session_id, region="eu-west-1")
    _denied(_event(session_id, other_region, stackName="s"), caplog,
            "the proof's credential scope is 'eu-west-1/sts', not us-east-1/sts")
    without_host = _signed(session_id, host=False)
    _denied(_event(session_id, without_host, stackName="s"), caplog,
            "host is not among the signed headers")


def test_a_proof_dated_ahead_is_refused(gateway: Gateway, caplog: pytest.LogCaptureFixture) -> None:
    session_id = str(uuid.uuid4())
    ahead = _signed(session_id, when=time.time() + 240)  # was accepted up to 300 s ahead
    _denied(_event(session_id, ahead, stackName="s"), caplog,
            re.compile(r"the proof is dated 2[34]\d s in the future"))


def test_a_session_is_resumed_only_with_a_newer_proof(
    gateway: Gateway, caplog: pytest.LogCaptureFixture
) -> None:
    session_id = str(uuid.uuid4())
    older = _signed(session_id, when=time.time() - 60)  # made earlier, never used
    assert _effect(authorizer.handler(_event(session_id, stackName="s2"), None)) == "Allow"
    _denied(_event(session_id, older, "conn2="), caplog, "resumed with a newer proof")
    assert _effect(authorizer.handler(_event(session_id, connection_id="conn3="), None)) == "Allow"


def test_two_attaches_racing_for_a_stack_open_one_session(
    aws: MotoServer, gateway: Gateway, other: Principal, caplog: pytest.LogCaptureFixture
) -> None:
    """One live session per stack rests on a strongly consistent write, not on a read of
    StackNameIndex: a GSI is eventually consistent (Amazon DynamoDB Developer Guide, "Using
    Global Secondary Indexes": changes propagate "within a fraction of a second, under normal
    conditions"). The local cloud's index lags here, as it may in AWS, while two attaches of
    one stack connect one after the other."""
    aws.lag_indexes(60)
    first = str(uuid.uuid4())
    assert _effect(authorizer.handler(_event(first, stackName="raced"), None)) == "Allow"
    second = str(uuid.uuid4())
    as_other = proof_headers(second, other.session())
    _denied(_event(second, as_other, "conn2=", stackName="raced"), caplog,
            f"stack raced is attached by {caller_arn()} (no force)")
    live = [i for i in scan(naming.SESSIONS_TABLE)
            if i.get(naming.A_STACK_NAME, {}).get("S") == "raced"
            and i.get(naming.A_KIND, {}).get("S") == naming.KIND_SESSION]
    assert [i[naming.A_SESSION_ID]["S"] for i in live] == [first]


def test_force_takes_a_session_over_only_for_a_caller_who_claimed_its_functions(
    aws: MotoServer, gateway: Gateway, other: Principal, caplog: pytest.LogCaptureFixture
) -> None:
    """A colleague connecting with force=1 without plldb (so without claiming first) cannot
    push a developer's session away: force needs the right plldb attach exercises first,
    tagging the live session's functions with the caller's own claim."""
    from plldb.lambdas.manager import entry as manager
    from tests.harness.gateway_setup import instrument_nonce
    from tests.harness.gateway_stack import STACK_NAME, create_stack

    names = create_stack()
    holder = put_session(STACK_NAME, status=naming.ACTIVE, functions=["Plain"])
    attached = manager.handler({"action": "instrument", "session_id": holder, "connection_id": None,
                                "nonce": instrument_nonce(holder)}, None)
    assert attached["instrumented"] == [names["Plain"]]
    takeover = str(uuid.uuid4())
    forced = _event(takeover, proof_headers(takeover, other.session()), "conn7=",
                    stackName=STACK_NAME, force="1")
    _denied(forced, caplog, f"--force takes stack {STACK_NAME} from {caller_arn()} only for a "
            f"caller who claimed its functions first (plldb attach tags them): {names['Plain']} "
            f"not claimed by {other.arn}")
    assert get_session(holder)[naming.A_STATUS]["S"] == naming.ACTIVE
    lambda_ = boto3.client("lambda")  # what plldb attach does first, with the caller's rights
    arn = lambda_.get_function_configuration(FunctionName=names["Plain"])["FunctionArn"]
    lambda_.tag_resource(Resource=arn, Tags={naming.CLAIM_TAG: naming.claim_value(other.arn, takeover)})
    again = _event(takeover, proof_headers(takeover, other.session()), "conn8=",
                   stackName=STACK_NAME, force="1")
    assert _effect(authorizer.handler(again, None)) == "Allow"
    assert get_session(holder)[naming.A_STATUS]["S"] == naming.CLOSED
