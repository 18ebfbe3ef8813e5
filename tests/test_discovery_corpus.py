"""Discovery on the corpus (tests/fixtures/corpus/): projects shaped like the public examples
of issue 22, written by the real tools (each folder's README gives the command)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from plldb.project.discovery import discover
from plldb.project.model import LayerMapping
from plldb.project.names import function_named
from plldb.project.templates import DiscoveryError

CORPUS = Path(__file__).parent / "fixtures" / "corpus"
pytestmark = pytest.mark.timeout(30)


def fresh_copy(tmp_path: Path, name: str, synthesized: str) -> Path:
    """A copy of a corpus project whose tool output is newer than every source file (a clean
    clone gives every file the checkout time)."""
    root = tmp_path / name
    shutil.copytree(CORPUS / name, root)
    for path in root.rglob("*"):
        os.utime(path, (1_000_000, 1_000_000))
    os.utime(root / synthesized, (2_000_000, 2_000_000))
    return root


@pytest.fixture
def layers_app(tmp_path: Path) -> Path:
    return fresh_copy(tmp_path, "cdk_layers_app", "cdk.out/manifest.json")


def test_a_cdk_layer_runs_from_its_source_folder(layers_app: Path) -> None:
    """Issue 22, bug 2: `Code.from_asset("layer")` maps back to layer/python, not cdk.out."""
    discovery = discover(layers_app, stack_name="links-api-dev")
    function = discovery.functions["UrlShortenerFunctionB5E87AC1"]
    assert function.import_path == (layers_app / "api", layers_app / "layer" / "python")
    assert function.layers == (LayerMapping("CommonLayer306767A0", layers_app / "layer" / "python"),)
    assert not any("asset" in w for w in discovery.warnings)


def test_an_edited_layer_runs_its_asset_with_the_stale_cause_first(layers_app: Path) -> None:
    source = layers_app / "layer" / "python" / "common" / "__init__.py"
    source.write_text(source.read_text() + "# edited\n")
    discovery = discover(layers_app, stack_name="links-api-dev")
    asset = discovery.functions["UrlShortenerFunctionB5E87AC1"].import_path[1]
    assert asset.relative_to(layers_app).parts[0] == "cdk.out"
    assert discovery.warnings[0].startswith(f"{layers_app / 'cdk.out'} is older than the source")
    assert discovery.warnings[1].startswith("layer CommonLayer306767A0: its code in cdk.out/asset.")
    assert "most likely because the source changed after the last synth: run `cdk synth`" in discovery.warnings[1]


def test_construct_ids_and_physical_names_find_functions(layers_app: Path) -> None:
    api = discover(layers_app, stack_name="links-api-dev")
    for name in ("UrlShortenerFunction", "ApiStack/UrlShortenerFunction"):
        assert function_named(api, name) == "UrlShortenerFunctionB5E87AC1"
    jobs = discover(layers_app, stack_name="links-jobs-dev")
    assert function_named(jobs, "links-cleanup-dev") == function_named(jobs, "CleanupFunction") == "CleanupFunction1604930F"


def test_a_multi_stack_app_asks_for_the_stack(layers_app: Path) -> None:
    with pytest.raises(DiscoveryError, match=r"several stacks in .* \(stacks: links-api-dev, links-jobs-dev\); "
                                             r"pass --stack-name with one of them"):
        discover(layers_app)
