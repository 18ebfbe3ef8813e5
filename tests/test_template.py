"""The helper stack template: cfn-lint, the real SAM transform, and what it grants."""

from __future__ import annotations

import fnmatch
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from samcli.yamlhelper import yaml_parse
from samtranslator.translator.transform import transform

from plldb import naming
from plldb.cloud.bootstrap import CODE_KEY_PARAMETERS, TEMPLATE_PATH
from plldb.lambdas import common
from tests.harness.gateway import IDENTITY_SOURCES

OUTPUTS = {
    naming.OUTPUT_WEBSOCKET_URL,
    naming.OUTPUT_MANAGEMENT_URL,
    naming.OUTPUT_SESSIONS_TABLE,
    naming.OUTPUT_DEBUGGER_TABLE,
    naming.OUTPUT_DEBUGGER_ROLE,
    naming.OUTPUT_MANAGER_ROLE,
    naming.OUTPUT_MANAGER_FUNCTION,
    naming.OUTPUT_LAYER_ARN,
    naming.OUTPUT_PAYLOAD_BUCKET,
    naming.OUTPUT_VERSION,
}
HELPER_ENV = {
    naming.ENV_SESSIONS_TABLE,
    naming.ENV_DEBUGGER_TABLE,
    naming.ENV_MANAGER_FUNCTION,
    naming.ENV_LAYER_ARN,
    naming.ENV_MANAGEMENT_URL,
    naming.ENV_PAYLOAD_BUCKET,
    naming.ENV_GRACE_SECONDS,
    naming.ENV_DEFAULT_TIMEOUT,
    naming.ENV_CONNECTIONS_ARN,
    common.ENV_SHIM_POLICY_ARN,
}


class _NoManagedPolicies:
    """The template names no managed policy by name, so the translator needs no IAM call."""

    def load(self) -> dict[str, str]:
        return {}


def transformed_template(region: str = "us-east-1") -> dict[str, Any]:
    """The helper template expanded by aws-sam-translator, as CloudFormation would."""

    previous = os.environ.get("AWS_DEFAULT_REGION")
    os.environ["AWS_DEFAULT_REGION"] = region  # the translator asks boto3 for the region
    try:
        return transform(yaml_parse(TEMPLATE_PATH.read_text()), {}, _NoManagedPolicies())
    finally:
        if previous is None:
            os.environ.pop("AWS_DEFAULT_REGION")
        else:
            os.environ["AWS_DEFAULT_REGION"] = previous


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return transformed_template()


def _of_type(template: dict, kind: str) -> dict[str, dict]:
    return {k: v for k, v in template["Resources"].items() if v["Type"] == kind}


def _statements(template: dict) -> list[tuple[str, dict]]:
    """(owner, statement) for every IAM statement of every role and managed policy."""
    found = []
    for name, resource in template["Resources"].items():
        props = resource.get("Properties", {})
        documents = [p["PolicyDocument"] for p in props.get("Policies", [])]
        if resource["Type"] == "AWS::IAM::ManagedPolicy":
            documents.append(props["PolicyDocument"])
        for document in documents:
            found += [(name, s) for s in document["Statement"]]
    return found


def _as_list(value: Any) -> list:
    return value if isinstance(value, list) else [value]


def test_cfn_lint_passes() -> None:
    result = subprocess.run(
        [str(Path(sys.executable).parent / "cfn-lint"), str(TEMPLATE_PATH)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_sam_translator_expands_every_serverless_resource(template: dict) -> None:
    kinds = {r["Type"] for r in template["Resources"].values()}
    assert not any(k.startswith("AWS::Serverless::") for k in kinds)
    assert len(_of_type(template, "AWS::Lambda::Function")) == 5
    assert len(_of_type(template, "AWS::Lambda::LayerVersion")) == 1


def test_no_wildcard_actions_and_no_bare_star_resources(template: dict) -> None:
    statements = _statements(template)
    assert len(statements) >= 9
    for owner, statement in statements:
        for action in _as_list(statement["Action"]):
            assert "*" not in action, f"{owner}: wildcard action {action}"
        for resource in _as_list(statement.get("Resource", [])):
            assert resource != "*", f"{owner}: Resource '*'"


def _actions(template: dict, owners: set[str]) -> set[str]:
    """Actions granted to a role, its inline policies and the managed policies it attaches."""
    role_names = {o for o in owners if template["Resources"][o]["Type"] == "AWS::IAM::Role"}
    attached = {
        ref["Ref"]
        for r in role_names
        for ref in template["Resources"][r]["Properties"].get("ManagedPolicyArns", [])
    }
    return {
        action
        for owner, statement in _statements(template)
        if owner in owners | attached
        for action in _as_list(statement["Action"])
    }


def test_roles_grant_what_each_party_needs(template: dict) -> None:
    # read-only: sessions are created by the authorizer, payloads travel through the URLs
    # the shim presigns, answers through $default (docs/security.md)
    debugger = _actions(template, {"DebuggerRole"})
    assert debugger == {"dynamodb:GetItem", "dynamodb:Query", "dynamodb:Scan"}

    manager = _actions(template, {"ManagerRole"})
    assert {
        "cloudformation:DescribeStacks",
        "cloudformation:ListStackResources",
        "lambda:GetFunction",
        "lambda:GetFunctionConfiguration",
        "lambda:UpdateFunctionConfiguration",
        "lambda:GetLayerVersion",
        "iam:ListAttachedRolePolicies",
        "iam:AttachRolePolicy",
        "iam:DetachRolePolicy",
        "dynamodb:UpdateItem",
        "dynamodb:Scan",
        "execute-api:ManageConnections",
    } <= manager
    assert "iam:PassRole" not in manager and "lambda:InvokeFunction" not in manager
    assert not manager & {"iam:PutRolePolicy", "iam:DeleteRolePolicy", "iam:GetRolePolicy"}

    helpers = _actions(template, {"HelperFunctionRole"})
    assert "lambda:InvokeFunction" in helpers
    assert not any(a.startswith(("iam:", "cloudformation:")) for a in helpers)
    assert "dynamodb:Scan" not in helpers


def test_scans_read_the_sessions_table_only(template: dict) -> None:
    """The manager's records and `plldb status` scan PLLDBSessions; nothing scans more."""
    scans = [
        (owner, statement)
        for owner, statement in _statements(template)
        if "dynamodb:Scan" in _as_list(statement["Action"])
    ]
    assert {owner for owner, _ in scans} == {"DebuggerRole", "ManagerRole"}
    for _, statement in scans:
        assert _as_list(statement["Resource"])[0] == {"Fn::GetAtt": ["SessionsTable", "Arn"]}
        assert all("SessionsTable" in json.dumps(r) for r in _as_list(statement["Resource"]))
        assert not set(_as_list(statement["Action"])) - {
            "dynamodb:Scan",
            "dynamodb:Query",
            "dynamodb:GetItem",
        }


def test_debugger_role_trusts_only_its_own_account(template: dict) -> None:
    role = template["Resources"]["DebuggerRole"]["Properties"]
    assert role["RoleName"] == {"Fn::Sub": "PLLDBDebuggerRole-${AWS::Region}"}
    (statement,) = role["AssumeRolePolicyDocument"]["Statement"]
    assert statement["Principal"] == {
        "AWS": {"Fn::Sub": "arn:${AWS::Partition}:iam::${AWS::AccountId}:root"}
    }
    manager = template["Resources"]["ManagerRole"]["Properties"]
    assert manager["RoleName"] == {"Fn::Sub": "PLLDBManagerRole-${AWS::Region}"}


def test_authorizer_wiring(template: dict) -> None:
    (authorizer,) = _of_type(template, "AWS::ApiGatewayV2::Authorizer").values()
    props = authorizer["Properties"]
    assert props["AuthorizerType"] == "REQUEST"
    # the session and the caller's identity proof; the gateway emulator checks the same
    assert props["IdentitySource"] == list(IDENTITY_SOURCES)
    assert IDENTITY_SOURCES[1].endswith(naming.IDENTITY_HEADER)
    assert "${AuthorizerFunction.Arn}" in props["AuthorizerUri"]["Fn::Sub"]
    routes = {
        r["Properties"]["RouteKey"]: r["Properties"]
        for r in _of_type(template, "AWS::ApiGatewayV2::Route").values()
    }
    assert set(routes) == {"$connect", "$disconnect", "$default"}
    assert routes["$connect"]["AuthorizationType"] == "CUSTOM"
    assert routes["$connect"]["AuthorizerId"] == {"Ref": "ConnectAuthorizer"}
    (api,) = _of_type(template, "AWS::ApiGatewayV2::Api").values()
    assert api["Properties"]["RouteSelectionExpression"] == "$request.body.action"
    permitted = {
        p["Properties"]["FunctionName"]["Ref"]
        for p in _of_type(template, "AWS::Lambda::Permission").values()
        if p["Properties"]["Principal"] == "apigateway.amazonaws.com"
    }
    assert permitted == {
        "AuthorizerFunction",
        "ConnectFunction",
        "DisconnectFunction",
        "DefaultFunction",
    }


def test_tables_have_ttl_indexes_and_sse(template: dict) -> None:
    tables = {
        t["Properties"]["TableName"]: t["Properties"]
        for t in _of_type(template, "AWS::DynamoDB::Table").values()
    }
    assert set(tables) == {naming.SESSIONS_TABLE, naming.DEBUGGER_TABLE}
    for props in tables.values():
        assert props["TimeToLiveSpecification"] == {
            "AttributeName": naming.A_TTL,
            "Enabled": True,
        }
        assert props["BillingMode"] == "PAY_PER_REQUEST"
        assert props["SSESpecification"] == {"SSEEnabled": True}
        assert props["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": False}

    def indexes(props: dict) -> dict[str, str]:
        return {
            i["IndexName"]: i["KeySchema"][0]["AttributeName"]
            for i in props["GlobalSecondaryIndexes"]
        }

    sessions, debugger = tables[naming.SESSIONS_TABLE], tables[naming.DEBUGGER_TABLE]
    assert sessions["KeySchema"] == [{"AttributeName": naming.A_SESSION_ID, "KeyType": "HASH"}]
    assert indexes(sessions) == {
        naming.STACK_NAME_INDEX: naming.A_STACK_NAME,
        naming.CONNECTION_ID_INDEX: naming.A_CONNECTION_ID,
    }
    assert debugger["KeySchema"] == [{"AttributeName": naming.A_REQUEST_ID, "KeyType": "HASH"}]
    assert indexes(debugger) == {naming.SESSION_ID_INDEX: naming.A_SESSION_ID}


def test_functions_layer_and_parameters(template: dict) -> None:
    functions = {k: v["Properties"] for k, v in _of_type(template, "AWS::Lambda::Function").items()}
    for name in ("authorizer", "connect", "disconnect", "default", "manager"):
        props = functions[f"{name.capitalize()}Function"]
        assert props["Handler"] == f"plldb.lambdas.{name}.handler"
        assert props["Runtime"] == "python3.12"
        assert props["Code"]["S3Key"] == {"Ref": CODE_KEY_PARAMETERS[name]}
        assert set(props["Environment"]["Variables"]) == HELPER_ENV
    assert functions["ManagerFunction"]["Timeout"] == 900
    assert functions["ManagerFunction"]["Role"] == {"Fn::GetAtt": ["ManagerRole", "Arn"]}
    (layer,) = _of_type(template, "AWS::Lambda::LayerVersion").values()
    assert layer["Properties"]["LayerName"] == naming.LAYER_NAME
    assert layer["Properties"]["CompatibleRuntimes"] == [
        "python3.10",
        "python3.11",
        "python3.12",
        "python3.13",
    ]
    assert layer["Properties"]["CompatibleArchitectures"] == ["x86_64", "arm64"]
    params = set(template["Parameters"])
    assert {"HelperStackVersion", "ArtifactBucket", *CODE_KEY_PARAMETERS.values()} <= params


def test_outputs_are_the_protocol_outputs(template: dict) -> None:
    assert set(template["Outputs"]) == OUTPUTS
    management = template["Outputs"][naming.OUTPUT_MANAGEMENT_URL]["Value"]["Fn::Sub"]
    assert management.startswith("https://${WebSocketApi}.execute-api.${AWS::Region}.")


# ------------------------------------------------------------------ tests/test_stack

TEST_STACK = Path(__file__).resolve().parent / "test_stack"


def _sam(args: list[str], tmp_path: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(Path(sys.executable).parent / "sam"), *args],
        cwd=TEST_STACK,
        env={**os.environ, "SAM_CLI_TELEMETRY": "0", "HOME": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=180,
    )


def test_test_stack_validates_with_lint(tmp_path: Path) -> None:
    result = _sam(["validate", "--lint"], tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr


def test_test_stack_builds_without_docker(tmp_path: Path) -> None:
    build = tmp_path / "build"
    result = _sam(
        ["build", "--build-dir", str(build), "--cache-dir", str(tmp_path / "cache")], tmp_path
    )
    assert result.returncode == 0, result.stdout + result.stderr
    for function in ("HelloFunction", "EchoFunction"):
        assert sorted(p.name for p in (build / function).glob("*.py")) == ["app.py", "utils.py"]
    samconfig = (TEST_STACK / "samconfig.toml").read_text()
    assert 'stack_name = "plldb-test-stack"' in samconfig


DEVELOPER_POLICY = (
    Path(__file__).resolve().parents[1] / "docs" / "iam" / "plldb-developer-policy.json"
)


def _sub(value: Any, region: str) -> str:
    """A ``!Sub`` of the template for stack ``plldb`` in ``region``."""
    text = value["Fn::Sub"] if isinstance(value, dict) else value
    return text.replace("${AWS::Region}", region).replace(
        "${AWS::StackName}", naming.HELPER_STACK_NAME
    )


def test_the_developer_policy_names_what_the_template_creates(template: dict) -> None:
    """docs/iam/plldb-developer-policy.json keeps up with the role and function names."""
    statements = {s["Sid"]: s for s in json.loads(DEVELOPER_POLICY.read_text())["Statement"]}
    assert set(statements) == {
        "AssumeDebuggerRole",
        "ReadStacks",
        "StartManager",
        "ClaimFunctionsToDebug",
        "ReadFunctionsByName",
    }
    claim = statements["ClaimFunctionsToDebug"]  # tags only: never a configuration change
    assert claim["Action"] == ["lambda:TagResource", "lambda:UntagResource"]
    assert claim["Resource"].split(":")[5] == "function"
    by_name = statements["ReadFunctionsByName"]  # attach --function-name: a read, of functions
    assert by_name["Action"] == "lambda:GetFunctionConfiguration"
    assert by_name["Resource"].split(":")[5] == "function"
    resources = template["Resources"]
    for region in ("us-east-1", "eu-west-3"):
        role = _sub(resources["DebuggerRole"]["Properties"]["RoleName"], region)
        pattern = statements["AssumeDebuggerRole"]["Resource"].split(":role/")[1]
        assert fnmatch.fnmatchcase(role, pattern), (role, pattern)
    manager = _sub(resources["ManagerFunction"]["Properties"]["FunctionName"], "us-east-1")
    assert statements["StartManager"]["Resource"].endswith(f":function:{manager}")
    assert statements["ReadStacks"]["Action"] == [
        "cloudformation:DescribeStacks",
        "cloudformation:ListStackResources",
    ]


# ------------------------------------------------------------------ bounded powers

READ_PREFIXES = ("Get", "List", "Describe", "BatchGet")
READ_ACTIONS = {"Query", "Scan"}


def _is_read(action: str) -> bool:
    """Get*/List*/Describe*/BatchGet*, Query and Scan, and sts:GetCallerIdentity."""
    name = action.split(":", 1)[1]
    return name.startswith(READ_PREFIXES) or name in READ_ACTIONS


def _whole_type(resource: Any) -> bool:
    """``*``, or an ARN whose resource part is a wildcard over a whole resource type
    (``function:*``, ``role/*``, ``stack/*``, ``layer:*:*``, a queue ``*``)."""
    text = resource["Fn::Sub"] if isinstance(resource, dict) and "Fn::Sub" in resource else resource
    if not isinstance(text, str):
        return False  # a Ref or GetAtt: one named resource
    if text == "*":
        return True
    parts = re.sub(r"\$\{[^}]*\}", "X", text).split(":", 5)  # ${AWS::Region}: one value
    if len(parts) < 6:
        return False  # e.g. "${SessionsTable.Arn}/index/*": that table's indexes
    type_and_name = [p for p in parts[5].replace("/", ":").split(":") if p]
    return all(p == "*" for p in type_and_name[1:]) or type_and_name == ["*"]


def _bounds(condition: dict[str, Any]) -> bool:
    """A condition that can fail: not empty, and not only ``...IfExists`` operators (which a
    request without the key satisfies)."""
    return bool(condition) and not all(op.endswith("IfExists") for op in condition)


def _role_statements(template: dict, role: str) -> list[tuple[str, dict]]:
    """(policy, statement) of the role's inline policies and the managed policies it attaches."""
    props = template["Resources"][role]["Properties"]
    found = [
        (f"{role}/{p['PolicyName']}", s)
        for p in props.get("Policies", [])
        for s in p["PolicyDocument"]["Statement"]
    ]
    for ref in props.get("ManagedPolicyArns", []):
        document = template["Resources"][ref["Ref"]]["Properties"]["PolicyDocument"]
        found += [(ref["Ref"], s) for s in document["Statement"]]
    return found


def unbounded_writes(template: dict) -> list[str]:
    """Write or admin actions of the debugger and manager roles on a whole resource type
    (or ``*``) without a condition that bounds them (issue 11, docs/security.md promise 4)."""
    found = []
    for role in ("DebuggerRole", "ManagerRole"):
        for policy, statement in _role_statements(template, role):
            writes = [
                a
                for a in _as_list(statement["Action"])
                if not _is_read(a) and a != "sts:GetCallerIdentity"
            ]
            wide = [r for r in _as_list(statement.get("Resource", [])) if _whole_type(r)]
            if writes and wide and not _bounds(statement.get("Condition", {})):
                found.append(f"{role} {policy} {statement.get('Sid', '')}: {', '.join(writes)}")
    return found


def test_no_unbounded_write_on_a_whole_resource_type(template: dict) -> None:
    assert unbounded_writes(template) == []


def test_the_unbounded_write_check_finds_what_it_is_for(template: dict) -> None:
    """The check itself: an unconditioned write on ``function:*`` or ``*`` is found, a read
    or a named resource is not."""
    statements = template["Resources"]["ManagerRole"]["Properties"]["Policies"][0]
    wide = "arn:${AWS::Partition}:lambda:${AWS::Region}:${AWS::AccountId}:function:*"
    probe = json.loads(json.dumps(template))
    document = probe["Resources"]["ManagerRole"]["Properties"]["Policies"][0]["PolicyDocument"]
    document["Statement"] = [
        {
            "Sid": "W",
            "Effect": "Allow",
            "Action": "lambda:TagResource",
            "Resource": {"Fn::Sub": wide},
        },
        {"Sid": "S", "Effect": "Allow", "Action": "iam:PutRolePolicy", "Resource": "*"},
        {
            "Sid": "R",
            "Effect": "Allow",
            "Action": "lambda:GetFunction",
            "Resource": {"Fn::Sub": wide},
        },
        {
            "Sid": "N",
            "Effect": "Allow",
            "Action": "lambda:UpdateFunctionConfiguration",
            "Resource": {"Fn::Sub": wide[:-1] + "f"},
        },
        {
            "Sid": "I",
            "Effect": "Allow",
            "Action": "lambda:UntagResource",
            "Resource": {"Fn::Sub": wide},
            "Condition": {"StringEqualsIfExists": {"aws:ResourceTag/x": "y"}},
        },
    ]
    found = unbounded_writes(probe)
    assert found == [
        f"ManagerRole ManagerRole/{statements['PolicyName']} W: lambda:TagResource",
        f"ManagerRole ManagerRole/{statements['PolicyName']} S: iam:PutRolePolicy",
        f"ManagerRole ManagerRole/{statements['PolicyName']} I: lambda:UntagResource",
    ]


def test_abuse_of_the_public_endpoint_is_bounded(template: dict) -> None:
    """Anyone can reach the WebSocket API: a flood of connects runs at most a few authorizers
    at once, and a flood of messages is throttled before it runs helper Lambdas."""
    resources = template["Resources"]
    authorizer = resources["AuthorizerFunction"]["Properties"]
    assert 1 <= authorizer["ReservedConcurrentExecutions"] <= 20
    (stage,) = _of_type(template, "AWS::ApiGatewayV2::Stage").values()
    throttling = stage["Properties"]["DefaultRouteSettings"]
    assert 0 < throttling["ThrottlingRateLimit"] <= throttling["ThrottlingBurstLimit"] <= 1000
