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
        f"Serverless service shop-api: {service / PACKAGED} was packaged for another stage (function "
        "shop-api-dev-hello), not stage prod: run `serverless package --stage prod`"
    )


def test_missing_serverless_folder_names_serverless_package(service: Path) -> None:
    shutil.rmtree(service / ".serverless")
    with pytest.raises(DiscoveryError) as error:
        discover(service, stage="staging")
    assert str(error.value) == (
        f"Serverless service shop-api: {service / PACKAGED} not found: run `serverless package --stage "
        f"staging` in {service} first (plldb reads the template it writes)"
    )


def test_function_not_in_serverless_yml_is_skipped_with_why(service: Path) -> None:
    template = service / PACKAGED
    document = json.loads(template.read_text())
    resources = document["Resources"]
    resources["GoneLambdaFunction"] = resources["HelloLambdaFunction"]
    template.write_text(json.dumps(document))
    discovery = discover(service)
    assert "GoneLambdaFunction" not in discovery.functions
    assert discovery.skipped["GoneLambdaFunction"] == (
        "not a function of serverless.yml (known: HelloLambdaFunction, ListDashitemsLambdaFunction, "
        "OrdersUnderscoresyncLambdaFunction)"
    )


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
