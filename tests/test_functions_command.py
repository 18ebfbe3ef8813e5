"""`plldb functions` / `plldb ls` (issue 22, Deliver 3): what plldb found in the project."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.test_discovery_corpus import fresh_copy
from tests.test_invoke import assert_error, plldb

FIXTURES = Path(__file__).parent / "fixtures"
pytestmark = pytest.mark.timeout(120)


def test_json_lists_names_source_layers_for_a_cdk_stack(tmp_path: Path) -> None:
    app = fresh_copy(tmp_path, "cdk_layers_app", "cdk.out/manifest.json")
    result = plldb(["functions", "--stack-name", "links-api-dev", "--json"], app)
    assert result.returncode == 0, result.stderr
    listing = json.loads(result.stdout)
    assert (listing["kind"], listing["stack"]) == ("AWS CDK app", "links-api-dev")
    [function] = listing["functions"]
    root = app.resolve()
    assert function == {
        "logical_id": "UrlShortenerFunctionB5E87AC1",
        "names": ["ApiStack/UrlShortenerFunction", "UrlShortenerFunction"],
        "kind": "AWS CDK app",
        "handler": "shortener.handler", "runtime": "python3.12", "source": str(root / "api"),
        "import_path": [str(root / "api"), str(root / "layer" / "python")],
        "layers": [{"name": "CommonLayer306767A0", "folder": str(root / "layer" / "python"), "note": ""}],
    }
    assert listing["skipped"] == []


def test_ls_shows_the_serverless_keys_and_skipped_functions_with_why(tmp_path: Path) -> None:
    service = Path(shutil.copytree(FIXTURES / "serverless_service", tmp_path / "service"))
    (service / "handler.py").unlink()
    result = plldb(["ls"], service)
    assert result.returncode == 0, result.stderr
    assert "the Serverless Framework service (read serverless.yml, .serverless/" in result.stdout
    assert "list-items, shop-api-dev-list-items" in result.stdout
    assert (f"warning: skipped HelloLambdaFunction: handler handler.hello -> {service.resolve().as_posix()}"
            "/handler.py not found") in " ".join(result.stderr.split())


def test_functions_outside_a_project_says_what_it_looked_for(tmp_path: Path) -> None:
    assert_error(plldb(["functions"], tmp_path), "template template.yaml not found", "--template PATH")
