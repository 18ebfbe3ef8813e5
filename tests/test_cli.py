"""The `plldb` command line: help, bootstrap against moto, and one-line errors."""

from __future__ import annotations

import json
import os
import pty
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from plldb.cli import cli
from tests.harness.moto_server import free_port
from tests.test_invoke import plldb

REPO = Path(__file__).resolve().parent.parent


def run_plldb(args: list[str], env: dict[str, str], tmp_path: Path) -> subprocess.CompletedProcess:
    """`plldb <args>` in a fresh process with exactly ``env`` (plus PATH), wide output."""
    base = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(tmp_path),  # no ~/.aws of this machine
        "AWS_CONFIG_FILE": str(tmp_path / "no-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "no-credentials"),
        "AWS_EC2_METADATA_DISABLED": "true",
        "COLUMNS": "400",
    }
    return subprocess.run(
        [sys.executable, "-m", "plldb.cli", *args],
        env={**base, **env},
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )


def assert_one_line_error(result: subprocess.CompletedProcess, text: str) -> None:
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ") and text in lines[0], lines[0]


def test_help_lists_commands_and_global_options() -> None:
    result = CliRunner().invoke(cli, ["--help"])
    assert result.exit_code == 0
    for text in ("--profile", "--region", "--verbose", "bootstrap"):
        assert text in result.output
    result = CliRunner().invoke(cli, ["bootstrap", "--help"])
    assert result.exit_code == 0
    assert "setup" in result.output and "destroy" in result.output


def test_missing_credentials_is_one_line(moto_server: Any, tmp_path: Path) -> None:
    result = run_plldb(
        ["bootstrap", "setup"],
        {"AWS_DEFAULT_REGION": "us-east-1", "AWS_ENDPOINT_URL": moto_server.url},
        tmp_path,
    )
    assert_one_line_error(result, "No AWS credentials found: run `aws configure`")


def test_missing_region_is_one_line(moto_server: Any, tmp_path: Path) -> None:
    env = {**moto_server.environment()}
    env.pop("AWS_REGION"), env.pop("AWS_DEFAULT_REGION")
    result = run_plldb(["bootstrap"], env, tmp_path)
    assert_one_line_error(result, "No AWS region configured: pass --region")


def test_unknown_profile_is_one_line(moto_server: Any, tmp_path: Path) -> None:
    result = run_plldb(["--profile", "nobody", "bootstrap"], moto_server.environment(), tmp_path)
    assert_one_line_error(result, "AWS profile 'nobody' not found")


class _OptInRequired(BaseHTTPRequestHandler):
    """Answers like STS in a region the account has not enabled."""

    def do_POST(self) -> None:  # noqa: N802 - http.server naming
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        body = (
            b'<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><Error>'
            b"<Type>Sender</Type><Code>OptInRequired</Code><Message>The region is not "
            b"enabled for this account</Message></Error><RequestId>1</RequestId></ErrorResponse>"
        )
        self.send_response(403)
        self.send_header("Content-Type", "text/xml")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def opt_in_sts() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", free_port()), _OptInRequired)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


def test_region_without_access_is_one_line(
    moto_server: Any, opt_in_sts: str, tmp_path: Path
) -> None:
    env = {**moto_server.environment(), "AWS_ENDPOINT_URL_STS": opt_in_sts}
    result = run_plldb(["--region", "ap-east-1", "bootstrap"], env, tmp_path)
    assert_one_line_error(
        result, "No access in region 'ap-east-1': enable the region or choose another with --region"
    )


def test_bootstrap_against_moto_fails_like_aws_then_destroy_twice(aws: Any, tmp_path: Path) -> None:
    env = aws.environment()
    setup = run_plldb(["bootstrap"], env, tmp_path)
    assert "created bucket plldb-core-infrastructure-us-east-1-123456789012" in setup.stdout
    assert (
        "uploaded s3://plldb-core-infrastructure-us-east-1-123456789012/artifacts/" in setup.stdout
    )
    assert "resource change(s), executing" in setup.stdout
    assert_one_line_error(setup, "executing change set plldb-")

    destroy = run_plldb(["bootstrap", "destroy"], env, tmp_path)
    assert destroy.returncode == 0, destroy.stderr
    assert "deleted stack plldb" in destroy.stdout
    assert (
        "deleted bucket plldb-core-infrastructure-us-east-1-123456789012 (6 object(s))"
        in destroy.stdout
    )
    again = CliRunner().invoke(cli, ["bootstrap", "destroy"])
    assert again.exit_code == 0, again.output
    assert "stack plldb does not exist" in again.output
    assert "✓ helper stack and bucket removed from us-east-1" in again.output


def moto_env(aws: Any) -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k.startswith("AWS_")}


def test_attach_without_helper_stack_says_to_bootstrap(aws: Any, tmp_path: Path) -> None:
    result = run_plldb(["attach", "--stack-name", "shop"], moto_env(aws), tmp_path)
    assert_one_line_error(
        result, "no helper stack 'plldb' in region us-east-1: run `plldb bootstrap` first"
    )


def test_attach_offers_bootstrap_on_a_terminal(aws: Any, tmp_path: Path) -> None:
    main, terminal = pty.openpty()
    try:
        process = subprocess.Popen(
            [sys.executable, "-m", "plldb.cli", "attach", "--stack-name", "shop"],
            stdin=terminal,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env={**os.environ, "COLUMNS": "400", "HOME": str(tmp_path)},
            cwd=REPO,
            text=True,
        )
        os.write(main, b"n\n")  # the user declines
        out, err = process.communicate(timeout=120)
    finally:
        os.close(main)
        os.close(terminal)
    assert "Deploy the helper stack now (plldb bootstrap)? [Y/n]" in out
    assert process.returncode == 1
    assert "run `plldb bootstrap` first" in err


def test_a_misspelled_region_is_named_before_anything_waits_for_aws(tmp_path: Path) -> None:
    result = run_plldb(["--region", "us-eats-1", "bootstrap"], {}, tmp_path)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines[0] == (
        "warning: region 'us-eats-1' is not an AWS region this plldb knows: did you mean "
        "us-east-1? check --region (or upgrade botocore for a brand-new region)"
    ), result.stderr
    assert lines[1].startswith("error: No AWS credentials found"), result.stderr


def test_a_known_region_gets_no_warning(tmp_path: Path) -> None:
    result = run_plldb(["--region", "eu-west-3", "bootstrap"], {}, tmp_path)
    assert "warning" not in result.stderr, result.stderr


def test_plldb_warnings_and_log_warnings_look_the_same(tmp_path: Path) -> None:
    """One style: a log record of a plldb module reads like console.warn, markup and all."""
    script = (
        "import logging\n"
        "from plldb import console\n"
        "console.setup_logging(False)\n"
        "logging.getLogger('plldb.local.executor').warning('deadline [reached] for %s', 'r-1')\n"
        "logging.getLogger('plldb.local.executor').info('not shown without --verbose')\n"
        "console.warn('from the console')\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            env={**os.environ, "COLUMNS": "60"}, timeout=60)
    assert result.stderr.splitlines() == [
        "warning: deadline [reached] for r-1",
        "warning: from the console",
    ]


def test_tables_fold_long_paths_instead_of_cutting_them() -> None:
    path = "/home/someone/projects/shop/functions/checkout/handlers/payment_provider/app.py"
    script = (
        "from plldb import console\n"
        f"console.table('Functions', ['Function', 'Code'], [['CheckoutFunction', {path!r}]])\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            env={**os.environ, "COLUMNS": "50"}, timeout=60)
    assert "…" not in result.stdout
    cells = "".join(line.split("│")[2].strip() for line in result.stdout.splitlines()
                    if line.count("│") == 3)
    assert path in cells, result.stdout


def test_help_does_not_import_aws_or_rich() -> None:
    """Start-up stays light (the benchmarks time it): --help imports only click."""
    script = (
        "import sys\n"
        "from plldb.cli import cli\n"
        "for args in (['--help'], ['status', '--help'], ['attach', '--help']):\n"
        "    try:\n"
        "        cli.main(args, prog_name='plldb')\n"
        "    except SystemExit:\n"
        "        pass\n"
        "print(sorted(m for m in ('boto3', 'botocore', 'rich', 'websockets', 'debugpy', 'yaml')"
        " if m in sys.modules))\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            timeout=60)
    assert result.stdout.splitlines()[-1] == "[]", result.stdout + result.stderr


FIXTURES = REPO / "tests" / "fixtures"


def attach_in(folder: Path, *args: str) -> Any:
    """`plldb attach` in ``folder``, in process: project errors come before any AWS call."""
    old = Path.cwd()
    os.chdir(folder)
    try:
        return CliRunner(mix_stderr=False).invoke(cli, ["attach", *args])
    finally:
        os.chdir(old)


@pytest.mark.parametrize("packaged, expected", [
    (False, "Serverless service shop-api: "),  # no .serverless: nothing packaged yet
    (True, "was packaged for stage dev (S3 key serverless/shop-api/dev/"),
])
def test_attach_names_the_stage_to_package(tmp_path: Path, packaged: bool, expected: str) -> None:
    service = tmp_path / "service"
    shutil.copytree(FIXTURES / "serverless_service", service,
                    ignore=None if packaged else shutil.ignore_patterns(".serverless"))
    result = attach_in(service, "--stage", "prod")
    assert result.exit_code == 1, result.stderr
    assert expected in result.stderr
    assert "run `serverless package --stage prod`" in result.stderr


def test_attach_names_an_unknown_cdk_out_folder(tmp_path: Path) -> None:
    app = tmp_path / "app"
    shutil.copytree(FIXTURES / "cdk_app", app)
    result = attach_in(app, "--cdk-out", "synth-output")
    assert result.exit_code == 1, result.stderr
    assert "--cdk-out folder synth-output not found" in result.stderr
    assert "`cdk synth --output synth-output`" in result.stderr


def test_attach_without_a_stack_name_or_samconfig_says_so(tmp_path: Path) -> None:
    (tmp_path / "template.yaml").write_text("Resources: {}\n")
    result = attach_in(tmp_path)
    assert result.exit_code == 2
    assert "--stack-name is required (SAM/CloudFormation template template.yaml: no samconfig.toml" in result.stderr


@pytest.fixture
def prod_service(tmp_path: Path) -> Path:
    """A copy of the Serverless fixture packaged for the stage prod (not its default, dev)."""
    service = tmp_path / "service"
    shutil.copytree(FIXTURES / "serverless_service", service)
    template = service / ".serverless" / "cloudformation-template-update-stack.json"
    text = template.read_text().replace("shop-api-dev-", "shop-api-prod-")
    template.write_text(text.replace("/shop-api/dev/", "/shop-api/prod/"))
    return service


def test_invoke_and_replay_read_the_stage_given(prod_service: Path) -> None:
    assert_one_line_error(plldb(["invoke", "HelloLambdaFunction", "--credentials", "none"], prod_service),
                          "not stage dev: run `serverless package --stage dev`")
    invoked = plldb(["invoke", "HelloLambdaFunction", "--stage", "prod", "--credentials", "none"], prod_service)
    assert invoked.returncode == 0, invoked.stderr
    assert json.loads(invoked.stdout) == {"hello": {}, "file": str(prod_service.resolve() / "handler.py")}
    replayed = plldb(["replay", "--all", "HelloLambdaFunction", "--stage", "prod"], prod_service)
    assert_one_line_error(replayed, "no captured invocation of HelloLambdaFunction in")


def test_invoke_reads_the_cdk_out_given(tmp_path: Path) -> None:
    app = tmp_path / "app"
    shutil.copytree(FIXTURES / "cdk_app", app)
    (app / "cdk.out").rename(app / "synth")
    invoked = plldb(["invoke", "PlainFunction82E70C5A", "--cdk-out", "synth", "--credentials", "none"], app)
    assert invoked.returncode == 0, invoked.stderr
    assert json.loads(invoked.stdout)["file"] == str(app.resolve() / "lambda" / "index.py")
