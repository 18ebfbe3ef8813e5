"""Functions by name (no CloudFormation stack): local discovery from the deployed
configuration, the authorizer's by-name sessions, and the manager's targets for them.

Against a real moto server; the functions are created directly, as Terraform would.
"""

from __future__ import annotations

import io
import uuid
import zipfile
from pathlib import Path
from typing import Any

import boto3
import pytest
from click.testing import CliRunner

from plldb import naming
from plldb.cli import cli
from plldb.cloud.aws import AwsContext
from plldb.lambdas import authorizer
from plldb.lambdas.manager import entry as manager
from plldb.project.by_name import NamedCode, discover_by_name, pair_options
from plldb.project.templates import DiscoveryError
from tests.harness.gateway import Gateway
from tests.harness.gateway_setup import (
    get_session,
    instrument_nonce,
    put_named_session,
    put_session,
)
from tests.harness.gateway_stack import INSTRUMENTABLE, configuration, create_stack
from tests.harness.identity_proof import caller_arn, proof_headers
from tests.harness.moto_server import MotoServer

pytest_plugins = ["tests.harness.gateway_fixtures"]

FIXTURE = Path(__file__).parent / "fixtures" / "by_name"
CODE = FIXTURE / "src"
METHOD_ARN = "arn:aws:execute-api:us-east-1:123456789012:abc123/prod/$connect"


def _create_function(name: str, runtime: str = "python3.12", handler: str = "app.handler") -> None:
    """A function with no stack, as Terraform or the console leaves it."""
    iam = boto3.client("iam")
    try:
        role = iam.get_role(RoleName="by-name-role")["Role"]["Arn"]
    except iam.exceptions.NoSuchEntityException:
        role = iam.create_role(RoleName="by-name-role", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("app.py", "def handler(event, context):\n    return 'deployed'\n")
    boto3.client("lambda").create_function(
        FunctionName=name, Runtime=runtime, Role=role, Handler=handler,
        Code={"ZipFile": buffer.getvalue()}, MemorySize=256, Timeout=7,
        Environment={"Variables": {"TABLE": "orders"}},
    )


# --- discovery ------------------------------------------------------------------------------


def test_a_named_function_runs_from_its_code_folder_as_deployed(aws: MotoServer) -> None:
    _create_function("orders")
    found = discover_by_name(AwsContext(region="us-east-1"), [NamedCode("orders", CODE)], (3, 12))
    function = found.functions["orders"]
    assert (function.handler, function.runtime, function.code_dir) == ("app.handler", "python3.12", CODE)
    assert function.import_path == (CODE,) and function.physical_name == "orders"
    assert (function.memory_size, function.timeout) == (256, 7)
    assert function.environment == {"TABLE": "orders"}
    assert found.kind == "functions by name" and found.warnings == []


def test_handler_option_overrides_the_deployed_one(aws: MotoServer, tmp_path: Path) -> None:
    _create_function("orders", handler="service.main")
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "entry.py").write_text("def go(event, context):\n    return 1\n")
    found = discover_by_name(AwsContext(region="us-east-1"), [NamedCode("orders", tmp_path, "pkg.entry.go")])
    assert found.functions["orders"].handler == "pkg.entry.go"


def test_bad_input_names_what_was_looked_at(aws: MotoServer, tmp_path: Path) -> None:
    ctx = AwsContext(region="us-east-1")
    with pytest.raises(DiscoveryError) as missing:
        discover_by_name(ctx, [NamedCode("nope", CODE)])
    assert str(missing.value) == (
        "function 'nope' not found in region us-east-1: check --function-name and --region"
    )
    _create_function("orders")
    with pytest.raises(DiscoveryError) as no_module:
        discover_by_name(ctx, [NamedCode("orders", tmp_path)])
    assert f"function orders: code folder {tmp_path} has no module for handler app.handler" in str(no_module.value)
    assert "app.py not found" in str(no_module.value)
    with pytest.raises(DiscoveryError, match=r"code folder .*absent.* not found"):
        discover_by_name(ctx, [NamedCode("orders", tmp_path / "absent")])
    _create_function("web", runtime="nodejs20.x", handler="index.handler")
    with pytest.raises(DiscoveryError, match="function web: runtime nodejs20.x is not Python"):
        discover_by_name(ctx, [NamedCode("web", CODE)])


def test_options_pair_names_with_code_and_handlers() -> None:
    a, b = Path("a"), Path("b")
    assert pair_options(("x", "y"), (a,), ()) == [NamedCode("x", a), NamedCode("y", a)]
    assert pair_options(("x", "y"), (a, b), ("m.h", "n.h")) == [
        NamedCode("x", a, "m.h"), NamedCode("y", b, "n.h")]
    with pytest.raises(ValueError, match="needs --code DIR"):
        pair_options(("x",), (), ())
    with pytest.raises(ValueError, match="2 --function-name, 3 --code, 0 --handler"):
        pair_options(("x", "y"), (a, b, a), ())
    with pytest.raises(ValueError, match="given twice"):
        pair_options(("x", "x"), (a,), ())


@pytest.mark.parametrize(("args", "message"), [
    (["--function-name", "x", "--code", "src", "--stack-name", "shop"], "drop --stack-name and --function"),
    (["--function-name", "x", "--code", "src", "--function", "A*"], "drop --stack-name and --function"),
    (["--function-name", "x"], "--function-name needs --code DIR"),
    (["--code", "src"], "--code and --handler go with --function-name"),
])
def test_attach_by_name_usage_errors(args: list[str], message: str) -> None:
    result = CliRunner(mix_stderr=False).invoke(cli, ["attach", *args])
    assert result.exit_code == 2 and message in result.stderr, result.stderr


# --- authorizer -----------------------------------------------------------------------------


def _connect(session_id: str, **query: str) -> dict[str, Any]:
    event = {
        "type": "REQUEST",
        "methodArn": METHOD_ARN,
        "headers": proof_headers(session_id),
        "queryStringParameters": {"sessionId": session_id, **query},
        "requestContext": {"connectionId": "conn1=", "routeKey": "$connect"},
    }
    return authorizer.handler(event, None)


def _allowed(result: dict[str, Any]) -> bool:
    return result["policyDocument"]["Statement"][0]["Effect"] == "Allow"


def test_a_by_name_session_is_keyed_by_its_names(gateway: Gateway) -> None:
    key = naming.by_name_key(["b-fn", "a-fn"])
    assert key == naming.by_name_key(["a-fn", "b-fn"]) and key.startswith("functions:")
    session_id = str(uuid.uuid4())
    result = _connect(session_id, names="b-fn,a-fn", stackName=key)
    assert _allowed(result) and result["context"]["stackName"] == key
    item = get_session(session_id)
    assert item[naming.A_STACK_NAME]["S"] == key
    assert [n["S"] for n in item[naming.A_NAMES]["L"]] == ["a-fn", "b-fn"]
    assert item[naming.A_CREATED_BY]["S"] == caller_arn()
    assert not _allowed(_connect(str(uuid.uuid4()), names="a-fn,b-fn"))  # one live session per set
    assert _allowed(_connect(str(uuid.uuid4()), names="a-fn"))  # another set


def test_a_function_instrumented_by_a_live_session_is_refused_without_force(
    gateway: Gateway, caplog: pytest.LogCaptureFixture
) -> None:
    """Sets of names overlap, and a stack's function may be named: the function's record
    says who holds it."""
    other = "arn:aws:iam::123456789012:user/someone-else"
    holder = put_session("shop", status=naming.ACTIVE, created_by=other, claim=False)
    boto3.client("dynamodb").put_item(TableName=naming.SESSIONS_TABLE, Item={
        naming.A_SESSION_ID: {"S": naming.function_key("shop-orders")},
        naming.A_KIND: {"S": naming.KIND_INSTRUMENTATION},
        naming.A_INSTRUMENTED_BY: {"S": holder},
    })
    caplog.clear()
    assert not _allowed(_connect(str(uuid.uuid4()), names="a-fn,shop-orders"))
    assert f"function shop-orders is attached by {other} (no force)" in caplog.text
    assert _allowed(_connect(str(uuid.uuid4()), names="a-fn,shop-orders", force="1"))
    assert get_session(holder)[naming.A_STATUS]["S"] == naming.CLOSED


def test_bad_names_are_refused(gateway: Gateway, caplog: pytest.LogCaptureFixture) -> None:
    for query, reason in (
        ({"names": "a b"}, "malformed names"),
        ({"names": "arn:aws:lambda:x"}, "malformed names"),
        ({"names": "a", "functions": "b*"}, "names and a functions filter together"),
        ({"names": "a", "stackName": "shop"}, "is not the key of these names"),
    ):
        caplog.clear()
        assert not _allowed(_connect(str(uuid.uuid4()), **query))
        assert reason in caplog.text


# --- manager --------------------------------------------------------------------------------


def test_the_manager_instruments_exactly_the_named_functions_and_restores_them(
    gateway: Gateway,
) -> None:
    names = create_stack()
    plain, wrapped = names["Plain"], names["Wrapped"]
    before = {name: configuration(names[name]) for name in INSTRUMENTABLE}
    key, session_id = put_named_session([plain, "missing-fn"], [plain, wrapped])

    summary = manager.handler(
        {"action": "instrument", "session_id": session_id, "nonce": instrument_nonce(session_id)},
        None)

    assert summary["instrumented"] == [plain]  # not the stack's other (claimed) functions
    assert {s["function"]: s["reason"] for s in summary["skipped"]} == {
        "missing-fn": "no such function in this account and region"}
    assert configuration(plain) != before["Plain"]
    assert configuration(wrapped) == before["Wrapped"]
    restored = manager.handler({"action": "deinstrument", "session_id": session_id}, None)
    assert restored["restored"] == [plain]
    assert configuration(plain) == before["Plain"]
