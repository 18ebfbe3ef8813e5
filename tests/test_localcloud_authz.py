"""The local cloud refuses what AWS refuses, resources included (tests/harness/localcloud_authz.py).

One moto launcher with two functions, ``stackA-Fn`` and ``stackB-Fn``, created by the
harness; then IAM enforcement on, and real IAM principals (tests/harness/principals.py)
act on them. moto alone would let a statement on ``function:stackA-*`` act on stackB.
"""

from __future__ import annotations

import io
import json
import time
import urllib.error
import urllib.request
import zipfile
from collections.abc import Iterator
from typing import Any

import boto3
import botocore.exceptions
import pytest

from tests.harness import principals
from tests.harness.gateway import Gateway, GatewaySettings
from tests.harness.moto_server import FAKE_CREDENTIALS, REGION, MotoServer

ACCOUNT = "123456789012"
FUNCTION = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function"
SHORT_SESSION_S = 5


def _policy(*statements: dict[str, Any]) -> dict[str, Any]:
    return {"Version": "2012-10-17", "Statement": list(statements)}


def _allow(actions: list[str], resource: str | list[str]) -> dict[str, Any]:
    return {"Effect": "Allow", "Action": actions, "Resource": resource}


class Cloud:
    """A launcher holding stackA-Fn and stackB-Fn; the harness's IAM client creates users."""

    def __init__(self, server: MotoServer) -> None:
        self.server = server
        harness = boto3.Session(
            aws_access_key_id=FAKE_CREDENTIALS["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=FAKE_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
            aws_session_token=FAKE_CREDENTIALS["AWS_SESSION_TOKEN"],
            region_name=REGION,
        )
        self.iam = harness.client("iam", endpoint_url=server.url)
        self.lambda_ = harness.client("lambda", endpoint_url=server.url)
        trust = _policy(
            {
                "Effect": "Allow",
                "Principal": {"Service": "lambda.amazonaws.com"},
                "Action": "sts:AssumeRole",
            }
        )
        role = self.iam.create_role(RoleName="fn", AssumeRolePolicyDocument=json.dumps(trust))
        code = io.BytesIO()
        with zipfile.ZipFile(code, "w") as archive:
            archive.writestr("app.py", "def handler(event, context):\n    return event\n")
        for name in ("stackA-Fn", "stackB-Fn"):
            self.lambda_.create_function(
                FunctionName=name,
                Runtime="python3.12",
                Role=role["Role"]["Arn"],
                Handler="app.handler",
                Code={"ZipFile": code.getvalue()},
                Timeout=3,
            )
        for layer in ("shared", "private"):
            self.lambda_.publish_layer_version(
                LayerName=layer, Content={"ZipFile": code.getvalue()}
            )
        server.enforce_iam()

    def tags(self, name: str) -> dict[str, str]:
        return self.lambda_.list_tags(Resource=f"{FUNCTION}:{name}")["Tags"]


@pytest.fixture(scope="module")
def cloud() -> Iterator[Cloud]:
    server = MotoServer().start()
    try:
        yield Cloud(server)
    finally:
        server.stop()


def _refusal(call: Any) -> botocore.exceptions.ClientError:
    with pytest.raises(botocore.exceptions.ClientError) as caught:
        call()
    return caught.value


def test_lambda_actions_are_checked_on_the_functions_arn(cloud: Cloud) -> None:
    policy = _policy(_allow(["lambda:TagResource"], f"{FUNCTION}:stackA-*"))
    lambda_ = principals.create_user(cloud.iam, "tagger", policy).client("lambda")
    lambda_.tag_resource(Resource=f"{FUNCTION}:stackA-Fn", Tags={"owner": "tagger"})
    assert cloud.tags("stackA-Fn") == {"owner": "tagger"}

    refused = _refusal(
        lambda: lambda_.tag_resource(Resource=f"{FUNCTION}:stackB-Fn", Tags={"owner": "tagger"})
    )
    error = refused.response["Error"]  # parsed from a JSON body, as Lambda answers
    assert error["Code"] == "AccessDeniedException"
    assert "user/tagger is not authorized to perform: lambda:TagResource" in error["Message"]
    assert cloud.tags("stackB-Fn") == {}


def test_layer_actions_are_checked_on_the_layer_versions_arn(cloud: Cloud) -> None:
    layers = f"arn:aws:lambda:{REGION}:{ACCOUNT}:layer"
    policy = _policy(_allow(["lambda:GetLayerVersion"], f"{layers}:shared:*"))
    lambda_ = principals.create_user(cloud.iam, "layer-reader", policy).client("lambda")
    assert lambda_.get_layer_version(LayerName="shared", VersionNumber=1)["Version"] == 1
    refused = _refusal(lambda: lambda_.get_layer_version(LayerName="private", VersionNumber=1))
    assert refused.response["Error"]["Code"] == "AccessDeniedException"


def test_a_read_only_user_cannot_update_a_function(cloud: Cloud) -> None:
    read_only = _policy(
        _allow(["lambda:GetFunctionConfiguration", "lambda:ListTags"], f"{FUNCTION}:*")
    )
    reader = principals.create_user(cloud.iam, "reader", read_only)
    lambda_ = reader.session().client("lambda")
    assert lambda_.get_function_configuration(FunctionName="stackB-Fn")["Timeout"] == 3

    refused = _refusal(
        lambda: lambda_.update_function_configuration(FunctionName="stackB-Fn", Timeout=900)
    )
    assert refused.response["Error"]["Code"] == "AccessDeniedException"
    assert "lambda:UpdateFunctionConfiguration" in str(refused)
    assert cloud.lambda_.get_function_configuration(FunctionName="stackB-Fn")["Timeout"] == 3


def _role(cloud: Cloud, name: str, statement: dict[str, Any]) -> str:
    """A role the account's principals may assume (if their policies allow), holding one
    statement; its ARN."""
    account_root = {"AWS": f"arn:aws:iam::{ACCOUNT}:root"}
    trust = _policy({"Effect": "Allow", "Principal": account_root, "Action": "sts:AssumeRole"})
    role = cloud.iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(trust))
    cloud.iam.put_role_policy(
        RoleName=name, PolicyName=name, PolicyDocument=json.dumps(_policy(statement))
    )
    return role["Role"]["Arn"]


NOTHING = _policy(_allow(["sts:GetCallerIdentity"], "*"))


def test_a_user_opens_the_role_sessions_it_may_assume(cloud: Cloud) -> None:
    role_arn = _role(cloud, "Reader", _allow(["lambda:ListTags"], f"{FUNCTION}:stackA-*"))
    user = principals.create_user(cloud.iam, "assumer", NOTHING, assume_roles=[role_arn])
    session = principals.assume_role(user, role_arn, "tests")
    assert session.arn == f"arn:aws:sts::{ACCOUNT}:assumed-role/Reader/tests"
    assert session.credentials["AWS_SESSION_TOKEN"]
    tags = session.client("lambda").list_tags(Resource=f"{FUNCTION}:stackA-Fn")["Tags"]
    assert tags == cloud.tags("stackA-Fn")
    refused = _refusal(lambda: session.client("lambda").list_tags(Resource=f"{FUNCTION}:stackB-Fn"))
    assert refused.response["Error"]["Code"] == "AccessDeniedException"

    stranger = principals.create_user(cloud.iam, "stranger", NOTHING)
    refused = _refusal(lambda: principals.assume_role(stranger, role_arn, "tests"))
    assert refused.response["Error"]["Code"] == "AccessDenied"


# --------------------------------------------------------------------------- emulator-served APIs


@pytest.fixture(scope="module")
def gateway(cloud: Cloud) -> Iterator[Gateway]:
    with Gateway(GatewaySettings(moto_url=cloud.server.url)) as emulator:
        yield emulator


def _connections(api: str, method: str = "POST") -> str:
    return f"arn:aws:execute-api:{REGION}:{ACCOUNT}:{api}/prod/{method}/@connections/*"


def _management(gateway: Gateway, principal: principals.Principal) -> Any:
    return principal.session().client(
        "apigatewaymanagementapi", endpoint_url=gateway.management_url
    )


def test_connections_need_manage_connections_on_the_connections_arn(
    cloud: Cloud, gateway: Gateway
) -> None:
    """Allowed: the call reaches the connection table (410: no such connection)."""
    poster = principals.create_user(
        cloud.iam,
        "poster",
        _policy(_allow(["execute-api:ManageConnections"], _connections(gateway.settings.api_id))),
    )
    other_api = principals.create_user(
        cloud.iam,
        "other-api",
        _policy(_allow(["execute-api:ManageConnections"], _connections("another"))),
    )
    post = _management(gateway, poster).post_to_connection
    assert (
        _refusal(lambda: post(ConnectionId="abc=", Data=b"{}")).response["Error"]["Code"]
        == "GoneException"
    )
    delete = _management(gateway, poster).delete_connection  # DELETE is not POST
    error = _refusal(lambda: delete(ConnectionId="abc=")).response["Error"]
    assert error["Code"] == "AccessDeniedException"

    refused = _refusal(
        lambda: _management(gateway, other_api).post_to_connection(ConnectionId="abc=", Data=b"{}")
    )
    assert refused.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    assert refused.response["Error"] == {
        "Code": "AccessDeniedException",
        "Message": f"User: {other_api.arn} is not authorized to perform: "
        "execute-api:ManageConnections on resource: "
        f"{_connections(gateway.settings.api_id).removesuffix('*')}abc=",
    }


def test_connections_refuse_missing_and_bad_signatures(cloud: Cloud, gateway: Gateway) -> None:
    url = f"{gateway.management_url}/@connections/abc%3D"
    unsigned = urllib.request.Request(url, data=b"{}", method="POST")
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(unsigned, timeout=10)
    assert caught.value.code == 403
    assert caught.value.headers["x-amzn-ErrorType"] == "MissingAuthenticationTokenException"

    poster = principals.create_user(
        cloud.iam,
        "forger",
        _policy(_allow(["execute-api:ManageConnections"], _connections("*"))),
    )
    forged = {**poster.credentials, "AWS_SECRET_ACCESS_KEY": "not-the-secret"}
    forger = principals.Principal(poster.arn, forged, poster.endpoint_url)
    refused = _refusal(
        lambda: _management(gateway, forger).post_to_connection(ConnectionId="abc=", Data=b"{}")
    )
    assert refused.response["Error"]["Code"] == "InvalidSignatureException"
    unknown = principals.Principal(
        poster.arn, {**forged, "AWS_ACCESS_KEY_ID": "AKIANOSUCHKEY0000000"}, poster.endpoint_url
    )
    refused = _refusal(
        lambda: _management(gateway, unknown).post_to_connection(ConnectionId="abc=", Data=b"{}")
    )
    assert refused.response["Error"]["Code"] == "UnrecognizedClientException"


def test_the_harness_credentials_keep_their_administrator_rights(gateway: Gateway) -> None:
    harness = principals.Principal("harness", dict(FAKE_CREDENTIALS), gateway.lambda_url)
    post = _management(gateway, harness).post_to_connection
    assert (
        _refusal(lambda: post(ConnectionId="abc=", Data=b"{}")).response["Error"]["Code"]
        == "GoneException"
    )


def test_helper_invoke_needs_invoke_function_on_the_helper(cloud: Cloud, gateway: Gateway) -> None:
    invoker = principals.create_user(
        cloud.iam,
        "invoker",
        _policy(_allow(["lambda:InvokeFunction"], f"{FUNCTION}:plldb-manager")),
    )
    lambda_ = invoker.session().client("lambda", endpoint_url=gateway.lambda_url)
    answer = lambda_.invoke(FunctionName="plldb-manager", InvocationType="DryRun")
    assert answer["StatusCode"] == 204

    refused = _refusal(lambda: lambda_.invoke(FunctionName="plldb-connect", Payload=b"{}"))
    assert refused.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    assert refused.response["Error"]["Code"] == "AccessDeniedException"
    assert f"lambda:InvokeFunction on resource: {FUNCTION}:plldb-connect" in str(refused)
    assert gateway.invocations_of("plldb-connect") == []


def test_connections_refuse_expired_role_credentials(cloud: Cloud, gateway: Gateway) -> None:
    role_arn = _role(cloud, "Poster", _allow(["execute-api:ManageConnections"], _connections("*")))
    user = principals.create_user(cloud.iam, "expiring", NOTHING, assume_roles=[role_arn])
    cloud.server.enforce_iam(max_session_seconds=SHORT_SESSION_S)
    try:
        session = principals.assume_role(user, role_arn, "short")
    finally:
        _uncapped_sessions(cloud.server)
    management = _management(gateway, session)

    def post() -> str:
        return _refusal(
            lambda: management.post_to_connection(ConnectionId="abc=", Data=b"{}")
        ).response["Error"]["Code"]

    assert post() == "GoneException"  # allowed while valid
    deadline = time.monotonic() + SHORT_SESSION_S + 10
    while (code := post()) == "GoneException" and time.monotonic() < deadline:
        time.sleep(0.2)
    assert code == "ExpiredTokenException"


def _uncapped_sessions(server: MotoServer) -> None:
    """Role sessions as long as asked again (MotoServer.enforce_iam only sets a cap)."""
    request = urllib.request.Request(
        f"{server.url}/plldb-localcloud/iam",
        data=json.dumps({"max_session_seconds": None}).encode(),
        method="POST",
    )
    urllib.request.urlopen(request, timeout=10).read()
