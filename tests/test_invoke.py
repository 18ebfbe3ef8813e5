"""`plldb invoke`: one function of the local template, run here in a fresh plldb process."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent
TEST_STACK = TESTS / "test_stack"
SHOP = TESTS / "fixtures" / "capture"


def plldb(args: list[str], cwd: Path, stdin: str | None = None,
          env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """`plldb <args>` in a fresh process, in ``cwd``, with no AWS configuration of this machine."""
    base = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(cwd),
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        "AWS_EC2_METADATA_DISABLED": "true",
        "COLUMNS": "400",
        "PYTHONPATH": str(TESTS.parent),
    }
    return subprocess.run(
        [sys.executable, "-m", "plldb.cli", *args], env={**base, **(env or {})}, cwd=cwd,
        input=stdin, capture_output=True, text=True, timeout=120,
    )


def assert_error(result: subprocess.CompletedProcess, *texts: str) -> None:
    """Exit 1 with one `error:` line holding every text, and no traceback."""
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    for text in texts:
        assert text in lines[0], lines[0]


@pytest.fixture
def shop(tmp_path: Path) -> Path:
    """A writable copy of the shop project (tests edit its code)."""
    return Path(shutil.copytree(SHOP, tmp_path / "shop"))


def test_invoke_runs_each_function_with_its_own_modules() -> None:
    """Both test-stack functions have app.py and utils.py: each gets its own."""
    hello = plldb(["invoke", "HelloFunction", "--event", '{"name": "Ada"}'], TEST_STACK)
    assert hello.returncode == 0, hello.stderr
    assert json.loads(hello.stdout) == {
        "function": "hello", "module": "hello.app", "greeting": "hello-from-env, Ada!",
        "utils": "hello-utils:ADA", "layer": "common-layer:hello",
    }
    echo = plldb(["invoke", "EchoFunction", "--template", str(TEST_STACK / "template.yaml"),
                  "--event", "-"], TESTS, stdin='{"x": [1, 2]}')
    assert echo.returncode == 0, echo.stderr
    body = json.loads(echo.stdout)
    assert body["module"] == "echo.app" and body["echo"] == {"x": [1, 2]}
    assert body["utils"].startswith("echo-utils"), body


def test_invoke_functions_generated_with_same_named_modules_and_a_built_template() -> None:
    """Fn::ForEach functions whose folders all hold app.py; a template that only exists as
    sam build output runs its build copies, and says so."""
    foreach = TESTS / "fixtures" / "templates" / "foreach" / "template.yaml"
    for function, answer in (("alphaFunction", "alpha"), ("betaFunction", "beta")):
        result = plldb(["invoke", function, "--template", str(foreach)], TESTS)
        assert (result.returncode, json.loads(result.stdout)) == (0, answer), result.stderr
    built = TESTS / "fixtures" / "templates" / "built-only" / ".aws-sam" / "build" / "template.yaml"
    result = plldb(["invoke", "HelloWorldFunction", "--template", str(built), "--event", '{"name": "Bo"}'], TESTS)
    assert json.loads(result.stdout) == {"message": "hello Bo"}, result.stderr
    assert "warning:" in result.stderr and "running the build copies" in result.stderr


def test_invoke_event_file_context_and_output_on_stderr(shop: Path) -> None:
    (shop / "order.json").write_text('{"items": ["a", "b"]}')
    result = plldb(["invoke", "ShopFunction", "--event", "order.json"], shop,
                   env={"AWS_ACCESS_KEY_ID": "AKIDLOCAL", "AWS_SECRET_ACCESS_KEY": "x"})
    assert result.returncode == 0, result.stderr
    body = json.loads(result.stdout)  # stdout is the result alone
    assert body["total"] == 6 and body["currency"] == "EUR"
    assert body["arn"] == "arn:aws:lambda:us-east-1:123456789012:function:ShopFunction"
    assert body["has_credentials"] is True, "--credentials local is the default"
    assert "ShopFunction | pricing 2 item(s)" in result.stderr


def test_invoke_without_credentials(shop: Path) -> None:
    result = plldb(["invoke", "ShopFunction", "--event", '{"items": [1]}', "--credentials", "none"], shop,
                   env={"AWS_ACCESS_KEY_ID": "AKIDLOCAL", "AWS_SECRET_ACCESS_KEY": "x"})
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["has_credentials"] is False


def test_invoke_error_in_lambda_format_exits_1(shop: Path) -> None:
    result = plldb(["invoke", "ShopFunction", "--event", "{}"], shop)
    assert result.returncode == 1, result.stderr
    error = json.loads(result.stdout)
    assert error["errorType"] == "ValueError" and error["errorMessage"] == "an order needs items"
    assert any("app.py" in line for line in error["stackTrace"])
    assert "[ERROR]" in result.stderr and "ValueError" in result.stderr  # logged as the runtime does


def test_invoke_unknown_function_lists_the_template_s_functions() -> None:
    result = plldb(["invoke", "NoSuchFunction"], TEST_STACK)
    assert_error(result, "no function 'NoSuchFunction' in the SAM/CloudFormation template (read template.yaml, samconfig.toml)",
                 "Python functions there: EchoFunction, HelloFunction", "--template")


@pytest.mark.parametrize("event, message", [
    ('{"name":', "the event in --event is not valid JSON"),
    ("missing.json", "--event missing.json: no such file, and not JSON text"),
])
def test_invoke_bad_event(event: str, message: str) -> None:
    assert_error(plldb(["invoke", "HelloFunction", "--event", event], TEST_STACK), message)


def test_invoke_malformed_event_from_stdin() -> None:
    result = plldb(["invoke", "HelloFunction", "--event", "-"], TEST_STACK, stdin="not json")
    assert_error(result, "the event in stdin is not valid JSON")


def test_invoke_missing_template(tmp_path: Path) -> None:
    assert_error(plldb(["invoke", "HelloFunction"], tmp_path), "template template.yaml not found")
