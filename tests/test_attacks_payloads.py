"""Attack: read or write another session's payload objects (docs/security.md, promise 5).

Large events and results travel through ``payloads/<function aws:userid>/<session>/<request>/`` of the helper
stack's bucket. Clients hold no S3 rights: a payload object is reachable only through the
URLs the shim presigns and sends over the session's own connection. Each test acts as a
real principal in the IAM-enforcing local cloud and checks that nothing changed.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from typing import Any

import boto3
import botocore.exceptions
import pytest

from plldb import limits, naming
from plldb.layer.cloud import Cloud, PayloadError, ShimConfig
from plldb.session import payloads
from tests.harness.iam_audit import expect_refusal
from tests.harness.localcloud import LocalCloud, LocalCloudSettings
from tests.harness.moto_server import REGION, MotoServer
from tests.harness.principals import Principal, assume_role, create_user

pytestmark = pytest.mark.e2e

VICTIM_SESSION = str(uuid.uuid4())
EVENT = b'{"card": "4111 1111 1111 1111"}'
RESULT = b'{"statusCode": 200, "body": "the victim\'s result"}'
READ_ONLY_LAMBDA = {
    "Version": "2012-10-17",
    "Statement": [
        {"Effect": "Allow", "Action": ["lambda:Get*", "lambda:List*"], "Resource": "*"}
    ],
}


@pytest.fixture(scope="module")
def cloud() -> Iterator[LocalCloud]:
    with LocalCloud(LocalCloudSettings(app_dir=None, max_containers=1)) as started:
        yield started


@pytest.fixture(scope="module")
def harness(cloud: LocalCloud) -> boto3.Session:
    """The account administrator (the harness's credentials)."""
    return cloud.administrator()


def _client(cloud: LocalCloud, session: boto3.Session, service: str) -> Any:
    return session.client(service, endpoint_url=cloud.urls["moto"])


@pytest.fixture(scope="module")
def bucket(cloud: LocalCloud) -> str:
    return cloud.helper_outputs[naming.OUTPUT_PAYLOAD_BUCKET]


@pytest.fixture(scope="module")
def shim_credentials(cloud: LocalCloud, harness: boto3.Session, bucket: str) -> dict[str, str]:
    """A debugged function's credentials: its role holds the shim's payload rights."""
    iam = _client(cloud, harness, "iam")
    trust = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole",
                       "Principal": {"Service": "lambda.amazonaws.com"}}],
    }
    role = iam.create_role(RoleName="victim-function", AssumeRolePolicyDocument=json.dumps(trust))
    payload_rights = {
        "Effect": "Allow",
        "Action": ["s3:GetObject", "s3:PutObject"],
        "Resource": f"arn:aws:s3:::{bucket}/{naming.PAYLOAD_PREFIX}*",
    }
    iam.put_role_policy(
        RoleName="victim-function",
        PolicyName=naming.SHIM_POLICY_NAME,
        PolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": [payload_rights]}),
    )
    moto = MotoServer(port=urllib.parse.urlsplit(cloud.urls["moto"]).port)
    return moto.service_credentials(role["Role"]["Arn"], "victim-function", 900)


@pytest.fixture(scope="module")
def shim(
    cloud: LocalCloud, shim_credentials: dict[str, str], bucket: str
) -> Iterator[Cloud]:
    """The real shim code of the victim's function, with that function's credentials."""
    patch = pytest.MonkeyPatch()
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        patch.setenv(name, shim_credentials[name])
    patch.setenv("AWS_ENDPOINT_URL", cloud.urls["moto"])
    patch.setenv("AWS_DEFAULT_REGION", REGION)
    # boto3's default session keeps the credentials it first found: the shim's own here,
    # the previous one (with its credentials) again afterwards
    patch.setattr(boto3, "DEFAULT_SESSION", None)
    config = ShimConfig(
        session_id=VICTIM_SESSION,
        sessions_table=naming.SESSIONS_TABLE,
        debugger_table=naming.DEBUGGER_TABLE,
        management_url=cloud.urls["management"],
        payload_bucket=bucket,
        function_name="victim-function",
    )
    yield Cloud(config)
    patch.undo()


@pytest.fixture(scope="module")
def attacker(cloud: LocalCloud, harness: boto3.Session) -> Principal:
    """Read-only Lambda access plus what any account principal may do: assume the
    debugger role."""
    debugger_role = cloud.helper_outputs[naming.OUTPUT_DEBUGGER_ROLE]
    user = create_user(
        _client(cloud, harness, "iam"), "payload-attacker", READ_ONLY_LAMBDA, [debugger_role]
    )
    return assume_role(user, debugger_role, "payload-attacker")


def _object(cloud: LocalCloud, harness: boto3.Session, bucket: str, key: str) -> bytes:
    return _client(cloud, harness, "s3").get_object(Bucket=bucket, Key=key)["Body"].read()


def _refusal(call: Any) -> str:
    with pytest.raises(botocore.exceptions.ClientError) as caught:
        call()
    return caught.value.response["Error"]["Code"]


def _in_url(key: str) -> str:
    """A key as a presigned URL's path holds it (the owner's colon is percent-encoded)."""
    return urllib.parse.quote(key)


def _http(url: str, method: str, data: bytes | None = None) -> tuple[int, bytes]:
    request = urllib.request.Request(
        url, data=data, method=method, headers={"Content-Type": "application/octet-stream"}
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def test_attacker_cannot_read_payloads(
    cloud: LocalCloud, harness: boto3.Session, bucket: str, shim: Cloud, attacker: Principal
) -> None:
    """As the debugger role (any account principal may assume it), another session's event
    and result objects can be neither read nor overwritten."""
    event = shim.put_payload("req-victim", "event", EVENT, VICTIM_SESSION)
    result_key = shim.payload_key("req-victim", "response", VICTIM_SESSION)
    _client(cloud, harness, "s3").put_object(Bucket=bucket, Key=result_key, Body=RESULT)
    for action in ("s3:GetObject", "s3:PutObject"):
        expect_refusal(
            action,
            cloud.helper_outputs[naming.OUTPUT_DEBUGGER_ROLE],
            f"arn:aws:s3:::{bucket}/{naming.PAYLOAD_PREFIX}*",
            why="proves the debugger role, which any account principal may assume, has no "
            "payload rights",
        )
    s3 = attacker.client("s3")
    for key in (event["key"], result_key):
        assert _refusal(lambda: s3.get_object(Bucket=bucket, Key=key)) == "AccessDenied"  # noqa: B023
        forged = lambda: s3.put_object(Bucket=bucket, Key=key, Body=b'{"forged": true}')  # noqa: B023, E731
        assert _refusal(forged) == "AccessDenied"
    assert _object(cloud, harness, bucket, event["key"]) == EVENT
    assert _object(cloud, harness, bucket, result_key) == RESULT


def test_a_presigned_url_opens_only_its_own_object(
    cloud: LocalCloud, harness: boto3.Session, bucket: str, shim: Cloud
) -> None:
    """The signature covers the method and the key: a URL the shim sent for one request's
    object cannot read or write another request's or another session's object."""
    other_session = naming.payload_key(shim.owner, str(uuid.uuid4()), "req-other", "event")
    other_request = shim.put_payload("req-other", "event", EVENT, VICTIM_SESSION)["key"]
    _client(cloud, harness, "s3").put_object(Bucket=bucket, Key=other_session, Body=EVENT)
    mine = shim.put_payload("req-mine", "event", b'{"mine": 1}', VICTIM_SESSION)
    get_url = shim.presign("get", mine["key"], 60)
    upload = shim.result_upload("req-mine", 60, VICTIM_SESSION)
    assert upload is not None

    # what the session's own connection may do: fetch its event, upload its result
    assert payloads.fetch({**mine, "url": get_url}) == b'{"mine": 1}'
    ref = payloads.upload(upload, RESULT)
    assert ref["key"] == naming.payload_key(shim.owner, VICTIM_SESSION, "req-mine", "response")
    assert shim.get_payload("req-mine", VICTIM_SESSION, ref) == RESULT

    for victim in (other_request, other_session):
        status, body = _http(get_url.replace(_in_url(mine["key"]), _in_url(victim)), "GET")
        assert (status, b"SignatureDoesNotMatch" in body) == (403, True), body
        put_url = upload["url"].replace(_in_url(upload["key"]), _in_url(victim))
        status, body = _http(put_url, "PUT", b'{"forged": true}')
        assert (status, b"SignatureDoesNotMatch" in body) == (403, True), body
        assert _object(cloud, harness, bucket, victim) == EVENT
    # a PUT URL does not read, a GET URL does not write
    assert _http(upload["url"], "GET")[0] == 403
    assert _http(get_url, "PUT", b'{"forged": true}')[0] == 403
    assert _object(cloud, harness, bucket, mine["key"]) == b'{"mine": 1}'


def test_a_presigned_url_stops_working_when_it_expires(shim: Cloud) -> None:
    """URLs live until the invocation's deadline plus a margin (plldb.layer.loop
    ``payload_url_seconds``); a URL copied from a log or a message later opens nothing."""
    key = shim.put_payload("req-expiring", "event", EVENT, VICTIM_SESSION)["key"]
    url = shim.presign("get", key, 1)
    assert _http(url, "GET") == (200, EVENT)
    deadline = time.monotonic() + 10
    while (answer := _http(url, "GET"))[0] == 200:
        assert time.monotonic() < deadline, "the URL still worked 10 s after it expired"
        time.sleep(0.2)
    assert answer[0] == 403 and b"Request has expired" in answer[1], answer


def test_a_result_object_over_the_limit_is_refused_by_the_shim(shim: Cloud) -> None:
    """A PUT URL does not bound the size of what is uploaded: the shim checks it before
    reading, so the function never answers with more than Lambda's 6 MB."""
    upload = shim.result_upload("req-huge", 60, VICTIM_SESSION)
    assert upload is not None
    assert _http(upload["url"], "PUT", b"x" * (limits.MAX_PAYLOAD + 1))[0] == 200
    ref = {"bucket": upload["bucket"], "key": upload["key"], "size": 10}
    with pytest.raises(PayloadError, match=f"over the {limits.MAX_PAYLOAD} byte limit"):
        shim.get_payload("req-huge", VICTIM_SESSION, ref)
    with pytest.raises(payloads.PayloadError, match="over the 6291456 byte limit"):
        payloads.upload(upload, b"x" * (limits.MAX_PAYLOAD + 1))
