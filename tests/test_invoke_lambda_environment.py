"""`plldb invoke` sets what Lambda sets (issue 22, bugs 4 and 5, Deliver 2): reserved
variables, the context's fields, the region, PYTHONPATH, and names users type."""

from __future__ import annotations

import json
import shutil
import textwrap
from pathlib import Path

import boto3
import pytest

from plldb.capture import deployed, invoke
from plldb.capture.lambda_environment import Region
from plldb.cloud.aws import AwsContext
from tests.harness.moto_server import MotoServer
from tests.test_discovery_corpus import fresh_copy
from tests.test_invoke import assert_error, plldb

pytestmark = pytest.mark.timeout(120)
FIXTURES = Path(__file__).parent / "fixtures"

REPORTING_HANDLER = '''
import os
import boto3

s3 = boto3.client("s3")  # at import, as most handlers do: needs a region


def handler(event, context):
    return {
        "context": [context.function_name, context.memory_limit_in_mb, context.function_version,
                    context.log_group_name, context.invoked_function_arn],
        "env": {k: os.environ.get(k) for k in ("AWS_REGION", "AWS_DEFAULT_REGION", "AWS_LAMBDA_FUNCTION_NAME",
                                               "AWS_EXECUTION_ENV", "_HANDLER")},
        "stream": context.log_stream_name.split("]")[0],
        "name": "orders-" + context.function_name,
    }
'''


def project(root: Path, properties: str, files: dict[str, str]) -> Path:
    (root / "template.yaml").write_text(textwrap.dedent("""\
        Transform: AWS::Serverless-2016-10-31
        Resources:
          Table: {Type: AWS::DynamoDB::Table}
          Orders:
            Type: AWS::Serverless::Function
            Properties:
              Runtime: python3.12
              Handler: app.handler
              CodeUri: src
        """) + textwrap.indent(textwrap.dedent(properties), " " * 6))
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


def test_reserved_variables_and_context_come_from_the_template(tmp_path: Path) -> None:
    root = project(tmp_path, "FunctionName: orders-api\nMemorySize: 256\n", {"src/app.py": REPORTING_HANDLER})
    config = tmp_path / "aws-config"
    config.write_text("[default]\nregion = eu-west-2\n")
    result = plldb(["invoke", "orders-api", "--credentials", "none"], root, env={"AWS_CONFIG_FILE": str(config)})
    assert result.returncode == 0, result.stderr
    body = json.loads(result.stdout)
    assert body["context"] == ["orders-api", "256", "$LATEST", "/aws/lambda/orders-api",
                               "arn:aws:lambda:eu-west-2:123456789012:function:orders-api"]
    assert body["env"] == {"AWS_REGION": "eu-west-2", "AWS_DEFAULT_REGION": "eu-west-2",
                           "AWS_LAMBDA_FUNCTION_NAME": "orders-api", "AWS_EXECUTION_ENV": "AWS_Lambda_python3.12",
                           "_HANDLER": "app.handler"}
    assert body["stream"].endswith("/[$LATEST")
    assert body["name"] == "orders-orders-api"


def test_without_a_configured_region_the_function_runs_in_us_east_1_with_a_note(tmp_path: Path) -> None:
    root = project(tmp_path, "", {"src/app.py": REPORTING_HANDLER})
    result = plldb(["invoke", "Orders", "--credentials", "none"], root)
    assert result.returncode == 0, result.stderr
    body = json.loads(result.stdout)
    assert body["context"][:2] == ["Orders", "128"]
    assert body["env"]["AWS_REGION"] == "us-east-1"
    assert ("warning: no region in your AWS configuration: the function runs as in us-east-1 (AWS_REGION); "
            "pass --region to choose") in result.stderr


def test_the_region_option_wins(tmp_path: Path) -> None:
    root = project(tmp_path, "", {"src/app.py": REPORTING_HANDLER})
    result = plldb(["--region", "ap-south-1", "invoke", "Orders", "--credentials", "none"], root)
    assert json.loads(result.stdout)["env"]["AWS_REGION"] == "ap-south-1", result.stderr


def test_pythonpath_of_the_template_imports_from_the_vendored_folder(tmp_path: Path) -> None:
    """Issue 22, bug 5: `PYTHONPATH: /var/runtime:/var/task/vendored` as Lambda reads it."""
    root = project(tmp_path, "Environment: {Variables: {PYTHONPATH: /var/runtime:/var/task/vendored}}\n", {
        "src/app.py": "import vendored_dep\n\ndef handler(event, context):\n    return vendored_dep.WHERE\n",
        "src/vendored/vendored_dep.py": "WHERE = 'vendored'\n",
    })
    result = plldb(["invoke", "Orders", "--credentials", "none"], root)
    assert (result.returncode, json.loads(result.stdout)) == (0, "vendored"), result.stderr


def test_variables_only_the_deployed_stack_knows_are_named(tmp_path: Path) -> None:
    root = project(tmp_path, "Environment: {Variables: {TABLE_NAME: !Ref Table, STAGE: dev}}\n", {
        "src/app.py": "import os\n\ndef handler(event, context):\n    return [os.environ.get('TABLE_NAME'), os.environ['STAGE']]\n",
    })
    result = plldb(["invoke", "Orders", "--credentials", "none"], root)
    assert json.loads(result.stdout) == [None, "dev"], result.stderr
    assert ("warning: Orders: variables TABLE_NAME (!Ref Table) need the deployed stack and are not set "
            "(no stack name: pass --stack-name); deploy the stack and pass --stack-name, or set them in "
            "your shell") in " ".join(result.stderr.split())


def test_the_deployed_function_gives_what_the_template_cannot(aws: MotoServer) -> None:
    """`!Ref Table` resolved by the deployed stack: read from the deployed function."""
    iam = boto3.client("iam")
    role = iam.create_role(RoleName="orders-role", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    template = {"Resources": {"Orders": {"Type": "AWS::Lambda::Function", "Properties": {
        "FunctionName": "orders-deployed", "Runtime": "python3.12", "Handler": "app.handler", "Role": role,
        "MemorySize": 512, "Code": {"ZipFile": "def handler(e, c):\n    return 1\n"},
        "Environment": {"Variables": {"TABLE_NAME": "orders-table-1234"}}}}}}
    boto3.client("cloudformation").create_stack(StackName="orders-dev", TemplateBody=json.dumps(template))
    found = deployed.find_deployed(AwsContext(region="us-east-1"), "orders-dev", "Orders")
    assert (found.name, found.memory_size, found.variables) == ("orders-deployed", 512, {"TABLE_NAME": "orders-table-1234"})
    with pytest.raises(deployed.NotDeployed, match="stack orders-dev has no deployed function Gone"):
        deployed.find_deployed(AwsContext(region="us-east-1"), "orders-dev", "Gone")
    with pytest.raises(deployed.NotDeployed, match=r"stack orders-prod not found \(deploy it, or pass"):
        deployed.find_deployed(AwsContext(region="us-east-1"), "orders-prod", "Orders")


def test_run_setting_fills_dropped_variables_from_the_deployed_function(tmp_path: Path) -> None:
    root = project(tmp_path, "Environment: {Variables: {TABLE_NAME: !Ref Table}}\n", {"src/app.py": ""})
    function = invoke.find_function(root / "template.yaml", "Orders")
    found = deployed.Deployed("orders-dev-Orders", "arn:aws:lambda:eu-west-1:1:function:orders-dev-Orders",
                              256, {"TABLE_NAME": "orders-table"})
    warnings: list[str] = []
    setting = invoke.run_setting(function, Region("eu-west-1"), "orders-dev", False, lambda *_: found, warnings.append)
    message = invoke.build_invocation(function, invoke.InvocationFields("{}"), "local", None, setting)
    assert warnings == []
    assert message["environment"]["TABLE_NAME"] == "orders-table"
    assert message["environment"]["AWS_LAMBDA_FUNCTION_NAME"] == "orders-dev-Orders"
    assert message["invoked_function_arn"] == found.arn


def test_a_serverless_function_is_invoked_by_its_key(tmp_path: Path) -> None:
    service = Path(shutil.copytree(FIXTURES / "serverless_service", tmp_path / "service"))
    result = plldb(["invoke", "hello", "--credentials", "none"], service)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["file"] == str(service.resolve() / "handler.py")


def test_a_cdk_function_is_invoked_by_its_construct_id_with_its_layer_source(tmp_path: Path) -> None:
    app = fresh_copy(tmp_path, "cdk_layers_app", "cdk.out/manifest.json")
    result = plldb(["invoke", "UrlShortenerFunction", "--stack-name", "links-api-dev", "--credentials", "none"],
                   app, env={"TABLE_NAME": "links-local"})
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {
        "layer": str(app.resolve() / "layer" / "python" / "common" / "__init__.py"),
        "file": str(app.resolve() / "api" / "shortener.py"), "table": "links-local",
        "function": "UrlShortenerFunctionB5E87AC1"}


def test_a_multi_stack_cdk_app_without_a_stack_asks_for_the_option_invoke_has(tmp_path: Path) -> None:
    app = fresh_copy(tmp_path, "cdk_layers_app", "cdk.out/manifest.json")
    result = plldb(["invoke", "CleanupFunction"], app)
    assert_error(result, "several stacks", "pass --stack-name with one of them")
    assert "--stack-name" in plldb(["invoke", "--help"], app).stdout


def test_a_missing_module_names_where_plldb_looked_and_the_build_command(tmp_path: Path) -> None:
    """Deliver 4: the error stays Lambda's; a warning says where and how."""
    root = project(tmp_path, "", {"src/app.py": "import faunadb\n\ndef handler(e, c):\n    return 1\n",
                                  "src/requirements.txt": "faunadb\n"})
    result = plldb(["invoke", "Orders", "--credentials", "none"], root)
    assert json.loads(result.stdout)["errorMessage"] == "Unable to import module 'app': No module named 'faunadb'"
    assert (f"warning: Orders: no module named 'faunadb' in {root.resolve() / 'src'} or plldb's own Python; install the "
            "dependencies with `sam build` (it installs requirements.txt into .aws-sam/build/Orders), or "
            "pip install it where plldb runs") in " ".join(result.stderr.split())
