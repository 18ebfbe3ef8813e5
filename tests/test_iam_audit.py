"""The call audit: the policy evaluator on its own, the template's policies resolved, the
recorder's ARNs from real boto3 calls against a moto server, and the report."""

from __future__ import annotations

import json
import zipfile
from collections.abc import Iterator
from io import BytesIO
from pathlib import Path
from typing import Any

import boto3
import pytest

from plldb import naming
from tests.harness import call_recorder, developer_policy, iam_audit
from tests.harness.iam_policy import Decision, PolicyError, Request, evaluate
from tests.harness.moto_server import REGION, MotoServer

ACCOUNT = "123456789012"
TABLE = f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/PLLDBSessions"
SHIM_POLICY = f"arn:aws:iam::{ACCOUNT}:policy/PLLDBShimAccess-{REGION}"


def _policy(*statements: dict[str, Any]) -> dict[str, Any]:
    return {"Version": "2012-10-17", "Statement": list(statements)}


def _decide(policy: dict[str, Any], action: str, resource: str, **context: Any) -> Decision:
    return evaluate([policy], Request(action, resource, context)).decision


# --------------------------------------------------------------------------- evaluator

TABLES = _policy(
    {"Effect": "Allow", "Action": ["dynamodb:GetItem", "dynamodb:Query"], "Resource": TABLE}
)


def test_an_allow_statement_allows_its_action_on_its_resource() -> None:
    assert _decide(TABLES, "dynamodb:GetItem", TABLE) is Decision.ALLOWED
    assert _decide(TABLES, "DynamoDB:getitem", TABLE) is Decision.ALLOWED  # actions: any case


def test_nothing_else_is_allowed() -> None:
    assert _decide(TABLES, "dynamodb:Scan", TABLE) is Decision.IMPLICIT_DENY
    assert _decide(TABLES, "dynamodb:GetItem", TABLE + "x") is Decision.IMPLICIT_DENY
    # an index is a resource of its own: the table's ARN does not cover it
    assert _decide(TABLES, "dynamodb:Query", TABLE + "/index/X") is Decision.IMPLICIT_DENY
    assert _decide(TABLES, "dynamodb:GetItem", TABLE.lower()) is Decision.IMPLICIT_DENY


def test_an_explicit_deny_wins_over_any_allow() -> None:
    policy = _policy(
        {"Effect": "Allow", "Action": "dynamodb:*", "Resource": "*"},
        {"Effect": "Deny", "Action": "dynamodb:DeleteItem", "Resource": TABLE},
    )
    outcome = evaluate([policy], Request("dynamodb:DeleteItem", TABLE))
    assert outcome.decision is Decision.EXPLICIT_DENY
    assert outcome.statement == policy["Statement"][1]
    assert _decide(policy, "dynamodb:PutItem", TABLE) is Decision.ALLOWED


def test_not_action_and_not_resource() -> None:
    policy = _policy({"Effect": "Allow", "NotAction": "iam:*", "NotResource": f"{TABLE}/index/*"})
    assert _decide(policy, "s3:GetObject", "arn:aws:s3:::b/k") is Decision.ALLOWED
    assert _decide(policy, "iam:GetRole", "arn:aws:iam::1:role/r") is Decision.IMPLICIT_DENY
    assert _decide(policy, "dynamodb:Query", f"{TABLE}/index/I") is Decision.IMPLICIT_DENY


@pytest.mark.parametrize(
    ("pattern", "resource", "allowed"),
    [
        ("arn:aws:s3:::bucket/payloads/*", "arn:aws:s3:::bucket/payloads/a/b.json", True),
        ("arn:aws:s3:::bucket/payloads/*", "arn:aws:s3:::bucket/other/a.json", False),
        (
            "arn:aws:lambda:*:1:function:plldb-*",
            "arn:aws:lambda:eu-west-1:1:function:plldb-x",
            True,
        ),
        ("arn:aws:lambda:us-east-1:1:function:f", "arn:aws:lambda:us-east-1:1:function:f:3", False),
        (
            "arn:aws:lambda:us-east-1:1:function:f:*",
            "arn:aws:lambda:us-east-1:1:function:f:3",
            True,
        ),
        ("arn:aws:lambda:us-east-1:1:layer:l:?", "arn:aws:lambda:us-east-1:1:layer:l:7", True),
        ("arn:aws:lambda:us-east-1:1:layer:l:?", "arn:aws:lambda:us-east-1:1:layer:l:17", False),
        # a wildcard stays inside its ARN part: "*" for the region does not eat the account
        ("arn:aws:lambda:*:function:f", "arn:aws:lambda:us-east-1:1:function:f", False),
        ("*", "arn:aws:iam::1:role/anything", True),
    ],
)
def test_resource_wildcards(pattern: str, resource: str, allowed: bool) -> None:
    policy = _policy({"Effect": "Allow", "Action": "x:Y", "Resource": pattern})
    assert (_decide(policy, "x:Y", resource) is Decision.ALLOWED) is allowed


def test_action_wildcards() -> None:
    policy = _policy(
        {"Effect": "Allow", "Action": ["lambda:Get*", "s3:?etObject"], "Resource": "*"}
    )
    assert _decide(policy, "lambda:GetFunctionConfiguration", "*") is Decision.ALLOWED
    assert _decide(policy, "s3:GetObject", "*") is Decision.ALLOWED
    assert _decide(policy, "s3:PutObject", "*") is Decision.IMPLICIT_DENY
    assert _decide(policy, "lambda:UpdateFunctionConfiguration", "*") is Decision.IMPLICIT_DENY


def test_conditions_must_match_the_request_context() -> None:
    tagged = _policy(
        {
            "Effect": "Allow",
            "Action": "lambda:UpdateFunctionConfiguration",
            "Resource": "*",
            "Condition": {"StringEquals": {"aws:ResourceTag/plldb": "debug"}},
        }
    )
    update = "lambda:UpdateFunctionConfiguration"
    assert _decide(tagged, update, "f", **{"aws:resourcetag/plldb": "debug"}) is Decision.ALLOWED
    assert _decide(tagged, update, "f", **{"aws:ResourceTag/plldb": "no"}) is Decision.IMPLICIT_DENY
    assert (
        _decide(tagged, update, "f", **{"aws:ResourceTag/PLLDB": "debug"}) is Decision.IMPLICIT_DENY
    )
    assert _decide(tagged, update, "f") is Decision.IMPLICIT_DENY  # the key is missing


def test_condition_operator_variants() -> None:
    layer = "arn:aws:lambda:us-east-1:1:layer:plldb-runtime-shim:*"

    def allows(condition: dict[str, Any], **context: Any) -> bool:
        statement = {"Effect": "Allow", "Action": "a:B", "Resource": "*", "Condition": condition}
        return _decide(_policy(statement), "a:B", "*", **context) is Decision.ALLOWED

    shim = ["arn:aws:lambda:us-east-1:1:layer:plldb-runtime-shim:3"]
    other = [*shim, "arn:aws:lambda:us-east-1:1:layer:other:1"]
    assert allows({"ForAllValues:ArnLike": {"lambda:Layer": layer}}, **{"lambda:Layer": shim})
    assert not allows({"ForAllValues:ArnLike": {"lambda:Layer": layer}}, **{"lambda:Layer": other})
    assert allows({"ForAnyValue:ArnLike": {"lambda:Layer": layer}}, **{"lambda:Layer": other})
    assert allows({"StringEqualsIfExists": {"aws:ResourceTag/t": "v"}})
    assert not allows(
        {"StringEqualsIfExists": {"aws:ResourceTag/t": "v"}}, **{"aws:ResourceTag/t": "w"}
    )
    assert allows({"StringNotLike": {"aws:PrincipalArn": "*:user/*"}}, **{"aws:PrincipalArn": "r"})
    assert allows({"Null": {"aws:ResourceTag/t": "true"}})
    assert allows({"Bool": {"aws:SecureTransport": False}}, **{"aws:SecureTransport": "false"})
    assert allows({"NumericLessThan": {"k:N": "10"}}, **{"k:N": "9"})


def test_policy_variables_come_from_the_context() -> None:
    own = _policy(
        {
            "Effect": "Allow",
            "Action": "iam:GetUser",
            "Resource": "arn:aws:iam::1:user/${aws:username}",
        }
    )
    assert (
        _decide(own, "iam:GetUser", "arn:aws:iam::1:user/ann", **{"aws:username": "ann"})
        is Decision.ALLOWED
    )
    assert (
        _decide(own, "iam:GetUser", "arn:aws:iam::1:user/bob", **{"aws:username": "ann"})
        is Decision.IMPLICIT_DENY
    )


def test_what_the_evaluator_does_not_model_is_an_error_not_a_guess() -> None:
    policy = _policy(
        {
            "Effect": "Allow",
            "Action": "a:B",
            "Resource": "*",
            "Condition": {"IpAddress": {"aws:SourceIp": "10.0.0.0/8"}},
        }
    )
    with pytest.raises(PolicyError, match="IpAddress is not modelled"):
        _decide(policy, "a:B", "*", **{"aws:SourceIp": "10.1.1.1"})
    with pytest.raises(PolicyError, match="neither Resource nor NotResource"):
        _decide(_policy({"Effect": "Allow", "Action": "a:B"}), "a:B", "*")


# --------------------------------------------------------------------------- the template


def _helper_stack() -> dict[str, Any]:
    """What the recorder writes for a role of the helper stack deployed in moto."""
    return {
        "name": naming.HELPER_STACK_NAME,
        "id": f"arn:aws:cloudformation:{REGION}:{ACCOUNT}:stack/plldb/0a1b",
        "region": REGION,
        "parameters": {"ArtifactBucket": "artifacts"},
        "outputs": {
            "LayerVersionArn": f"arn:aws:lambda:{REGION}:{ACCOUNT}:layer:plldb-runtime-shim:4"
        },
        "resources": {
            "SessionsTable": ["AWS::DynamoDB::Table", "PLLDBSessions"],
            "DebuggerTable": ["AWS::DynamoDB::Table", "PLLDBDebugger"],
            "ShimAccessPolicy": ["AWS::IAM::ManagedPolicy", SHIM_POLICY],
        },
    }


def _template_allows(role: str, action: str, resource: str, **context: Any) -> bool:
    policies = iam_audit.helper_role_policies(_helper_stack(), role)
    return evaluate(policies, Request(action, resource, context)).allowed


def test_helper_roles_get_the_templates_policies_with_the_stacks_values() -> None:
    assert _template_allows("DebuggerRole", "dynamodb:GetItem", TABLE)
    assert _template_allows("DebuggerRole", "dynamodb:Query", f"{TABLE}/index/StackNameIndex")
    assert not _template_allows("DebuggerRole", "dynamodb:GetItem", TABLE.replace("PLLDB", "Other"))
    for action in ("dynamodb:PutItem", "dynamodb:UpdateItem", "execute-api:ManageConnections"):
        assert not _template_allows("DebuggerRole", action, "*")  # read-only (security.md)
    for action in ("s3:GetObject", "s3:PutObject"):  # payloads only through presigned URLs
        assert not _template_allows("DebuggerRole", action, "arn:aws:s3:::artifacts/payloads/x")
    assert not _template_allows("DebuggerRole", "lambda:UpdateFunctionConfiguration", "*")
    manager = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:plldb-manager"
    assert _template_allows("HelperFunctionRole", "lambda:InvokeFunction", manager)
    assert not _template_allows("HelperFunctionRole", "lambda:InvokeFunction", manager + "2")
    layer = _helper_stack()["outputs"]["LayerVersionArn"]
    assert _template_allows("ManagerRole", "lambda:GetLayerVersion", layer)
    assert not _template_allows(
        "ManagerRole", "lambda:GetLayerVersion", layer.replace(REGION, "eu-west-1")
    )


def test_the_manager_may_attach_the_shim_policy_and_no_other() -> None:
    role = f"arn:aws:iam::{ACCOUNT}:role/app-FunctionRole-X"
    for action in ("iam:AttachRolePolicy", "iam:DetachRolePolicy"):
        assert _template_allows("ManagerRole", action, role, **{"iam:PolicyARN": SHIM_POLICY})
        admin = "arn:aws:iam::aws:policy/AdministratorAccess"
        assert not _template_allows("ManagerRole", action, role, **{"iam:PolicyARN": admin})
        assert not _template_allows("ManagerRole", action, role)
    for action in ("iam:PutRolePolicy", "iam:DeleteRolePolicy"):
        assert not _template_allows("ManagerRole", action, role)
    assert _template_allows("ManagerRole", "iam:ListAttachedRolePolicies", role)


def test_the_manager_changes_only_claimed_functions_and_removes_only_the_claim() -> None:
    function = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:app-Fn"
    claimed = {f"aws:ResourceTag/{naming.CLAIM_TAG}": "0f1e"}
    update, untag = "lambda:UpdateFunctionConfiguration", "lambda:UntagResource"
    assert _template_allows("ManagerRole", update, function, **claimed)
    assert not _template_allows("ManagerRole", update, function)
    assert not _template_allows("ManagerRole", update, function, **{"aws:ResourceTag/x": "y"})
    claim_key = {"aws:TagKeys": [naming.CLAIM_TAG]}
    assert _template_allows("ManagerRole", untag, function, **claimed, **claim_key)
    assert not _template_allows("ManagerRole", untag, function, **claim_key)
    other_keys = {"aws:TagKeys": [naming.CLAIM_TAG, "owner"]}
    assert not _template_allows("ManagerRole", untag, function, **claimed, **other_keys)
    assert not _template_allows("ManagerRole", "lambda:TagResource", function, **claimed)
    assert _template_allows("ManagerRole", "lambda:ListTags", function)


def test_a_logical_id_that_is_no_role_of_the_template_cannot_be_audited() -> None:
    with pytest.raises(LookupError, match="SessionsTable is not a role"):
        iam_audit.helper_role_policies(_helper_stack(), "SessionsTable")


# --------------------------------------------------------------------------- the report


def _write(path: Path, *lines: dict[str, Any]) -> None:
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))


def _stack_role_principal(key: str, arn: str) -> dict[str, Any]:
    """A principal line for a role of the stack "app" (logical id FunctionRole)."""
    return {
        "type": "principal",
        "key": key,
        "kind": "role",
        "arn": arn,
        "stack": {"name": "app"},
        "logical_id": "FunctionRole",
    }


def _call(key: str, action: str, resource: str, policies: str | None = None) -> dict[str, Any]:
    return {
        "time": 150.0,
        "type": "call",
        "key": key,
        "action": action,
        "resource": resource,
        "context": {},
        "policies": policies,
        "request": "POST /",
    }


def test_the_report_names_every_call_not_allowed_and_exempts_only_the_harness(
    tmp_path: Path,
) -> None:
    developer = _policy(
        {"Effect": "Allow", "Action": "cloudformation:DescribeStacks", "Resource": "*"}
    )
    policy_file = tmp_path / "developer.json"
    policy_file.write_text(json.dumps(developer))
    debugger_arn = f"arn:aws:iam::{ACCOUNT}:role/PLLDBDebuggerRole"
    _write(
        tmp_path / "calls-1.jsonl",
        {"type": "principal", "key": "testing", "kind": "harness", "arn": "harness"},
        {
            "type": "principal",
            "key": "K1",
            "kind": "role",
            "arn": debugger_arn,
            "stack": _helper_stack(),
            "logical_id": "DebuggerRole",
        },
        {
            "type": "principal",
            "key": "K2",
            "kind": "user",
            "arn": "arn:aws:iam::1:user/dev",
            "name": "dev",
        },
        {"type": "principal", "key": "K3", "kind": "role", "arn": "arn:aws:iam::1:role/by-hand"},
        {"type": "principal", "key": "K4", "kind": "unknown", "arn": "unknown access key 'K4'"},
        {"type": "policies", "digest": "d", "documents": [developer]},
        _call("testing", "dynamodb:Scan", TABLE),
        _call("K1", "dynamodb:GetItem", TABLE),
        _call("K1", "dynamodb:DeleteTable", TABLE),
        _call("K2", "cloudformation:DescribeStacks", "*", "d"),
        _call("K2", "cloudformation:DeleteStack", "*", "d"),
        _call("K2", "sts:GetCallerIdentity", "*", "d"),
        _call("K3", "iam:DeleteRole", "*"),
        _call("K4", "dynamodb:GetItem", TABLE),
        {"type": "unmapped", "key": "K1", "request": "GET /x", "error": "LookupError('x')"},
        {"type": "unmapped", "key": "K3", "request": "GET /y", "error": "LookupError('y')"},
    )
    iam_audit.record_test(tmp_path, "tests/test_x.py::test_y", 100.0, 200.0)
    report = iam_audit.audit(tmp_path, policy_file)
    found = {(v.principal, v.action, v.resource, v.reason) for v in report.violations}
    assert found == {
        (debugger_arn, "dynamodb:DeleteTable", TABLE, "not allowed by any statement"),
        (
            "arn:aws:iam::1:user/dev",
            "cloudformation:DeleteStack",
            "*",
            "not allowed by any statement",
        ),
        (
            "unknown access key 'K4'",
            "dynamodb:GetItem",
            TABLE,
            "cannot be audited: credentials moto does not know (unknown access key 'K4')",
        ),
        (
            debugger_arn,
            "?",
            "?",
            "the recorder could not derive action and resource: LookupError('x')",
        ),
    }
    assert report.exempt == 1
    assert report.out_of_scope == {"arn:aws:iam::1:role/by-hand": 2}
    assert f"NOT ALLOWED {debugger_arn}: dynamodb:DeleteTable on {TABLE}" in report.text()
    assert "(POST / at 00:02:30 UTC during tests/test_x.py::test_y)" in report.text()


def test_a_user_holding_the_documented_policy_narrowed_is_held_to_it(tmp_path: Path) -> None:
    """Administrators narrow the shipped policy to their functions (README): a user holding
    it narrowed is in scope, and its claim on a function it was not given is a violation."""
    narrowed = developer_policy.narrowed(["my-stack-*"])
    mine, theirs = (f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{n}-Fn-1" for n in ("my-stack", "other"))
    tag = {"context": {"aws:TagKeys": [naming.CLAIM_TAG]}}
    _write(
        tmp_path / "calls-5.jsonl",
        {"type": "principal", "key": "K", "kind": "user", "arn": "arn:aws:iam::1:user/d", "name": "d"},
        {"type": "policies", "digest": "d", "documents": [narrowed]},
        {**_call("K", "lambda:TagResource", mine, "d"), **tag},
        {**_call("K", "lambda:TagResource", theirs, "d"), **tag},
    )
    report = iam_audit.audit(tmp_path)
    assert report.audited == {"arn:aws:iam::1:user/d": 2}
    assert [(v.action, v.resource) for v in report.violations] == [("lambda:TagResource", theirs)]


def test_refusals_a_test_provokes_on_purpose_are_set_aside(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    role = "arn:aws:iam::1:role/app-FunctionRole-X"
    _write(
        tmp_path / "calls-3.jsonl",
        _stack_role_principal("K", role),
        {"type": "policies", "digest": "none", "documents": []},
        _call("K", "dynamodb:GetItem", TABLE, "none"),  # at 150: while test_y ran
        {**_call("K", "dynamodb:PutItem", TABLE, "none"), "time": 160.0},  # after it
    )
    monkeypatch.setenv(call_recorder.ENV_RECORD_DIR, str(tmp_path))
    monkeypatch.setenv("PYTEST_CURRENT_TEST", "tests/test_x.py::test_y (call)")
    iam_audit.expect_refusal("dynamodb:*", "*:role/app-*", why="policy not there yet")
    iam_audit.record_test(tmp_path, "tests/test_x.py::test_y", 100.0, 151.0)
    report = iam_audit.audit(tmp_path)
    assert [(v.action, v.principal) for v in report.expected] == [("dynamodb:GetItem", role)]
    assert [(v.action, v.principal) for v in report.violations] == [("dynamodb:PutItem", role)]
    assert "1 refusals provoked on purpose" in report.text()


def test_calls_an_emulator_serves_are_audited_with_the_principal_moto_saw(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    role = "arn:aws:iam::1:role/app-FunctionRole-X"
    connections = "arn:aws:execute-api:us-east-1:1:plldblocal/live/POST/@connections/*"
    allowed = _policy(
        {"Effect": "Allow", "Action": "execute-api:ManageConnections", "Resource": connections}
    )
    _write(
        tmp_path / "calls-1.jsonl",
        _stack_role_principal("K", role),
        {"type": "policies", "digest": "before", "documents": []},
        {"type": "policies", "digest": "attached", "documents": [allowed]},
        _call("K", "dynamodb:GetItem", TABLE, "before"),
        _call("K", "dynamodb:GetItem", TABLE, "attached"),
    )
    monkeypatch.setenv(call_recorder.ENV_RECORD_DIR, str(tmp_path))
    post = "arn:aws:execute-api:us-east-1:1:plldblocal/live/POST/@connections/abc"
    for key, action in (
        ("K", "execute-api:ManageConnections"),
        ("K", "lambda:InvokeFunction"),
        ("Z", "execute-api:ManageConnections"),
    ):
        authorization = f"AWS4-HMAC-SHA256 Credential={key}/20261201/us-east-1/execute-api/aws4_request, SignedHeaders=host, Signature=0"
        call_recorder.record_call(authorization, action, post, "POST /live/@connections/abc")

    found = {(v.principal, v.action) for v in iam_audit.audit(tmp_path).violations}
    assert found == {
        (role, "dynamodb:GetItem"),  # before the policy: the first call
        (role, "lambda:InvokeFunction"),
        ("unknown access key 'Z'", "execute-api:ManageConnections"),
    }


def test_a_user_without_the_documented_policy_is_not_plldbs(tmp_path: Path) -> None:
    policy_file = tmp_path / "developer.json"
    policy_file.write_text(
        json.dumps(_policy({"Effect": "Allow", "Action": "a:B", "Resource": "*"}))
    )
    _write(
        tmp_path / "calls-2.jsonl",
        {
            "type": "principal",
            "key": "K",
            "kind": "user",
            "arn": "arn:aws:iam::1:user/t",
            "name": "t",
        },
        {"type": "policies", "digest": "other", "documents": [_policy()]},
        _call("K", "a:C", "*", "other"),
    )
    report = iam_audit.audit(tmp_path, policy_file)
    assert not report.violations and report.out_of_scope == {"arn:aws:iam::1:user/t": 1}
    policy_file.unlink()
    (violation,) = iam_audit.audit(tmp_path, policy_file).violations
    assert "developer policy" in violation.reason and "is missing" in violation.reason


# --------------------------------------------------------------------------- the recorder


@pytest.fixture
def recording(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[MotoServer, Path]]:
    """A moto server (the launcher, which installs the recorder) writing into tmp_path."""
    monkeypatch.setenv(call_recorder.ENV_RECORD_DIR, str(tmp_path))
    server = MotoServer().start()
    try:
        yield server, tmp_path
    finally:
        server.stop()


def _session(server: MotoServer, credentials: dict[str, str] | None = None) -> boto3.Session:
    env = server.environment()
    return boto3.Session(
        region_name=REGION,
        aws_access_key_id=(credentials or {}).get("AccessKeyId", env["AWS_ACCESS_KEY_ID"]),
        aws_secret_access_key=(credentials or {}).get(
            "SecretAccessKey", env["AWS_SECRET_ACCESS_KEY"]
        ),
        aws_session_token=(credentials or {}).get("SessionToken", env["AWS_SESSION_TOKEN"]),
    )


def _zip() -> bytes:
    data = BytesIO()
    with zipfile.ZipFile(data, "w") as archive:
        archive.writestr("app.py", "def handler(event, context):\n    return 1\n")
    return data.getvalue()


MANAGED = _policy({"Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::*"})


def _set_up(harness: boto3.Session, url: str) -> str:
    """With the harness's credentials: a role allowed everything, a table, a function."""
    iam = harness.client("iam", endpoint_url=url)
    trust = _policy({"Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "sts:AssumeRole"})
    role = iam.create_role(
        RoleName="Audited",
        Path="/team/",
        AssumeRolePolicyDocument=json.dumps(trust),
        Tags=[{"Key": "owner", "Value": "plldb"}],
    )
    iam.put_role_policy(
        RoleName="Audited",
        PolicyName="all",
        PolicyDocument=json.dumps(_policy({"Effect": "Allow", "Action": "*", "Resource": "*"})),
    )
    managed = iam.create_policy(PolicyName="mp", PolicyDocument=json.dumps(MANAGED))
    iam.attach_role_policy(RoleName="Audited", PolicyArn=managed["Policy"]["Arn"])
    harness.client("dynamodb", endpoint_url=url).create_table(
        TableName="Tab",
        KeySchema=[{"AttributeName": "k", "KeyType": "HASH"}],
        AttributeDefinitions=[
            {"AttributeName": "k", "AttributeType": "S"},
            {"AttributeName": "g", "AttributeType": "S"},
        ],
        GlobalSecondaryIndexes=[
            {
                "IndexName": "Gsi",
                "KeySchema": [{"AttributeName": "g", "KeyType": "HASH"}],
                "Projection": {"ProjectionType": "ALL"},
            }
        ],
        BillingMode="PAY_PER_REQUEST",
    )
    harness.client("lambda", endpoint_url=url).create_function(
        FunctionName="fn",
        Runtime="python3.12",
        Role=role["Role"]["Arn"],
        Handler="app.handler",
        Code={"ZipFile": _zip()},
        Tags={"team": "a"},
    )
    harness.client("s3", endpoint_url=url).create_bucket(Bucket="audit-bucket")
    return role["Role"]["Arn"]


def test_the_recorder_derives_each_calls_action_and_arn(recording: tuple[MotoServer, Path]) -> None:
    server, folder = recording
    harness = _session(server)
    role_arn = _set_up(harness, server.url)
    sts = harness.client("sts", endpoint_url=server.url)
    credentials = sts.assume_role(RoleArn=role_arn, RoleSessionName="audit")["Credentials"]
    role = _session(server, credentials)
    ddb = role.client("dynamodb", endpoint_url=server.url)
    ddb.get_item(TableName="Tab", Key={"k": {"S": "a"}})
    ddb.query(
        TableName="Tab",
        IndexName="Gsi",
        KeyConditionExpression="g = :g",
        ExpressionAttributeValues={":g": {"S": "x"}},
    )
    ddb.transact_write_items(
        TransactItems=[
            {"Put": {"TableName": "Tab", "Item": {"k": {"S": "b"}}}},
            {
                "Update": {
                    "TableName": "Tab",
                    "Key": {"k": {"S": "c"}},
                    "UpdateExpression": "SET v = :v",
                    "ExpressionAttributeValues": {":v": {"S": "1"}},
                }
            },
        ]
    )
    lam = role.client("lambda", endpoint_url=server.url)
    version = lam.publish_version(FunctionName="fn")["Version"]
    lam.get_function_configuration(FunctionName="fn", Qualifier=version)
    function_arn = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:fn"
    lam.get_function(FunctionName=function_arn)
    layer = lam.publish_layer_version(LayerName="shim", Content={"ZipFile": _zip()})[
        "LayerVersionArn"
    ]
    lam.update_function_configuration(FunctionName="fn", Layers=[layer])
    lam.tag_resource(Resource=function_arn, Tags={"stage": "dev"})
    lam.untag_resource(Resource=function_arn, TagKeys=["team"])
    role_iam = role.client("iam", endpoint_url=server.url)
    role_iam.get_role(RoleName="Audited")
    managed = f"arn:aws:iam::{ACCOUNT}:policy/mp"
    role_iam.detach_role_policy(RoleName="Audited", PolicyArn=managed)
    role.client("sts", endpoint_url=server.url).get_caller_identity()
    s3 = role.client("s3", endpoint_url=server.url)
    s3.put_object(Bucket="audit-bucket", Key="payloads/a/b.json", Body=b"{}")
    s3.head_object(Bucket="audit-bucket", Key="payloads/a/b.json")
    s3.delete_objects(Bucket="audit-bucket", Delete={"Objects": [{"Key": "payloads/a/b.json"}]})
    cf = role.client("cloudformation", endpoint_url=server.url)
    with pytest.raises(cf.exceptions.ClientError):
        cf.describe_stacks(StackName="absent")

    records = iam_audit.load(next(folder.glob("calls-*.jsonl")))
    key = credentials["AccessKeyId"]
    principal = records.principals[key]
    assert (principal["kind"], principal["arn"]) == ("role", role_arn)
    assert records.principals["testing"]["kind"] == "harness"
    assert not records.unmapped
    assert all(c["time"] > 0 for c in records.calls)  # to find the test in the logs
    table = f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/Tab"
    calls = {(c["action"], c["resource"]) for c in records.calls if c["key"] == key}
    assert calls == {
        ("dynamodb:GetItem", table),
        ("dynamodb:Query", f"{table}/index/Gsi"),
        ("dynamodb:PutItem", table),
        ("dynamodb:UpdateItem", table),
        ("lambda:PublishVersion", function_arn),
        ("lambda:GetFunctionConfiguration", f"{function_arn}:{version}"),
        ("lambda:GetFunction", function_arn),
        ("lambda:PublishLayerVersion", f"arn:aws:lambda:{REGION}:{ACCOUNT}:layer:shim"),
        ("lambda:UpdateFunctionConfiguration", function_arn),
        ("lambda:GetLayerVersion", layer),  # Lambda checks it for every layer in the list
        ("lambda:TagResource", function_arn),
        ("lambda:UntagResource", function_arn),
        ("iam:GetRole", role_arn),
        ("iam:DetachRolePolicy", role_arn),
        ("sts:GetCallerIdentity", "*"),
        ("s3:PutObject", "arn:aws:s3:::audit-bucket/payloads/a/b.json"),
        ("s3:GetObject", "arn:aws:s3:::audit-bucket/payloads/a/b.json"),
        ("s3:DeleteObject", "arn:aws:s3:::audit-bucket/payloads/a/b.json"),
        (
            "cloudformation:DescribeStacks",
            f"arn:aws:cloudformation:{REGION}:{ACCOUNT}:stack/absent/*",
        ),
    }
    update = next(c for c in records.calls if c["action"] == "lambda:UpdateFunctionConfiguration")
    assert update["context"]["lambda:Layer"] == [layer]
    assert update["context"]["aws:ResourceTag/team"] == "a"
    assert update["context"]["aws:PrincipalArn"] == role_arn
    get_role = next(c for c in records.calls if c["action"] == "iam:GetRole")
    assert get_role["context"]["aws:ResourceTag/owner"] == "plldb"
    tag = next(c for c in records.calls if c["action"] == "lambda:TagResource")
    assert tag["context"]["aws:TagKeys"] == ["stage"]
    untag = next(c for c in records.calls if c["action"] == "lambda:UntagResource")
    assert untag["context"]["aws:TagKeys"] == ["team"]
    assert untag["context"]["aws:ResourceTag/team"] == "a"  # the tags before the call
    detach = next(c for c in records.calls if c["action"] == "iam:DetachRolePolicy")
    assert detach["context"]["iam:PolicyARN"] == managed
    assert records.policies[update["policies"]] == [
        _policy({"Effect": "Allow", "Action": "*", "Resource": "*"}),
        MANAGED,
    ]
    by_harness = {(c["action"], c["resource"]) for c in records.calls if c["key"] == "testing"}
    assert {("sts:AssumeRole", role_arn), ("iam:PassRole", role_arn)} <= by_harness


def test_an_iam_users_calls_carry_its_name_and_policies(
    recording: tuple[MotoServer, Path],
) -> None:
    server, folder = recording
    iam = _session(server).client("iam", endpoint_url=server.url)
    iam.create_user(UserName="dev")
    iam.put_user_policy(UserName="dev", PolicyName="p", PolicyDocument=json.dumps(MANAGED))
    key = iam.create_access_key(UserName="dev")["AccessKey"]
    user = _session(server, key)
    user.client("cloudformation", endpoint_url=server.url).list_stacks()

    records = iam_audit.load(next(folder.glob("calls-*.jsonl")))
    principal = records.principals[key["AccessKeyId"]]
    assert (principal["kind"], principal["name"]) == ("user", "dev")
    (call,) = [c for c in records.calls if c["key"] == key["AccessKeyId"]]
    assert (call["action"], call["resource"]) == ("cloudformation:ListStacks", "*")
    assert call["context"]["aws:username"] == "dev"
    assert records.policies[call["policies"]] == [MANAGED]


def test_install_needs_the_record_folder(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(call_recorder.ENV_RECORD_DIR, raising=False)
    assert call_recorder.install() is False
