"""Discovery of a Serverless Framework service's Python functions through .serverless/."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from plldb.project.discovery import discover
from plldb.project.serverless import logical_id
from plldb.project.templates import DiscoveryError

FIXTURE = Path(__file__).parent / "fixtures" / "serverless_service"
PACKAGED = Path(".serverless") / "cloudformation-template-update-stack.json"
S3_PREFIX = "serverless/shop-api/dev/1796171010277-2026-12-02T00:23:30.277Z"
pytestmark = pytest.mark.timeout(30)


@pytest.fixture
def service(tmp_path: Path) -> Path:
    root = tmp_path / "service"
    shutil.copytree(FIXTURE, root)
    return root


def test_handlers_resolve_from_the_service_folder(service: Path) -> None:
    discovery = discover(service / "template.yaml")
    assert discovery.kind == "Serverless Framework service"
    assert discovery.stack_name == "shop-api-dev"
    assert discovery.template == service / PACKAGED
    assert discovery.files_read == [service / "serverless.yml", service / PACKAGED]
    hello = discovery.functions["HelloLambdaFunction"]
    assert (hello.handler, hello.runtime, hello.code_dir) == ("handler.hello", "python3.12", service)
    assert discovery.functions["ListDashitemsLambdaFunction"].handler == "src/api/routes.list_items"
    assert discovery.skipped == {}


def test_module_layout_resolves_from_the_module_folder(service: Path) -> None:
    orders = discover(service).functions["OrdersUnderscoresyncLambdaFunction"]
    assert orders.code_dir == service / "orders_module"
    assert orders.import_path == (service / "orders_module",)


@pytest.mark.parametrize("name, expected", [
    ("hello", "HelloLambdaFunction"),
    ("list-items", "ListDashitemsLambdaFunction"),
    ("orders_sync", "OrdersUnderscoresyncLambdaFunction"),
])
def test_logical_ids_follow_the_framework(name: str, expected: str) -> None:
    assert logical_id(name) == expected


def test_stage_comes_from_the_option_then_serverless_yml(service: Path) -> None:
    config = service / "serverless.yml"
    config.write_text(config.read_text().replace("stage: ${opt:stage, 'dev'}", "stage: prod"))
    with pytest.raises(DiscoveryError, match="not stage prod: run `serverless package --stage prod`"):
        discover(service)
    assert discover(service, stage="dev").stack_name == "shop-api-dev"


def test_stage_comes_from_the_stack_name_asked_for(service: Path) -> None:
    assert discover(service, stack_name="shop-api-dev").stack_name == "shop-api-dev"
    with pytest.raises(DiscoveryError, match="not stage prod: run `serverless package --stage prod`"):
        discover(service, stack_name="shop-api-prod")


def test_template_of_another_stage_is_refused(service: Path) -> None:
    with pytest.raises(DiscoveryError) as error:
        discover(service, stage="prod")
    assert str(error.value) == (
        f"Serverless service shop-api: {service / PACKAGED} was packaged for stage dev (S3 key "
        f"{S3_PREFIX}/hello.zip), not stage prod: run `serverless package --stage prod`"
    )


def test_missing_serverless_folder_names_serverless_package(service: Path) -> None:
    shutil.rmtree(service / ".serverless")
    with pytest.raises(DiscoveryError) as error:
        discover(service, stage="staging")
    assert str(error.value) == (
        f"Serverless service shop-api: {service / PACKAGED} not found: run `serverless package --stage "
        f"staging` in {service} first (plldb reads the template it writes)"
    )


def _add_function(service: Path, logical: str, physical: str, handler: str) -> None:
    """A function in the packaged template that serverless.yml does not list (as a plugin adds)."""
    template = service / PACKAGED
    document = json.loads(template.read_text())
    resources = document["Resources"]
    resources[logical] = json.loads(json.dumps(resources["HelloLambdaFunction"]))
    resources[logical]["Properties"].update(FunctionName=physical, Handler=handler)
    template.write_text(json.dumps(document))


def test_functions_a_plugin_adds_run_from_the_service_folder(service: Path) -> None:
    """serverless-lift's worker: in the packaged template, not in serverless.yml (issue 22, bug 3)."""
    _add_function(service, "JobsWorkerLambdaFunction", "shop-api-dev-jobsWorker", "worker.handler")
    (service / "worker.py").write_text("def handler(event, context):\n    return 'worked'\n")
    discovery = discover(service)
    worker = discovery.functions["JobsWorkerLambdaFunction"]
    assert (worker.code_dir, worker.handler) == (service, "worker.handler")
    assert discovery.names["JobsWorkerLambdaFunction"] == ["jobsWorker", "shop-api-dev-jobsWorker"]


def test_a_plugin_function_without_its_handler_file_is_skipped_with_why(service: Path) -> None:
    _add_function(service, "JobsWorkerLambdaFunction", "shop-api-dev-jobsWorker", "worker.handler")
    assert discover(service).skipped["JobsWorkerLambdaFunction"] == (
        f"handler worker.handler -> {(service / 'worker.py').as_posix()} not found"
    )


def test_a_custom_function_name_keeps_the_service_readable(service: Path) -> None:
    """`name: my-hello` (issue 22, bug 1): the stage is read from the S3 keys, not the names."""
    config = service / "serverless.yml"
    config.write_text(config.read_text().replace("handler: handler.hello", "handler: handler.hello\n    name: my-hello"))
    template = service / PACKAGED
    template.write_text(template.read_text().replace('"shop-api-dev-hello"', '"my-hello"'))
    discovery = discover(service)
    assert discovery.stack_name == "shop-api-dev"
    assert discovery.functions["HelloLambdaFunction"].physical_name == "my-hello"
    assert discovery.names["HelloLambdaFunction"] == ["hello", "my-hello"]


def test_handler_missing_from_the_module_folder_is_skipped(service: Path) -> None:
    (service / "orders_module" / "app.py").unlink()
    discovery = discover(service)
    assert discovery.skipped["OrdersUnderscoresyncLambdaFunction"] == (
        f"handler app.handler -> {(service / 'orders_module' / 'app.py').as_posix()} not found"
    )


def test_service_name_must_be_plain(service: Path) -> None:
    config = service / "serverless.yml"
    config.write_text(config.read_text().replace("service: shop-api", "service: ${env:NAME}"))
    with pytest.raises(DiscoveryError) as error:
        discover(service)
    assert str(error.value) == f"{config}: no plain `service:` name (plldb cannot resolve variables there)"


def test_layers_of_serverless_yml_run_from_their_folder(service: Path) -> None:
    config = service / "serverless.yml"
    config.write_text(config.read_text() + "\nlayers:\n  common:\n    path: layer\n")
    template = service / PACKAGED
    document = json.loads(template.read_text())
    document["Resources"]["CommonLambdaLayer"] = {
        "Type": "AWS::Lambda::LayerVersion",
        "Properties": {"Content": {"S3Bucket": {"Ref": "ServerlessDeploymentBucket"}, "S3Key": "common.zip"}},
    }
    document["Resources"]["HelloLambdaFunction"]["Properties"]["Layers"] = [{"Ref": "CommonLambdaLayer"}]
    template.write_text(json.dumps(document))
    (service / "layer" / "python").mkdir(parents=True)
    hello = discover(service).functions["HelloLambdaFunction"]
    assert hello.import_path == (service, service / "layer" / "python")
    assert hello.remote_layers == ()


def test_installed_requirements_sit_behind_the_source(service: Path) -> None:
    """serverless-python-requirements installs into .serverless/<module>/requirements (issue 22,
    Deliver 4); `No module named` then names that folder and the command."""
    installed = service / ".serverless" / "orders_module" / "requirements"
    (installed / "faunadb").mkdir(parents=True)
    discovery = discover(service)
    orders = discovery.functions["OrdersUnderscoresyncLambdaFunction"]
    assert orders.import_path == (service / "orders_module", installed)
    assert orders.package_dirs == (installed,)
    assert orders.build_hint == (
        "`serverless package --stage dev` (serverless-python-requirements installs requirements.txt "
        "into .serverless/orders_module/requirements)"
    )
    hello = discovery.functions["HelloLambdaFunction"]
    assert hello.import_path == (service,)
    assert "into .serverless/requirements)" in (hello.build_hint or "")
